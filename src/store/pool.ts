/**
 * Postgres connections for the application. Every application query runs as the `cairn_app`
 * role, so the database's grants are what the application can do (read the observation log,
 * write it only through cairn.append_observation(s), never update or delete it), even when the
 * login is a superuser on a development machine.
 *
 * The role is set per transaction (`SET LOCAL ROLE`), never per session, so Cairn works behind
 * PgBouncer in transaction pooling mode and managed proxies, which hand each transaction to any
 * server connection and do not carry the startup packet's options. Every statement runs in such
 * a transaction: a checked-out client's BEGIN carries the role (and the pool's scope settings),
 * and a statement sent outside a transaction (pool.query, or a client's lone query) is wrapped
 * in BEGIN … COMMIT that sets them first. See docs/production.md "Connection discipline".
 */
import {
  escapeLiteral,
  Pool,
  type PoolClient,
  type QueryConfig,
  type QueryResult,
  type QueryResultRow,
} from 'pg';
import { configureHeadWait } from './headWait';

/** The NOLOGIN role the application acts as; created and granted by migration 001. */
export const APP_ROLE = 'cairn_app';

export type Db = Pool;
export type DbClient = PoolClient;
/** Anything a single statement can be run on: the pool, or a checked-out client (maybe mid-transaction). */
export type Queryable = Pool | PoolClient;

export interface PoolOptions {
  /** Maximum connections (default: poolSizeFor's default, 10). */
  max?: number;
  /**
   * How long to wait for a connection (a new one, or a free one from a full pool) before failing
   * with a transient error that withDbRetry retries; default 10 s. Without it a connect to an
   * unreachable host (packets dropped, not refused) waits for the OS, minutes.
   */
  connectTimeoutMs?: number;
  /** The role to act as; `null` keeps the login's own role (migrations, tests as superuser). */
  applicationRole?: string | null;
  /** Shown in pg_stat_activity (default `cairn`). */
  applicationName?: string;
  /**
   * `'all'`: an explicit grant of every scope to each transaction, for engineers' tools and test
   * helpers. Without it the application role reads and writes nothing outside a transaction
   * run by withScope (src/store/scope.ts), whose grant replaces this one.
   */
  scopes?: 'all';
  /** Called when an idle pooled connection fails (e.g. the server restarted); the pool drops it. */
  onIdleError?: (err: Error) => void;
  /**
   * Direct connection for LISTEN, which wakes minVersion waits (src/store/headWait.ts). Default:
   * the pool's own URL. Behind PgBouncer in transaction mode give a URL past it
   * (CAIRN_PG_LISTEN_URL); `null`: no LISTEN, waits poll outside transactions.
   */
  listenUrl?: string | null;
  /** Longest sleep between two head checks of a minVersion wait (default 250 ms, 1 s with LISTEN). */
  headPollMaxMs?: number;
}

const roleName = /^[a-z_][a-z0-9_]{0,62}$/;

/** What every transaction of a pool sets first: its role and, for `scopes: 'all'`, every scope. */
interface TransactionSetup {
  role: string | null;
  allScopes: boolean;
}

const setups = new WeakMap<Pool, TransactionSetup>();
/** The client's own query method, before createPool wrapped it. */
const RAW_QUERY = Symbol('cairn.rawQuery');

/** Scope settings of one transaction: text[] literals, and the task it acts for (if any). */
export interface TransactionScopes {
  read: string;
  write: string;
  /** cairn.task_key: the task whose bookkeeping the transaction keeps (migration 013). */
  taskKey?: string | undefined;
}

/**
 * Scope settings of one queryInline statement. `write` may be left out by a caller whose
 * statement reads only what cairn.read_scopes governs (the observations, entity_heads and
 * entity_snapshots policies of migration 006: cairn.read_current): the setting is then not sent,
 * which saves Postgres parsing it for a grant nothing in the statement consults.
 */
export interface InlineScopes {
  read: string;
  write?: string | undefined;
  taskKey?: string | undefined;
}

/**
 * What follows BEGIN (or, for queryInline, precedes the statement in its message): the role and
 * the scope settings, transaction-local, as ONE statement. set_config('role', …, true) is
 * SET LOCAL ROLE (the same membership check and the same error when the role cannot be set).
 * `write` may be left out (queryInline's read of what cairn.read_scopes alone governs).
 */
function setupSql(setup: TransactionSetup, scopes?: InlineScopes): string {
  const s: InlineScopes | undefined = scopes ?? (setup.allScopes ? { read: '{*}', write: '{*}' } : undefined);
  const calls: string[] = [];
  if (setup.role !== null) calls.push(`set_config('role', ${escapeLiteral(setup.role)}, true)`);
  if (s) {
    calls.push(`set_config('cairn.read_scopes', ${escapeLiteral(s.read)}, true)`);
    if (s.write !== undefined)
      calls.push(`set_config('cairn.write_scopes', ${escapeLiteral(s.write)}, true)`);
    if (s.taskKey !== undefined)
      calls.push(`set_config('cairn.task_key', ${escapeLiteral(s.taskKey)}, true)`);
  }
  return calls.length === 0 ? '' : `SELECT ${calls.join(', ')}`;
}

/**
 * The worker's pool size: one connection per concurrently running step (Temporal's
 * maxConcurrentActivityTaskExecutions) plus a few for the workflow-facing activities, unless
 * configured (CAIRN_PG_POOL_MAX). A step holds a connection only while it reads or commits, so
 * this is an upper bound, not a reservation; cap it with the setting when Postgres (or
 * PgBouncer's pool) has fewer slots.
 */
export function poolSizeFor(opts: {
  configured?: number | undefined;
  activityConcurrency?: number | undefined;
}): number {
  if (opts.configured !== undefined) return opts.configured;
  if (opts.activityConcurrency === undefined) return DEFAULT_POOL_MAX;
  return Math.max(2, Math.min(MAX_DERIVED_POOL, opts.activityConcurrency + 2));
}
export const DEFAULT_POOL_MAX = 10;
/** The Temporal SDK's default maxConcurrentActivityTaskExecutions. */
export const TEMPORAL_DEFAULT_ACTIVITY_CONCURRENCY = 100;
/** A derived size never exceeds this: Postgres' default max_connections is 100. */
const MAX_DERIVED_POOL = 50;

export function createPool(databaseUrl: string, opts: PoolOptions = {}): Pool {
  const role = opts.applicationRole === undefined ? APP_ROLE : opts.applicationRole;
  if (role !== null && !roleName.test(role))
    throw new Error(`applicationRole must be a plain role name, got "${role}"`);
  const { connectionString, options } = splitOptions(databaseUrl);
  const pool = new Pool({
    connectionString,
    max: opts.max ?? DEFAULT_POOL_MAX,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    application_name: opts.applicationName ?? 'cairn',
    // Statements a caller sends without waiting go out together (see wrapLone): a lone
    // statement's BEGIN+setup, the statement and COMMIT cost one round trip.
    pipeline: true,
    ...(options ? { options } : {}),
  });
  const setup: TransactionSetup = { role, allScopes: opts.scopes === 'all' };
  setups.set(pool, setup);
  configureHeadWait(pool, {
    listenUrl: opts.listenUrl === undefined ? databaseUrl : opts.listenUrl,
    role,
    ...(opts.headPollMaxMs !== undefined ? { pollMaxMs: opts.headPollMaxMs } : {}),
  });
  // Without a listener an idle client's error would crash the process; the pool already
  // discards the broken client, and the next query opens a fresh one.
  pool.on('error', opts.onIdleError ?? (() => undefined));
  // A checked-out client has no pool listener: a server shutting down (57P01) or a dropped
  // socket between two queries of a transaction would be an uncaught 'error' and crash the
  // worker. The fault reaches its holder anyway (the next query fails: not queryable), and pg-pool
  // destroys a client that is no longer queryable when it is released.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
    unnameStatements(client);
    if (setupSql(setup) !== '') guardClient(client, setup);
  });
  return pool;
}

/**
 * Sends every statement unnamed, so no prepared statement outlives its transaction on the server
 * connection. Behind PgBouncer in transaction mode (before 1.21's prepared-statement support) a
 * named one is prepared on whichever server connection served that transaction: the next client
 * there fails with "prepared statement … already exists", and the preparing client, handed
 * another server connection, finds it missing. Measured: no cost for Cairn's statements (calls
 * of SQL functions whose plans the server caches per session anyway).
 */
function unnameStatements(client: PoolClient): void {
  const raw = client.query.bind(client) as unknown as QueryFn;
  const unnamed = (...args: unknown[]): unknown => {
    coalesceWrites(client);
    const first = args[0];
    if (
      typeof first === 'object' &&
      first !== null &&
      'name' in first &&
      typeof (first as { submit?: unknown }).submit !== 'function'
    ) {
      const { name: _name, ...rest } = first as QueryConfig;
      args[0] = rest;
    }
    return raw(...args);
  };
  client.query = unnamed as unknown as PoolClient['query'];
}

/** A client's socket as pg holds it (replaced by a TLS socket after the SSL handshake). */
interface CorkableStream {
  cork?: () => void;
  uncork?: () => void;
  writable?: boolean;
}
const corked = new WeakSet<PoolClient>();

/**
 * Holds the client's socket writes until the current synchronous run ends, so what it sends
 * together goes out in one write: a lone statement's BEGIN + setup, statement and COMMIT (three
 * messages, three write syscalls otherwise), a transaction's BEGIN with the statements sent
 * before its first await (withTransaction, the read receipt and its append). pg writes each
 * query as soon as it is submitted (pipelining), one syscall per query, and Postgres wakes for
 * each packet. Order and content of the bytes are unchanged; the write is only delayed to the
 * end of the current tick, before the process can wait for any answer.
 */
function coalesceWrites(client: PoolClient): void {
  if (corked.has(client)) return;
  const stream = (client as unknown as { connection?: { stream?: CorkableStream } }).connection?.stream;
  if (!stream || typeof stream.cork !== 'function' || typeof stream.uncork !== 'function' || !stream.writable)
    return;
  stream.cork();
  corked.add(client);
  process.nextTick(() => {
    corked.delete(client);
    stream.uncork!();
  });
}

const BEGIN_ONLY = /^\s*(begin|start\s+transaction)\b[^;]*;?\s*$/i;
const ENDS_TRANSACTION = /^\s*(commit|rollback|end|abort)\b/i;

type QueryFn = (...args: unknown[]) => unknown;

/**
 * Clients whose BEGIN has been sent and whose COMMIT / ROLLBACK has not: with pipelining a
 * statement may be sent before BEGIN's answer has come back, and it belongs to that transaction
 * (set up, or aborted by a failed setup: either way it never runs as the login outside it).
 */
const openSent = new WeakSet<PoolClient>();

/** After COMMIT / ROLLBACK on a client that may lack the guard (which would forget it itself). */
export function forgetTransaction(client: PoolClient): void {
  openSent.delete(client);
}

/**
 * Whether statements sent on `client` now run inside a transaction block: its last answer said
 * so (or it has not answered yet), or its BEGIN is on its way (pipelined, answer not back yet).
 * Use it instead of getTransactionStatus() === 'I', which only knows the last answer.
 */
export function inTransactionBlock(client: PoolClient): boolean {
  return openSent.has(client) || (client.getTransactionStatus() as string | null) !== 'I';
}

/**
 * In a transaction (or a failed one), or one whose BEGIN is on its way. pg records the status
 * from ReadyForQuery only after it has run the connect callback, so a fresh client's first
 * query sees null: outside.
 */
function inTransaction(client: PoolClient): boolean {
  if (openSent.has(client)) return true;
  const status = client.getTransactionStatus() as string | null;
  return status === 'T' || status === 'E';
}

/**
 * Wraps a pooled client's query so that no statement runs as the login: a BEGIN gets the
 * setup appended (one round trip), a statement outside any transaction runs in its own
 * BEGIN+setup … COMMIT, and statements inside a transaction pass through (it was set up at
 * BEGIN). pg-pool's own pool.query goes through here too, callback and all.
 */
function guardClient(client: PoolClient, setup: TransactionSetup): void {
  const raw = client.query.bind(client) as unknown as QueryFn;
  const tail = `; ${setupSql(setup)}`;
  Object.defineProperty(client, RAW_QUERY, { value: raw });
  const guarded = (...args: unknown[]): unknown => {
    const cb =
      typeof args[args.length - 1] === 'function'
        ? (args.pop() as (e: unknown, r?: unknown) => void)
        : undefined;
    const first = args[0];
    // Streams and cursors (submittables) are not used by Cairn; refuse rather than run them as the login.
    if (
      typeof first === 'object' &&
      first !== null &&
      typeof (first as { submit?: unknown }).submit === 'function'
    )
      throw new Error('cairn pool: submittable queries are not supported (they would bypass the role)');
    const text = typeof first === 'string' ? first : (first as QueryConfig | undefined)?.text;
    const values = typeof first === 'string' ? args[1] : (first as QueryConfig | undefined)?.values;
    const noValues = values === undefined || (Array.isArray(values) && values.length === 0);
    let run: Promise<unknown>;
    if (typeof text === 'string' && noValues && BEGIN_ONLY.test(text)) {
      openSent.add(client);
      run = raw(text.replace(/;?\s*$/, '') + tail) as Promise<unknown>;
    } else if (typeof text === 'string' && ENDS_TRANSACTION.test(text)) {
      openSent.delete(client);
      run = raw(...args) as Promise<unknown>;
    } else if (inTransaction(client)) {
      run = raw(...args) as Promise<unknown>;
    } else {
      run = wrapLone(raw, `BEGIN${tail}`, args);
    }
    // A BEGIN that came back as a multi-statement batch returns an array: its caller wants BEGIN's.
    const shaped = run.then((r: unknown): unknown =>
      Array.isArray(r) && typeof text === 'string' && BEGIN_ONLY.test(text) ? (r[0] as unknown) : r,
    );
    if (!cb) return shaped;
    shaped.then(
      (r) => cb(undefined, r),
      (e: unknown) => cb(e),
    );
    return undefined;
  };
  client.query = guarded as unknown as PoolClient['query'];
}

/**
 * A lone statement in its own BEGIN+setup … COMMIT. The pool's clients pipeline (pg's
 * `pipeline` mode), so the three go out together and cost one network round trip, not three.
 * That is safe because the server runs them in order and nothing runs as the login:
 * - setup fails (e.g. the role is missing): BEGIN has opened the transaction, so the statement
 *   fails as "transaction aborted" and COMMIT only rolls back; the setup's error is thrown;
 * - the statement fails: COMMIT of the aborted transaction rolls it back (no error), and the
 *   statement's error is thrown;
 * - COMMIT fails (a deferred check): its error is thrown, nothing was committed.
 * On a client without pipelining pg queues the three, and the outcome is the same.
 */
function wrapLone(raw: QueryFn, begin: string, args: unknown[]): Promise<unknown> {
  const settle = (p: unknown) =>
    (p as Promise<unknown>).then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
  const started = settle(raw(begin));
  const main = settle(raw(...args));
  const committed = settle(raw('COMMIT'));
  return Promise.all([started, main, committed]).then(([b, m, c]) => {
    if (!b.ok) throw b.error;
    if (!m.ok) throw m.error;
    if (!c.ok) throw c.error;
    return m.value;
  });
}

/**
 * Runs one statement on the pool in a transaction of its own with the pool's role and the given
 * scope lists (Postgres array literals): BEGIN+settings, the statement and COMMIT pipelined in
 * one round trip. A scoped read that needs a single statement (readEntityInScope's fast path).
 */
export async function queryWithScopes<R extends QueryResultRow>(
  pool: Pool,
  scopes: { read: string; write: string },
  query: QueryConfig,
): Promise<QueryResult<R>> {
  const setup = setups.get(pool) ?? { role: null, allScopes: false };
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    const raw =
      (client as unknown as Record<symbol, QueryFn | undefined>)[RAW_QUERY] ?? client.query.bind(client);
    return (await wrapLone(raw, `BEGIN; ${setupSql(setup, scopes)}`, [query])) as QueryResult<R>;
  } catch (err) {
    // A client left inside a transaction (it should not be: COMMIT was sent) is not reused.
    if (inTransaction(client)) broken = err instanceof Error ? err : new Error(String(err));
    throw err;
  } finally {
    client.release(broken);
  }
}

/**
 * Runs one read-only statement on the pool with the pool's role and scope settings (or the given
 * scope lists) in ONE simple-protocol message and no BEGIN / COMMIT: `SELECT set_config('role',
 * …, true), set_config(…, true); <statement>`. Postgres runs the statements of one Query message as
 * one implicit transaction: the role and settings are transaction-local to it and end with it,
 * and when the setup fails the rest of the message is skipped, so the statement never runs as
 * the login (test/integration/poolPipelining.test.ts). A single message passes PgBouncer in
 * transaction mode like any transaction. It saves the BEGIN and COMMIT messages and their
 * answers (Postgres and Node work per read, measured in bench/README.md).
 *
 * The simple protocol has no parameters: `statement` must be ONE statement built from values the
 * caller turned into literals itself (inlineText / inlineInt), never from text it did not escape.
 */
export async function queryInline<R extends QueryResultRow>(
  pool: Pool,
  statement: string,
  scopes?: InlineScopes,
): Promise<QueryResult<R>> {
  const setup = setups.get(pool) ?? { role: null, allScopes: false };
  const prefix = setupSql(setup, scopes);
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    const raw =
      (client as unknown as Record<symbol, QueryFn | undefined>)[RAW_QUERY] ?? client.query.bind(client);
    const result = (await raw(prefix === '' ? statement : `${prefix}; ${statement}`)) as
      QueryResult<R> | QueryResult<R>[];
    return Array.isArray(result) ? (result.at(-1) as QueryResult<R>) : result;
  } catch (err) {
    // An implicit transaction ends with its message, failed or not; a client that says otherwise is not reused.
    if (inTransaction(client)) broken = err instanceof Error ? err : new Error(String(err));
    throw err;
  } finally {
    client.release(broken);
  }
}

/** A text value as a SQL literal for queryInline; refuses NUL, which Postgres text cannot hold. */
export function inlineText(value: string): string {
  if (value.includes('\0')) throw new RangeError('a text value for SQL cannot contain NUL characters');
  return escapeLiteral(value);
}

/** An integer as a SQL literal for queryInline. */
export function inlineInt(value: number): string {
  if (!Number.isSafeInteger(value)) throw new RangeError(`not a safe integer: ${value}`);
  return String(value);
}

/**
 * Starts a transaction on a pooled client with the pool's role and the given scope lists
 * (Postgres array literals) in one round trip: withScope's BEGIN.
 */
export async function beginWithScopes(
  pool: Pool,
  client: PoolClient,
  scopes: TransactionScopes,
): Promise<void> {
  const setup = setups.get(pool) ?? { role: null, allScopes: false };
  const raw =
    (client as unknown as Record<symbol, QueryFn | undefined>)[RAW_QUERY] ?? client.query.bind(client);
  openSent.add(client);
  await raw(`BEGIN; ${setupSql(setup, scopes)}`);
}

/**
 * pg lets the connection string's `options` override the config's, so a URL that carries its
 * own `options` is passed on as the config's (PgBouncer refuses the startup parameter unless
 * told to ignore it: Cairn itself no longer needs it).
 */
function splitOptions(databaseUrl: string): { connectionString: string; options: string | undefined } {
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch {
    return { connectionString: databaseUrl, options: undefined };
  }
  const options = url.searchParams.get('options') ?? undefined;
  if (options === undefined) return { connectionString: databaseUrl, options };
  url.searchParams.delete('options');
  return { connectionString: url.toString(), options };
}

/**
 * Runs `fn` inside BEGIN/COMMIT on one client, rolling back if it throws. BEGIN is pipelined
 * with fn's first statement (one round trip fewer). A client whose
 * ROLLBACK fails is destroyed rather than returned to the pool in an unknown state.
 */
export async function withTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  let begun: Promise<Error | undefined> | undefined;
  try {
    // Not awaited: the pool pipelines, so fn's first statement travels with BEGIN (see withScope).
    // Marked here too for clients without the role guard (a pool acting as the login).
    openSent.add(client);
    begun = (client.query('BEGIN') as Promise<unknown>).then(
      () => undefined,
      (err: unknown) => (err instanceof Error ? err : new Error(`BEGIN failed: ${String(err)}`)),
    );
    const result = await fn(client);
    const beginError = await begun;
    if (beginError !== undefined) throw beginError;
    await client.query('COMMIT');
    return result;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
    } catch (rollbackErr) {
      broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
    }
    const beginError = await begun;
    if (beginError) throw beginError;
    throw err;
  } finally {
    forgetTransaction(client);
    client.release(broken);
  }
}

/** The fields of a Postgres error we match on. Duck-typed: `instanceof` breaks across copies of pg. */
export interface PgErrorFields {
  code: string;
  detail: string | undefined;
  constraint: string | undefined;
}

export function pgError(err: unknown): PgErrorFields | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; detail?: unknown; constraint?: unknown };
  if (typeof e.code !== 'string' || !/^[0-9A-Z]{5}$/.test(e.code)) return undefined;
  return {
    code: e.code,
    detail: typeof e.detail === 'string' ? e.detail : undefined,
    constraint: typeof e.constraint === 'string' ? e.constraint : undefined,
  };
}

/**
 * SQLSTATEs of faults of the database service rather than of the request: the same request can
 * succeed once the server is back, the connection slot is free, or the conflicting transaction
 * is gone. Everything the step's transaction does is idempotent or rolled back, so it may run
 * again.
 */
const TRANSIENT_SQLSTATES = new Set([
  '08000', // connection_exception
  '08001', // sqlclient_unable_to_establish_sqlconnection
  '08003', // connection_does_not_exist
  '08004', // sqlserver_rejected_establishment_of_sqlconnection
  '08006', // connection_failure
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '53300', // too_many_connections
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down, in recovery)
]);

/** Socket-level errors of an unreachable or vanished server. */
const TRANSIENT_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ECONNABORTED',
]);

/** pg's own messages for a connection that died or never came (they carry no code). */
const TRANSIENT_MESSAGES = [
  /^Connection terminated/,
  /timeout exceeded when trying to connect/,
  /Client has encountered a connection error and is not queryable/,
  /Client was closed and is not queryable/,
  /server closed the connection unexpectedly/,
];

/** Whether `err` is a fault of the database service (retry the request) rather than of the request. */
export function isTransientDbError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    if (typeof e !== 'object') return false;
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && (TRANSIENT_SQLSTATES.has(code) || TRANSIENT_NODE_CODES.has(code)))
      return true;
    if (typeof message === 'string' && TRANSIENT_MESSAGES.some((m) => m.test(message))) return true;
    // AggregateError (a connect that tried IPv4 and IPv6) and wrapped causes.
    const errors = (e as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.some((x) => isTransientDbError(x))) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

export interface DbRetryOptions {
  /** Give up (rethrow the last error) once this much time has passed since the first try. */
  budgetMs: number;
  /** First backoff; doubles per retry up to maxDelayMs, with jitter. Default 100 ms. */
  initialDelayMs?: number;
  /** Default 5 s: a server back from an outage is found within that. */
  maxDelayMs?: number;
  /** Called before each wait, e.g. to log; the retry count starts at 1. */
  onRetry?: (err: unknown, retry: number, delayMs: number) => void;
  /** Stops waiting (rethrows the last error) when aborted. */
  signal?: AbortSignal;
}

/**
 * Runs `fn` again while it fails with a transient database fault (isTransientDbError), with
 * exponential backoff and jitter, for at most `budgetMs`. Any other error, and the last transient
 * one once the budget is spent, is rethrown as is. `fn` must be safe to run again: a transaction
 * that failed was rolled back, or (a COMMIT whose answer was lost) committed and is recognised
 * by the next run (see src/store/stepCompletions.ts).
 */
export async function withDbRetry<T>(fn: () => Promise<T>, opts: DbRetryOptions): Promise<T> {
  const started = Date.now();
  const initial = opts.initialDelayMs ?? 100;
  const max = opts.maxDelayMs ?? 5000;
  for (let retry = 1; ; retry++) {
    try {
      return await fn();
    } catch (err) {
      const left = opts.budgetMs - (Date.now() - started);
      if (!isTransientDbError(err) || left <= 0 || opts.signal?.aborted) throw err;
      const base = Math.min(max, initial * 2 ** Math.min(retry - 1, 20));
      const delay = Math.min(left, base / 2 + Math.random() * (base / 2));
      opts.onRetry?.(err, retry, delay);
      await abortableSleep(delay, opts.signal);
      if (opts.signal?.aborted) throw err;
    }
  }
}

function abortableSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
