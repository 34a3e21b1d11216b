/**
 * Postgres connections for the application. Every pooled connection runs as the `cairn_app`
 * role, so the database's grants are what the application can do (read the observation log,
 * write it only through cairn.append_observation(s), never update or delete it), even when the
 * login is a superuser on a development machine.
 */
import { Pool, type PoolClient } from 'pg';

/** The NOLOGIN role the application acts as; created and granted by migration 001. */
export const APP_ROLE = 'cairn_app';

export type Db = Pool;
export type DbClient = PoolClient;
/** Anything a single statement can be run on: the pool, or a checked-out client (maybe mid-transaction). */
export type Queryable = Pool | PoolClient;

export interface PoolOptions {
  /** Maximum connections (default 10). */
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
   * `'all'`: an explicit grant of every scope for the session, for engineers' tools and test
   * helpers. Without it the application role reads and writes nothing outside a transaction
   * run by withScope (src/store/scope.ts), whose grant replaces this one.
   */
  scopes?: 'all';
  /** Called when an idle pooled connection fails (e.g. the server restarted); the pool drops it. */
  onIdleError?: (err: Error) => void;
}

const roleName = /^[a-z_][a-z0-9_]{0,62}$/;
/** Session defaults of the scope settings read by migration 006's policies and trigger. */
const ALL_SCOPES_STARTUP = '-c cairn.read_scopes={*} -c cairn.write_scopes={*}';

export function createPool(databaseUrl: string, opts: PoolOptions = {}): Pool {
  const role = opts.applicationRole === undefined ? APP_ROLE : opts.applicationRole;
  if (role !== null && !roleName.test(role))
    throw new Error(`applicationRole must be a plain role name, got "${role}"`);
  const { connectionString, options } = splitOptions(databaseUrl);
  // The role is set in the startup packet (`-c role=…`), which is SET ROLE applied before the
  // first query: no extra round trip, no window where a query runs as the login, and RESET ROLE
  // or DISCARD ALL return to cairn_app rather than to the login.
  const startup = [options, role === null ? undefined : `-c role=${role}`, opts.scopes === 'all' ? ALL_SCOPES_STARTUP : undefined]
    .filter(Boolean)
    .join(' ');
  const pool = new Pool({
    connectionString,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    application_name: opts.applicationName ?? 'cairn',
    ...(startup ? { options: startup } : {}),
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
  });
  return pool;
}

/**
 * pg lets the connection string's `options` override the config's, so a URL that carries its
 * own `options` is merged with ours instead of silently dropping the role.
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
 * Runs `fn` inside BEGIN/COMMIT on one client, rolling back if it throws. A client whose
 * ROLLBACK fails is destroyed rather than returned to the pool in an unknown state.
 */
export async function withTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
    } catch (rollbackErr) {
      broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
    }
    throw err;
  } finally {
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
const TRANSIENT_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);

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
    if (typeof code === 'string' && (TRANSIENT_SQLSTATES.has(code) || TRANSIENT_NODE_CODES.has(code))) return true;
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
