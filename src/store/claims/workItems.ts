/**
 * "Next free resource of this kind": resources named `<kind>/<id>`, handed out one per caller
 * with SKIP LOCKED semantics (concurrent callers never queue behind each other and never get
 * the same one), either from a candidate list or from the kind's registered work items.
 */
import type { PoolClient } from 'pg';
import type { Queryable } from '../pool';
import { textArrayLiteral } from '../arrayLiteral';
import { mapFenceError } from './fence';
import { CLAIM_RECORD_QUERY, parseClaimRecord, toGrant } from './rows';
import {
  checkKind,
  checkName,
  checkToken,
  checkTtl,
  CLAIM_LIMITS,
  workResource,
  type ClaimOptions,
  type WorkGrant,
} from './types';
import type { NextFreeSource } from '../../shared/agentTypes';

export type { NextFreeSource };

// One value, as the claim statements (see CLAIM_RECORD_QUERY).
const NEXT_SQL = { ...CLAIM_RECORD_QUERY, text: 'select cairn.claim_next($1::text[], $2, $3, $4::int) r' };

/**
 * Claims the first free `<kind>/<id>`: among `from` (ids, in the given order) or, with
 * `{ workItems: true }`, the kind's oldest registered work item not done. Free = never claimed,
 * released or expired, and not being claimed by someone else right now. Null when none is.
 */
export async function nextFree(
  db: Queryable,
  kind: string,
  from: NextFreeSource,
  opts: ClaimOptions,
): Promise<WorkGrant | null> {
  checkKind(kind);
  checkName('holder', opts.holder);
  checkTtl(opts.ttlMs);
  let candidates: string | null = null;
  if (Array.isArray(from)) {
    const ids = from as readonly string[];
    if (ids.length === 0) return null;
    candidates = candidateLiteral(kind, ids);
  }
  const { rows } = await db.query({
    ...NEXT_SQL,
    values: [candidates, candidates === null ? kind : null, opts.holder, opts.ttlMs],
  });
  const r = parseClaimRecord(rows[0]?.[0]);
  if (r.outcome === 'none') return null;
  const grant = toGrant(r);
  return { ...grant, kind, id: grant.resource.slice(kind.length + 1) };
}

/** Registers units of work `<kind>/<id>` (idempotent); returns how many were new. */
export async function registerWorkItems(
  db: Queryable,
  kind: string,
  ids: readonly string[],
): Promise<number> {
  checkKind(kind);
  ids.forEach(checkId);
  if (ids.length === 0) return 0;
  const { rows } = await db.query<{ n: number }>('select cairn.register_work_items($1, $2::text[]) as n', [
    kind,
    ids,
  ]);
  return rows[0]?.n ?? 0;
}

/**
 * Marks a work item done, fenced by the caller's claim on it: only the current holder of an
 * unexpired grant can, and nextFree never hands it out again. Idempotent for the same grant.
 * Call it inside the transaction that writes the work's results, so both commit or neither.
 */
export async function completeWorkItem(
  client: PoolClient,
  resource: string,
  opts: { holder: string; token: number },
): Promise<'done' | 'already-done'> {
  checkName('resource', resource);
  checkToken(opts.token);
  let outcome: string | undefined;
  try {
    const { rows } = await client.query<{ outcome: string }>(
      'select cairn.complete_work_item($1, $2, $3::bigint) as outcome',
      [resource, opts.holder, opts.token],
    );
    outcome = rows[0]?.outcome;
  } catch (err) {
    throw mapFenceError(err);
  }
  if (outcome === 'done' || outcome === 'already-done') return outcome;
  throw new Error(`${resource} is not a registered work item`);
}

/** Work items of a kind with their state, oldest first (for tests, the demo and the CLI). */
export async function listWorkItems(
  db: Queryable,
  kind: string,
): Promise<{ id: string; resource: string; done: boolean; doneBy: string | null }[]> {
  checkKind(kind);
  const { rows } = await db.query<{ id: string; resource: string; done_by: string | null }>(
    'select id, resource, done_by from cairn.work_items where kind = $1 order by seq',
    [kind],
  );
  return rows.map((r) => ({ id: r.id, resource: r.resource, done: r.done_by !== null, doneBy: r.done_by }));
}

interface CandidateList {
  kind: string;
  /** A copy of the ids the literal was built from (the caller's array may change). */
  ids: readonly string[];
  literal: string;
}

/**
 * The candidates' resources (`<kind>/<id>`, in order) as a Postgres text[] literal. A worker
 * asks for the next free item of the same list over and over: the checked, built and quoted
 * literal is kept per list (its array object) and reused while kind and ids are unchanged
 * (compared element by element, far cheaper than checking, joining and quoting them again).
 */
const candidateLists = new WeakMap<readonly string[], CandidateList>();

function candidateLiteral(kind: string, ids: readonly string[]): string {
  const cached = candidateLists.get(ids);
  if (cached !== undefined && cached.kind === kind && sameIds(cached.ids, ids)) return cached.literal;
  if (ids.length > CLAIM_LIMITS.maxCandidates)
    throw new RangeError(`nextFree takes at most ${CLAIM_LIMITS.maxCandidates} candidates`);
  const literal = textArrayLiteral(
    ids.map((id) => {
      checkId(id);
      return workResource(kind, id);
    }),
  );
  candidateLists.set(ids, { kind, ids: ids.slice(), literal });
  return literal;
}

function sameIds(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function checkId(id: string): void {
  if (typeof id !== 'string' || id.length < 1 || id.length > CLAIM_LIMITS.maxWorkItemIdLength)
    throw new RangeError(`work item id must be 1 to ${CLAIM_LIMITS.maxWorkItemIdLength} characters`);
}
