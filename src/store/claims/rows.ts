/**
 * cairn.claim_result rows, parsed at the edge. Timestamps come as ISO 8601 UTC text with
 * microseconds (pg's Date would drop them, and the ordering of grants is checked at that grain).
 *
 * The statement selects the result as one record value (no formatting functions: each to_char
 * was parse-analysis and execution work on every claim call, issue 14), and the timestamps in it
 * are turned into ISO UTC text here, from Postgres' own text form (DateStyle ISO, which
 * node-postgres needs for every timestamp anyway; any session TimeZone).
 */
import pg from 'pg';
import type { ClaimGrant, ClaimHeld, ClaimRefusal, ClaimState } from './types';

/**
 * How a claim statement selects its answer: the function's cairn.claim_result as ONE value (its
 * record text), `select cairn.claim(…) r`, decoded by parseClaimRecord. Measured against
 * `select r.outcome, … (nine columns) from cairn.claim(…) r` (issue 14, claims round 4): no
 * function scan in the outer statement's plan (a Result node; a function in FROM is planned as a
 * FunctionScan that materialises its one row in a tuplestore), and one column to describe, send
 * and read instead of nine (node-postgres builds the nine fields' descriptions and parsers anew for
 * every unnamed statement). Same function, same answer: old clients are unaffected.
 */
export const CLAIM_RECORD_QUERY = {
  rowMode: 'array' as const,
  // The record text as it is: no type parser runs (the timestamps inside are converted below).
  types: { getTypeParser: (() => identity) as unknown as typeof pg.types.getTypeParser },
};

function identity(value: string): string {
  return value;
}

const ISO_TEXT =
  /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?([+-])(\d{2})(?::(\d{2}))?(?::(\d{2}))?$/;

/**
 * Postgres' text of a timestamptz (`2026-12-07 17:05:09.1234+00`, offset in the session's
 * TimeZone) as ISO UTC with six fractional digits; the infinities as null (as to_char gave).
 */
export function timestamptzToIsoUtc(text: string): string | null {
  if (text === 'infinity' || text === '-infinity') return null;
  const m = ISO_TEXT.exec(text);
  if (!m) throw new Error(`unexpected timestamptz text "${text}" (cairn needs DateStyle ISO)`);
  const frac = (m[7] ?? '').padEnd(6, '0');
  if (m[9] === '00' && m[10] === undefined && m[11] === undefined)
    return `${m[1]!}-${m[2]!}-${m[3]!}T${m[4]!}:${m[5]!}:${m[6]!}.${frac}Z`;
  const offsetMs =
    (m[8] === '-' ? -1 : 1) * (Number(m[9]) * 3600 + Number(m[10] ?? 0) * 60 + Number(m[11] ?? 0)) * 1000;
  const ms =
    Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) -
    offsetMs;
  return `${new Date(ms).toISOString().slice(0, 19)}.${frac}Z`;
}

export const CLAIM_OUTCOMES: ReadonlySet<string> = new Set([
  'granted',
  'expired-takeover',
  'renewed',
  'held',
  'released',
  'refused',
  'none',
]);

export interface ClaimResultRow {
  outcome: 'granted' | 'expired-takeover' | 'renewed' | 'held' | 'released' | 'refused' | 'none';
  resource: string | null;
  holder: string | null;
  token: number | null;
  acquired_at: string | null;
  expires_at: string | null;
  released_at: string | null;
  checked_at: string;
  previous_holder: string | null;
}

const OPEN = 0x28; // (
const CLOSE = 0x29; // )
const COMMA = 0x2c;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The fields of a record's text as Postgres writes it (record_out): `(a,,"b c","x""y\\z")`;
 * an empty field is null, a quoted one is text (`""` and `\\` inside quotes stand for `"` and `\`;
 * record_out quotes every value that is empty or has a quote, backslash, parenthesis, comma or
 * white space, so an unquoted field is the value as it is).
 */
export function recordFields(text: string): (string | null)[] {
  const end = text.length - 1;
  if (end < 1 || text.charCodeAt(0) !== OPEN || text.charCodeAt(end) !== CLOSE)
    throw new Error(`claim result: not a record: ${JSON.stringify(text.slice(0, 80))}`);
  const out: (string | null)[] = [];
  let i = 1;
  for (;;) {
    const c = text.charCodeAt(i);
    if (i === end || c === COMMA) {
      out.push(null);
    } else if (c === QUOTE) {
      let value = '';
      let start = ++i;
      for (;;) {
        if (i >= end) throw new Error('claim result: unterminated quoted field');
        const d = text.charCodeAt(i);
        if (d === QUOTE) {
          value += text.slice(start, i);
          if (text.charCodeAt(i + 1) !== QUOTE) {
            i++;
            break;
          }
          start = i + 1; // the second quote of a pair is kept
          i += 2;
        } else if (d === BACKSLASH) {
          value += text.slice(start, i);
          start = i + 1; // the escaped character is kept
          i += 2;
        } else {
          i++;
        }
      }
      out.push(value);
    } else {
      const start = i;
      while (i < end && text.charCodeAt(i) !== COMMA) i++;
      out.push(text.slice(start, i));
    }
    if (i === end) return out;
    if (text.charCodeAt(i) !== COMMA) throw new Error('claim result: malformed record');
    i++;
  }
}

const TOKEN_TEXT = /^\d+$/;

/**
 * Decodes a cairn.claim_result's record text (CLAIM_RECORD_QUERY) into the row the nine-column
 * select gave, with the same checks and the same conversions (timestamps to ISO UTC text, the
 * token to a number); property-tested against it (test/helpers/claimResultColumns.ts) in
 * test/integration/claims.test.ts.
 */
export function parseClaimRecord(value: unknown): ClaimResultRow {
  if (typeof value !== 'string') throw new Error('claim result: no row');
  const f = recordFields(value);
  if (f.length !== 9) throw new Error(`claim result: ${f.length} fields, expected 9`);
  const outcome = f[0]!;
  if (outcome === null || !CLAIM_OUTCOMES.has(outcome))
    throw new Error(`claim result: unknown outcome ${JSON.stringify(outcome)}`);
  const checkedAt = timestampOrNull(f[7]!);
  if (checkedAt === null) throw new Error('claim result is missing checked_at');
  const token = f[3]!;
  if (token !== null && !TOKEN_TEXT.test(token)) throw new Error('claim result: token is not a number');
  return {
    outcome: outcome as ClaimResultRow['outcome'],
    resource: f[1]!,
    holder: f[2]!,
    token: token === null ? null : Number(token),
    acquired_at: timestampOrNull(f[4]!),
    expires_at: timestampOrNull(f[5]!),
    released_at: timestampOrNull(f[6]!),
    checked_at: checkedAt,
    previous_holder: f[8]!,
  };
}

function timestampOrNull(text: string | null): string | null {
  return text === null ? null : timestamptzToIsoUtc(text);
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
