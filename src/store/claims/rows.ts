/**
 * cairn.claim_result rows, parsed at the edge. Timestamps come as ISO 8601 UTC text with
 * microseconds (pg's Date would drop them, and the ordering of grants is checked at that grain).
 */
import { z } from 'zod';
import { isoUtc } from '../observations/rows';
import type { ClaimGrant, ClaimHeld, ClaimRefusal, ClaimState } from './types';

/** Select list over a cairn.claim_result `r`. */
export const CLAIM_RESULT_COLUMNS = [
  'r.outcome',
  'r.resource',
  'r.holder',
  'r.token',
  `${isoUtc('r.acquired_at')} as acquired_at`,
  `${isoUtc('r.expires_at')} as expires_at`,
  `${isoUtc('r.released_at')} as released_at`,
  `${isoUtc('r.checked_at')} as checked_at`,
  'r.previous_holder',
].join(', ');

const resultRow = z.object({
  outcome: z.enum(['granted', 'expired-takeover', 'renewed', 'held', 'released', 'refused', 'none']),
  resource: z.string().nullable(),
  holder: z.string().nullable(),
  // bigint arrives as text; tokens stay far below 2^53.
  token: z
    .union([z.string(), z.number()])
    .nullable()
    .transform((t) => (t === null ? null : Number(t))),
  acquired_at: z.string().nullable(),
  expires_at: z.string().nullable(),
  released_at: z.string().nullable(),
  checked_at: z.string(),
  previous_holder: z.string().nullable(),
});
export type ClaimResultRow = z.output<typeof resultRow>;

export function parseClaimResult(row: unknown): ClaimResultRow {
  return resultRow.parse(row);
}

/** Microseconds since the epoch of an ISO UTC timestamp with up to 6 fractional digits. */
export function isoMicros(iso: string): number {
  const m = /^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?Z$/.exec(iso);
  if (!m) throw new Error(`not an ISO UTC timestamp: ${iso}`);
  return Date.parse(`${m[1]!}Z`) * 1000 + Number((m[2] ?? '').padEnd(6, '0'));
}

function msBetween(from: string, to: string): number {
  return Math.round((isoMicros(to) - isoMicros(from)) / 1000);
}

export function toGrant(r: ClaimResultRow): ClaimGrant {
  if (r.outcome !== 'granted' && r.outcome !== 'expired-takeover' && r.outcome !== 'renewed')
    throw new Error(`expected a grant, got ${r.outcome}`);
  const expiresAt = required(r.expires_at, 'expires_at');
  return {
    granted: true,
    outcome: r.outcome,
    resource: required(r.resource, 'resource'),
    holder: required(r.holder, 'holder'),
    token: required(r.token, 'token'),
    acquiredAt: required(r.acquired_at, 'acquired_at'),
    expiresAt,
    checkedAt: r.checked_at,
    expiresInMs: msBetween(r.checked_at, expiresAt),
    ...(r.previous_holder !== null ? { previousHolder: r.previous_holder } : {}),
  };
}

/** A held answer; without a holder it is one the database hid (a scope the caller may not read). */
export function toHeld(r: ClaimResultRow): ClaimHeld {
  const resource = required(r.resource, 'resource');
  if (r.holder === null)
    return {
      granted: false,
      outcome: 'held',
      resource,
      holder: null,
      token: null,
      acquiredAt: null,
      expiresAt: null,
      checkedAt: r.checked_at,
      expiresInMs: null,
      hidden: true,
    };
  const expiresAt = required(r.expires_at, 'expires_at');
  return {
    granted: false,
    outcome: 'held',
    resource,
    holder: r.holder,
    token: required(r.token, 'token'),
    acquiredAt: required(r.acquired_at, 'acquired_at'),
    expiresAt,
    checkedAt: r.checked_at,
    expiresInMs: msBetween(r.checked_at, expiresAt),
    hidden: false,
  };
}

/**
 * A refused renewal or release whose claim the database hid: it belongs to a scope the caller
 * may not read and the caller did not name its holder and token (migration 017).
 */
export function isHiddenRefusal(r: ClaimResultRow): boolean {
  return r.outcome === 'refused' && r.token === null;
}

/** The row's current state; null when the resource has no claim row. */
export function toState(r: ClaimResultRow): ClaimState | null {
  if (r.resource === null || r.token === null) return null;
  return {
    resource: r.resource,
    holder: r.holder,
    token: r.token,
    acquiredAt: r.acquired_at,
    expiresAt: r.expires_at,
    releasedAt: r.released_at,
    checkedAt: r.checked_at,
  };
}

/** Why `current` refuses a renewal or release by (holder, token). */
export function refusalOf(
  current: ClaimState | null,
  holder: string,
  token: number | undefined,
): ClaimRefusal {
  if (current === null || current.token === 0 || current.holder === null) return 'never-granted';
  if (token !== undefined && token > current.token) return 'never-granted';
  if (token !== undefined && token < current.token) return 'superseded';
  if (current.holder !== holder) return 'not-holder';
  if (current.releasedAt !== null) return 'released';
  return 'expired';
}

function required<T>(value: T | null, what: string): T {
  if (value === null) throw new Error(`claim result is missing ${what}`);
  return value;
}
