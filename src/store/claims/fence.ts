/**
 * Fenced writes: a write guarded by a claim is refused with FencingTokenStaleError unless its
 * token is still the resource's current, unreleased, unexpired grant. The check runs inside the
 * writing transaction, before the write, and takes the claim row FOR SHARE: a takeover (or a
 * renewal or release) waits until that transaction commits, so the next holder's lease starts
 * after every write the old token was allowed to make.
 */
import type { PoolClient } from 'pg';
import { FencingTokenStaleError, type FenceRefusal } from '../../shared/errors';
import type { ObservationTypeRegistry } from '../../shared/observationTypes';
import {
  appendObservations,
  type AppendContext,
  type AppendedObservation,
  type AppendItem,
} from '../observations/append';
import { isoUtc } from '../observations/rows';
import { inTransactionBlock, pgError, withTransaction, type Queryable } from '../pool';
import { checkName, checkToken, type Fence } from './types';

const FENCE_STALE = 'CNF01';

const CHECK_SQL = {
  // Sorted by resource, so writers holding several fences lock them in one order (no deadlock);
  // offset 0 keeps the ordered subquery from being flattened away.
  text: `select ${isoUtc('max(c.checked_at)')} as checked_at
         from (select cairn.check_fence(f.resource, f.token) as checked_at
               from (select distinct resource, token from unnest($1::text[], $2::bigint[]) as u(resource, token)
                     order by resource, token offset 0) f) c`,
};

/**
 * Checks fences inside the caller's transaction and keeps them locked (FOR SHARE) until it
 * ends. Throws FencingTokenStaleError for the first stale one. Returns the database time of the
 * (last) check, or null when there was nothing to check.
 */
export async function checkFences(client: PoolClient, fences: readonly Fence[]): Promise<string | null> {
  if (fences.length === 0) return null;
  for (const f of fences) {
    checkName('resource', f.resource);
    checkToken(f.token);
  }
  // Outside a transaction block the lock would end with the check and guard nothing.
  if (typeof client.getTransactionStatus === 'function' && !inTransactionBlock(client))
    throw new Error('fenced writes need a transaction: pass a pool, or a client inside BEGIN … COMMIT');
  try {
    const { rows } = await client.query<{ checked_at: string }>({
      ...CHECK_SQL,
      values: [fences.map((f) => f.resource), fences.map((f) => f.token)],
    });
    return rows[0]?.checked_at ?? null;
  } catch (err) {
    throw mapFenceError(err);
  }
}

/**
 * appendObservations guarded by one or more fences, all in one transaction: the fences are
 * checked first (and stay locked), then the batch is appended. Given a pool it opens the
 * transaction; given a client, the client must be inside the caller's transaction.
 */
export async function appendFenced(
  db: Queryable,
  registry: ObservationTypeRegistry,
  items: AppendItem[],
  ctx: AppendContext,
  fence: Fence | readonly Fence[],
): Promise<AppendedObservation[]> {
  const fences: readonly Fence[] = Array.isArray(fence) ? fence : [fence as Fence];
  const run = async (client: PoolClient) => {
    await checkFences(client, fences);
    return appendObservations(client, registry, items, ctx);
  };
  return isClient(db) ? run(db) : withTransaction(db, run);
}

/** CNF01 from the database as FencingTokenStaleError; anything else unchanged. */
export function mapFenceError(err: unknown): unknown {
  const pgErr = pgError(err);
  if (pgErr?.code !== FENCE_STALE) return err;
  const d = parseDetail(pgErr.detail);
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  const str = (v: unknown) => (typeof v === 'string' ? v : null);
  return new FencingTokenStaleError(String(d.resource), num(d.token), String(d.reason) as FenceRefusal, {
    token: num(d.currentToken),
    holder: str(d.holder),
    expiresAt: isoFromJson(str(d.expiresAt)),
    checkedAt: isoFromJson(str(d.checkedAt)),
    releasedAt: isoFromJson(str(d.releasedAt)),
    // The claim belongs to a scope the caller may not read: the database left out its details.
    ...(d.hidden === true ? { hidden: true } : {}),
  });
}

/** json_build_object renders timestamptz as `2025-01-31T12:00:00.123456+00:00`; normalize to `…Z`. */
function isoFromJson(value: string | null): string | null {
  if (value === null) return null;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) return value;
  const frac = /\.(\d+)/.exec(value)?.[1] ?? '';
  return `${new Date(ms).toISOString().slice(0, 19)}.${frac.padEnd(6, '0').slice(0, 6)}Z`;
}

function parseDetail(detail: string | undefined): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(detail ?? '{}');
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function isClient(db: Queryable): db is PoolClient {
  return typeof (db as Partial<PoolClient>).release === 'function';
}
