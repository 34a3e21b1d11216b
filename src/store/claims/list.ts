/**
 * Reading claims: the current table (for `cairn claims`), the event history, and an audit of
 * that history (no two grants of a resource valid at once, tokens consecutive).
 */
import type { Queryable } from '../pool';
import { isoUtc } from '../observations/rows';

export type ClaimStatus = 'held' | 'expired' | 'released';

export interface ClaimRow {
  resource: string;
  holder: string;
  token: number;
  status: ClaimStatus;
  acquiredAt: string;
  expiresAt: string;
  releasedAt: string | null;
  /** Database time of the listing. */
  checkedAt: string;
  /** expiresAt − checkedAt (negative once expired). */
  expiresInMs: number;
}

export interface ListClaimsOptions {
  /** Only resources starting with this. */
  prefix?: string;
  /** Include expired and released claims (default: only those held now). */
  all?: boolean;
  limit?: number;
}

export const CLAIM_LIST_LIMIT = { default: 200, max: 10_000 } as const;

export async function listClaims(db: Queryable, opts: ListClaimsOptions = {}): Promise<ClaimRow[]> {
  const limit = opts.limit ?? CLAIM_LIST_LIMIT.default;
  if (!Number.isInteger(limit) || limit < 1 || limit > CLAIM_LIST_LIMIT.max)
    throw new RangeError(`limit must be 1 to ${CLAIM_LIST_LIMIT.max}`);
  const { rows } = await db.query<{
    resource: string;
    holder: string;
    token: string;
    status: ClaimStatus;
    acquired_at: string;
    expires_at: string;
    released_at: string | null;
    checked_at: string;
    expires_in_ms: number;
  }>(
    `with t as (select clock_timestamp() as now)
     select c.resource, c.holder, c.token,
            case when c.released_at is not null then 'released' when c.expires_at <= t.now then 'expired' else 'held' end as status,
            ${isoUtc('c.acquired_at')} as acquired_at, ${isoUtc('c.expires_at')} as expires_at,
            ${isoUtc('c.released_at')} as released_at, ${isoUtc('t.now')} as checked_at,
            round(extract(epoch from c.expires_at - t.now) * 1000)::float8 as expires_in_ms
     from cairn.claims c, t
     where c.token > 0
       and ($1::text is null or starts_with(c.resource, $1))
       and ($2 or (c.released_at is null and c.expires_at > t.now))
     order by c.resource
     limit $3`,
    [opts.prefix ?? null, opts.all ?? false, limit],
  );
  return rows.map((r) => ({
    resource: r.resource,
    holder: r.holder,
    token: Number(r.token),
    status: r.status,
    acquiredAt: r.acquired_at,
    expiresAt: r.expires_at,
    releasedAt: r.released_at,
    checkedAt: r.checked_at,
    expiresInMs: r.expires_in_ms,
  }));
}

export interface ClaimEvent {
  seq: number;
  resource: string;
  event: 'granted' | 'renewed' | 'released' | 'expired-takeover';
  token: number;
  holder: string;
  at: string;
  expiresAt: string;
  previousHolder: string | null;
}

/** The claim history, in order, optionally for resources starting with `prefix`. */
export async function listClaimEvents(db: Queryable, opts: { prefix?: string } = {}): Promise<ClaimEvent[]> {
  const { rows } = await db.query<{
    seq: string;
    resource: string;
    event: ClaimEvent['event'];
    token: string;
    holder: string;
    at: string;
    expires_at: string;
    previous_holder: string | null;
  }>(
    `select seq, resource, event, token, holder, ${isoUtc('at')} as at, ${isoUtc('expires_at')} as expires_at, previous_holder
     from cairn.claim_events
     where $1::text is null or starts_with(resource, $1)
     order by seq`,
    [opts.prefix ?? null],
  );
  return rows.map((r) => ({
    seq: Number(r.seq),
    resource: r.resource,
    event: r.event,
    token: Number(r.token),
    holder: r.holder,
    at: r.at,
    expiresAt: r.expires_at,
    previousHolder: r.previous_holder,
  }));
}

export interface ClaimAudit {
  /** Grants (resource, token) in the history. */
  grants: number;
  /** Grants whose lease began before the previous grant of the resource had ended. */
  doubleGrants: number;
  /** Grants whose token is not the previous token + 1. */
  tokenGaps: number;
}

/**
 * Audits the event history in SQL: per resource and token, the lease runs from its grant to the
 * earlier of its release and its last expiry; consecutive leases must not overlap.
 */
export async function auditClaimEvents(db: Queryable, opts: { prefix?: string } = {}): Promise<ClaimAudit> {
  const { rows } = await db.query<{ grants: string; double_grants: string; token_gaps: string }>(
    `with lease as (
       select resource, token,
              min(at) filter (where event in ('granted', 'expired-takeover')) as began,
              least(max(expires_at), min(at) filter (where event = 'released')) as ended
       from cairn.claim_events
       where $1::text is null or starts_with(resource, $1)
       group by resource, token
     ), paired as (
       select token, began, lag(token) over w as prev_token, lag(ended) over w as prev_ended
       from lease
       window w as (partition by resource order by token)
     )
     select count(*) as grants,
            count(*) filter (where prev_ended > began) as double_grants,
            count(*) filter (where token <> coalesce(prev_token, 0) + 1) as token_gaps
     from paired`,
    [opts.prefix ?? null],
  );
  const r = rows[0];
  return {
    grants: Number(r?.grants ?? 0),
    doubleGrants: Number(r?.double_grants ?? 0),
    tokenGaps: Number(r?.token_gaps ?? 0),
  };
}
