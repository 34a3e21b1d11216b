/**
 * claim, renew, release: one call of a cairn.* function each (one round trip, one statement).
 * The database decides, on its own clock, with the claim's row locked; see 004_claims.sql.
 */
import type { Queryable } from '../pool';
import { tracedClaim } from '../../telemetry/instrument';
import {
  CLAIM_RECORD_QUERY,
  isHiddenRefusal,
  parseClaimRecord,
  refusalOf,
  toGrant,
  toHeld,
  toState,
} from './rows';
import {
  checkName,
  checkToken,
  checkTtl,
  type ClaimOptions,
  type ClaimResult,
  type ReleaseResult,
  type RenewResult,
} from './types';

// Unnamed (see PoolOptions in src/store/pool.ts: PgBouncer in transaction mode). Each answers with
// the function's cairn.claim_result as one value (see CLAIM_RECORD_QUERY).
const CLAIM_SQL = { ...CLAIM_RECORD_QUERY, text: 'select cairn.claim($1, $2, $3::int) r' };
const RENEW_SQL = { ...CLAIM_RECORD_QUERY, text: 'select cairn.renew_claim($1, $2, $3::bigint, $4::int) r' };
const RELEASE_SQL = { ...CLAIM_RECORD_QUERY, text: 'select cairn.release_claim($1, $2, $3::bigint) r' };

/**
 * Grants `resource` to `opts.holder` for `opts.ttlMs` (a new token), renews it when the holder
 * already holds it (same token), or answers who holds it and until when (only `held`, `hidden`,
 * when the claim belongs to a scope the caller may not read). An expired claim is taken over
 * (`expired-takeover`, a new token). Exactly one caller wins any race.
 */
export const claim = tracedClaim(claimUntraced);
async function claimUntraced(db: Queryable, resource: string, opts: ClaimOptions): Promise<ClaimResult> {
  checkName('resource', resource);
  checkName('holder', opts.holder);
  checkTtl(opts.ttlMs);
  const { rows } = await db.query({ ...CLAIM_SQL, values: [resource, opts.holder, opts.ttlMs] });
  const r = parseClaimRecord(rows[0]?.[0]);
  return r.outcome === 'held' ? toHeld(r) : toGrant(r);
}

/**
 * Extends the lease to `ttlMs` from the database's now (never shortening it), only while
 * `holder` still holds it with `token`. After expiry, a release or a takeover it is refused.
 */
export async function renew(
  db: Queryable,
  resource: string,
  opts: ClaimOptions & { token: number },
): Promise<RenewResult> {
  checkName('resource', resource);
  checkName('holder', opts.holder);
  checkTtl(opts.ttlMs);
  checkToken(opts.token);
  const { rows } = await db.query({ ...RENEW_SQL, values: [resource, opts.holder, opts.token, opts.ttlMs] });
  const r = parseClaimRecord(rows[0]?.[0]);
  if (r.outcome === 'renewed') return { renewed: true, grant: toGrant(r) };
  if (isHiddenRefusal(r)) return { renewed: false, reason: 'not-holder', current: null };
  const current = toState(r);
  return { renewed: false, reason: refusalOf(current, opts.holder, opts.token), current };
}

/**
 * Ends the lease now, only by its holder with its fencing token (naming the holder is not
 * enough: anyone can name it); the next claim gets a new token. Releasing a lease that expired
 * but was not taken over is accepted.
 */
export async function release(
  db: Queryable,
  resource: string,
  opts: { holder: string; token: number },
): Promise<ReleaseResult> {
  checkName('resource', resource);
  checkName('holder', opts.holder);
  checkToken(opts.token);
  const { rows } = await db.query({ ...RELEASE_SQL, values: [resource, opts.holder, opts.token] });
  const r = parseClaimRecord(rows[0]?.[0]);
  if (isHiddenRefusal(r)) return { released: false, reason: 'not-holder', current: null };
  const state = toState(r);
  if (r.outcome === 'released' && state) return { released: true, state };
  return { released: false, reason: refusalOf(state, opts.holder, opts.token), current: state };
}
