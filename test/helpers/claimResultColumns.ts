/**
 * How the claim statements read cairn.claim_result before issue 14's claims round 4: the nine
 * columns, each through pg's type parsers (timestamptz as ISO UTC text). Kept as the reference
 * that src/store/claims/rows.ts' parseClaimRecord (one record value) is property-tested against
 * in test/integration/claims.test.ts.
 */
import pg from 'pg';
import { CLAIM_OUTCOMES, timestamptzToIsoUtc, type ClaimResultRow } from '../../src/store/claims/rows';

/** Select list over a cairn.claim_result `r`; pass CLAIM_RESULT_TYPES, decode with parseClaimResult. */
export const CLAIM_RESULT_COLUMNS =
  'r.outcome, r.resource, r.holder, r.token, r.acquired_at, r.expires_at, r.released_at, r.checked_at, r.previous_holder';

const TIMESTAMPTZ_OID = 1184;

/** Type parsers: timestamptz as ISO UTC text, everything else as pg does. */
export const CLAIM_RESULT_TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary'): ((value: never) => unknown) =>
    format === 'binary'
      ? (pg.types.getTypeParser(oid, 'binary') as (value: Buffer) => unknown)
      : oid === TIMESTAMPTZ_OID
        ? timestamptzToIsoUtc
        : (pg.types.getTypeParser(oid, 'text') as (
            value: string,
          ) => unknown)) as typeof pg.types.getTypeParser,
};

/** Checks a nine-column cairn.claim_result row. */
export function parseClaimResult(row: unknown): ClaimResultRow {
  if (typeof row !== 'object' || row === null) throw new Error('claim result: no row');
  const r = row as Record<string, unknown>;
  if (typeof r.outcome !== 'string' || !CLAIM_OUTCOMES.has(r.outcome))
    throw new Error(`claim result: unknown outcome ${JSON.stringify(r.outcome)}`);
  const checkedAt = textOrNull(r, 'checked_at');
  if (checkedAt === null) throw new Error('claim result is missing checked_at');
  // bigint arrives as text; tokens stay far below 2^53.
  const token = r.token;
  if (token !== null && typeof token !== 'string' && typeof token !== 'number')
    throw new Error('claim result: token is not a number');
  return {
    outcome: r.outcome as ClaimResultRow['outcome'],
    resource: textOrNull(r, 'resource'),
    holder: textOrNull(r, 'holder'),
    token: token === null ? null : Number(token),
    acquired_at: textOrNull(r, 'acquired_at'),
    expires_at: textOrNull(r, 'expires_at'),
    released_at: textOrNull(r, 'released_at'),
    checked_at: checkedAt,
    previous_holder: textOrNull(r, 'previous_holder'),
  };
}

function textOrNull(r: Record<string, unknown>, key: string): string | null {
  const v = r[key];
  if (v === null || typeof v === 'string') return v;
  throw new Error(`claim result: ${key} is not text`);
}
