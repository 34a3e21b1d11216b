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
    application_name: opts.applicationName ?? 'cairn',
    ...(startup ? { options: startup } : {}),
  });
  // Without a listener an idle client's error would crash the process; the pool already
  // discards the broken client, and the next query opens a fresh one.
  pool.on('error', opts.onIdleError ?? (() => undefined));
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
