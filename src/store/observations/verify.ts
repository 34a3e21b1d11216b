/**
 * Tamper evidence: re-derives every hash of the log and names the rows that no longer match.
 *
 * Each row stores content_hash (of what it says, see ./hash.ts), prev_hash (the previous
 * version's chain_hash, '' for version 1) and chain_hash = sha256_hex(prev_hash || content_hash
 * || provenance_hash) — rows of hash format 1 (before migration 010) have no provenance hash;
 * cairn.entity_heads holds each entity's newest version and chain_hash. For every entity, in
 * version order, verifyLog checks that
 * - versions run 1, 2, 3… without gaps and end where entity_heads says;
 * - the content hash recomputed from the row equals the stored one (catches edited content);
 * - for hash format 2, the provenance hash recomputed from the row equals the stored one
 *   (catches edited provenance and idempotency keys);
 * - the row's chain_hash is its own sha256(prev_hash || content_hash);
 * - prev_hash links to the previous row, and the last chain_hash to entity_heads.
 *
 * Blame goes to the row that was changed, not its neighbours: a broken link between rows a and b
 * is a's fault when b's successor (or the head) still trusts b's chain hash (a was rewritten
 * wholesale), otherwise b's (b's prev_hash/chain_hash were rewritten). A row whose own chain hash
 * is wrong does not make its successor look broken, because the successor may link to what the
 * row's hash should have been.
 *
 * Also re-folds every snapshot and checks every type definition's hash (./verifySnapshots.ts).
 *
 * Limits: whoever rewrites an entity's whole tail *and* its head row is only caught by
 * comparing against heads recorded elsewhere: `cairn verify --anchor` / `--check-anchor`
 * (./anchor.ts).
 *
 * Reads in keyset pages (never the whole log at once), inside one REPEATABLE READ READ ONLY
 * transaction when given a pool, so concurrent appends cannot look like a head mismatch.
 */
import type { PoolClient } from 'pg';
import { formatEntityRef, type EntityRef, type StoredObservation } from '../../shared/observation';
import type { Queryable } from '../pool';
import { chainHash, contentHash, provenanceHash } from './hash';
import { observationColumns, parseObservationRow } from './rows';
import { verifySnapshots, verifyTypeDefinitions } from './verifySnapshots';

export interface VerifyProblem {
  /** `type/id`. */
  entity: string;
  version: number;
  /** '' when the problem is about rows that are missing. */
  observationId: string;
  problem: string;
}

export interface VerifyResult {
  /** Observation rows checked. */
  checked: number;
  /** Entities seen (in the log or in entity_heads). */
  entities: number;
  /** Snapshots re-folded and compared (see ./verifySnapshots.ts). */
  snapshots?: number;
  /** Observation type definitions checked (0 with `entity`). */
  types?: number;
  problems: VerifyProblem[];
}

/** `verifyLog({ entity })` of an entity that has neither observations nor a head. */
export class EntityNotFoundError extends Error {
  override readonly name = 'EntityNotFoundError';
  constructor(readonly entity: string) {
    super(`no entity ${entity}: it has no observations and no head row`);
  }
}

export interface VerifyOptions {
  /** Only this entity's chain. */
  entity?: EntityRef;
  /** Rows per round trip (default 1000). */
  pageSize?: number;
}

/** What the walk remembers of a row once it has moved past it. */
interface RowLink {
  id: string;
  version: number;
  contentHash: string;
  /** '' for rows of hash format 1. */
  provenanceHash: string;
  prevHash: string;
  chainHash: string;
  /** sha256(prev_hash || content_hash): what chain_hash should be. */
  ownChain: string;
}

interface EntityWalk {
  key: string;
  ref: EntityRef;
  last: RowLink | undefined;
  /** Chain recomputed from version 1 with the stored content hashes. */
  trusted: string;
  /** A broken link into `b`, waiting for b's successor to say who is to blame. */
  pendingBreak: { a: RowLink; b: RowLink } | undefined;
}

export async function verifyLog(db: Queryable, opts: VerifyOptions = {}): Promise<VerifyResult> {
  if (isClient(db)) return verifyOn(db, opts);
  const client = await db.connect();
  try {
    await client.query('begin isolation level repeatable read read only');
    const result = await verifyOn(client, opts);
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

async function verifyOn(db: PoolClient, opts: VerifyOptions): Promise<VerifyResult> {
  const pageSize = opts.pageSize ?? 1000;
  if (!Number.isInteger(pageSize) || pageSize < 1)
    throw new RangeError(`verifyLog: pageSize must be a positive integer, got ${pageSize}`);
  const problems = new Map<string, VerifyProblem>();
  const report = (entity: string, version: number, observationId: string, problem: string) => {
    const key = `${entity}\u0000${version}\u0000${observationId}`;
    const existing = problems.get(key);
    if (existing) existing.problem += `; ${problem}`;
    else problems.set(key, { entity, version, observationId, problem });
  };

  let checked = 0;
  let entities = 0;
  let walk: EntityWalk | undefined;
  let finished: EntityWalk[] = [];
  let after: [string, string, number] | undefined;
  for (;;) {
    const rows = await readPage(db, opts.entity, after, pageSize);
    for (const raw of rows) {
      const ref = { entityType: String(raw.entity_type), entityId: String(raw.entity_id) };
      const key = formatEntityRef(ref);
      if (walk?.key !== key) {
        if (walk) finished.push(walk);
        walk = { key, ref, last: undefined, trusted: '', pendingBreak: undefined };
        entities++;
      }
      checkRow(walk, raw, report);
      checked++;
    }
    // Heads are compared a page at a time, for the entities this page completed.
    await checkHeads(db, finished, report);
    finished = [];
    const lastRow = rows[rows.length - 1];
    if (rows.length < pageSize || !lastRow) break;
    after = [String(lastRow.entity_type), String(lastRow.entity_id), Number(lastRow.entity_version)];
  }
  if (walk) await checkHeads(db, [walk], report);
  entities += await checkOrphanHeads(db, opts.entity, report);
  if (opts.entity && entities === 0) {
    const { rows } = await db.query(
      'select 1 from cairn.entity_heads where entity_type = $1 and entity_id = $2',
      [opts.entity.entityType, opts.entity.entityId],
    );
    if (rows.length === 0) throw new EntityNotFoundError(formatEntityRef(opts.entity));
  }
  const snapshots = await verifySnapshots(db, opts.entity, report);
  const types = opts.entity ? 0 : await verifyTypeDefinitions(db, report);

  const list = [...problems.values()].sort((x, y) =>
    x.entity < y.entity ? -1 : x.entity > y.entity ? 1 : x.version - y.version,
  );
  return { checked, entities, snapshots, types, problems: list };
}

type Report = (entity: string, version: number, observationId: string, problem: string) => void;

function checkRow(walk: EntityWalk, raw: Record<string, unknown>, report: Report): void {
  const version = Number(raw.entity_version);
  const id = String(raw.id);
  const format = Number(raw.hash_format ?? 1);
  const provHash = typeof raw.provenance_hash === 'string' ? raw.provenance_hash : '';
  const row: RowLink = {
    id,
    version,
    contentHash: String(raw.content_hash),
    provenanceHash: provHash,
    prevHash: String(raw.prev_hash),
    chainHash: String(raw.chain_hash),
    ownChain: chainHash(String(raw.prev_hash), String(raw.content_hash), provHash),
  };
  if (format !== 1 && format !== 2) report(walk.key, version, id, `unknown hash_format ${format}`);
  if (format === 1 && provHash !== '')
    report(walk.key, version, id, 'hash_format 1 row carries a provenance_hash: rewritten');
  if (format === 2) {
    const recomputed = provenanceHash({
      taskKey: String(raw.task_key),
      workflowId: String(raw.workflow_id),
      runId: String(raw.run_id),
      activityId: String(raw.activity_id),
      attempt: Number(raw.attempt),
      agentId: String(raw.agent_id),
      role: String(raw.role),
      idempotencyKey: String(raw.idempotency_key),
    });
    if (recomputed !== provHash)
      report(
        walk.key,
        version,
        id,
        `provenance changed after append (task, workflow, run, activity, attempt, agent, role or idempotency key): stored provenance_hash ${short(provHash)}, the row's provenance hashes to ${short(recomputed)}`,
      );
  }
  const prev = walk.last;
  const expectedVersion = (prev?.version ?? 0) + 1;

  let observation: StoredObservation | undefined;
  try {
    observation = parseObservationRow(raw);
  } catch (err) {
    report(
      walk.key,
      version,
      id,
      `row does not parse as an observation: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`,
    );
  }
  if (observation) {
    // The fields exactly as the driver parsed them (JSON.parse keeps a "__proto__" key as an own
    // property); the row schema's copy would turn such a key into a prototype and lose it.
    const rawFields = raw.fields;
    let recomputed: string;
    try {
      recomputed = recomputeContentHash(
        typeof rawFields === 'object' && rawFields !== null && !Array.isArray(rawFields)
          ? { ...observation, fields: rawFields as StoredObservation['fields'] }
          : observation,
      );
    } catch (err) {
      // E.g. fields nested deeper than anything the append path accepts.
      recomputed = `(cannot hash: ${err instanceof Error ? err.message : String(err)})`;
    }
    if (recomputed !== row.contentHash) {
      report(
        walk.key,
        version,
        id,
        `content changed after append: stored content_hash ${short(row.contentHash)}, the row's content hashes to ${short(recomputed)}`,
      );
    }
  }
  if (row.chainHash !== row.ownChain) {
    report(
      walk.key,
      version,
      id,
      `chain_hash ${short(row.chainHash)} is not sha256(prev_hash || content_hash) = ${short(row.ownChain)}`,
    );
  }

  // The pending break was about the link into `prev`; this row's prev_hash is the witness.
  if (walk.pendingBreak) resolveBreak(walk, row.prevHash, report);

  if (version !== expectedVersion) {
    const missing =
      version > expectedVersion
        ? `versions ${expectedVersion}..${version - 1} are missing`
        : `version ${version} is out of order`;
    report(
      walk.key,
      version,
      id,
      `version gap: expected version ${expectedVersion}, found ${version} (${missing})`,
    );
  } else if (!prev) {
    if (row.prevHash !== '')
      report(walk.key, version, id, `prev_hash of version 1 must be empty, found ${short(row.prevHash)}`);
  } else if (
    row.prevHash !== prev.chainHash &&
    row.prevHash !== prev.ownChain &&
    row.prevHash !== walk.trusted
  ) {
    walk.pendingBreak = { a: prev, b: row };
  }
  // After a gap the chain is re-anchored at this row, so one gap is reported once.
  const base = version === expectedVersion ? walk.trusted : row.prevHash;
  walk.trusted = chainHash(base, row.contentHash, row.provenanceHash);
  walk.last = row;
}

/** `witness` is what the successor of pendingBreak.b (a row or the head) believes b's chain hash is. */
function resolveBreak(walk: EntityWalk, witness: string | undefined, report: Report): void {
  const brk = walk.pendingBreak;
  if (!brk) return;
  walk.pendingBreak = undefined;
  if (witness !== undefined && witness === brk.b.chainHash) {
    report(
      walk.key,
      brk.a.version,
      brk.a.id,
      `rewritten: version ${brk.b.version} was chained to a different chain_hash than this row now has (${short(brk.b.prevHash)} vs ${short(brk.a.chainHash)})`,
    );
  } else {
    report(
      walk.key,
      brk.b.version,
      brk.b.id,
      `prev_hash ${short(brk.b.prevHash)} does not link to version ${brk.a.version} (chain_hash ${short(brk.a.chainHash)})`,
    );
  }
}

async function checkHeads(db: PoolClient, walks: EntityWalk[], report: Report): Promise<void> {
  if (walks.length === 0) return;
  const { rows } = await db.query<{
    entity_type: string;
    entity_id: string;
    version: number;
    chain_hash: string;
  }>(
    `select h.entity_type, h.entity_id, h.version, h.chain_hash
       from unnest($1::text[], $2::text[]) as u(entity_type, entity_id)
       join cairn.entity_heads h using (entity_type, entity_id)`,
    [walks.map((w) => w.ref.entityType), walks.map((w) => w.ref.entityId)],
  );
  const heads = new Map(
    rows.map((r) => [formatEntityRef({ entityType: r.entity_type, entityId: r.entity_id }), r]),
  );
  for (const walk of walks) {
    const head = heads.get(walk.key);
    const last = walk.last;
    if (!last) continue;
    resolveBreak(walk, head?.chain_hash, report);
    if (!head) {
      report(walk.key, last.version, last.id, 'entity has observations but no row in cairn.entity_heads');
    } else if (head.version !== last.version) {
      const what =
        head.version > last.version
          ? `versions ${last.version + 1}..${head.version} are missing`
          : `version ${last.version} is beyond the head`;
      report(
        walk.key,
        head.version,
        head.version > last.version ? '' : last.id,
        `cairn.entity_heads is at version ${head.version} but the log ends at version ${last.version} (${what})`,
      );
    } else if (head.chain_hash !== last.chainHash) {
      // A last row that is consistent in itself (its own link, and the chain recomputed from
      // version 1 agrees) points at the head row; otherwise the row was changed. A last row
      // rewritten with every hash recomputed looks like the first case: an anchor
      // (./anchor.ts) tells them apart.
      const consistent = last.chainHash === last.ownChain && last.chainHash === walk.trusted;
      if (consistent)
        report(
          `${walk.key} (head)`,
          head.version,
          '',
          `cairn.entity_heads says chain_hash ${short(head.chain_hash)} at version ${head.version}, but the log's version ${last.version} (${last.id}) chains to ${short(last.chainHash)}: the head row was edited, or that version was rewritten with its hashes recomputed`,
        );
      else
        report(
          walk.key,
          last.version,
          last.id,
          `chain_hash ${short(last.chainHash)} differs from cairn.entity_heads (${short(head.chain_hash)}): rewritten`,
        );
    }
  }
}

/** Heads that claim versions for an entity with no rows at all. Returns how many there are. */
async function checkOrphanHeads(
  db: PoolClient,
  entity: EntityRef | undefined,
  report: Report,
): Promise<number> {
  const { rows } = await db.query<{ entity_type: string; entity_id: string; version: number }>(
    `select h.entity_type, h.entity_id, h.version from cairn.entity_heads h
      where h.version > 0
        and ($1::text is null or (h.entity_type = $1 and h.entity_id = $2))
        and not exists (select 1 from cairn.observations o where o.entity_type = h.entity_type and o.entity_id = h.entity_id)
      order by h.entity_type, h.entity_id`,
    [entity?.entityType ?? null, entity?.entityId ?? null],
  );
  for (const r of rows) {
    report(
      formatEntityRef({ entityType: r.entity_type, entityId: r.entity_id }),
      r.version,
      '',
      `cairn.entity_heads is at version ${r.version} but the log has no observations of this entity (versions 1..${r.version} are missing)`,
    );
  }
  return rows.length;
}

async function readPage(
  db: PoolClient,
  entity: EntityRef | undefined,
  after: [string, string, number] | undefined,
  pageSize: number,
): Promise<Record<string, unknown>[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (entity) {
    params.push(entity.entityType, entity.entityId);
    where.push('o.entity_type = $1 and o.entity_id = $2');
  }
  if (after) {
    params.push(...after);
    const n = params.length;
    // A row-value comparison, so the (entity_type, entity_id, entity_version) index serves it.
    where.push(
      `(o.entity_type, o.entity_id, o.entity_version) > ($${n - 2}::text, $${n - 1}::text, $${n}::int)`,
    );
  }
  params.push(pageSize);
  const { rows } = await db.query<Record<string, unknown>>(
    `select ${observationColumns('o')}, o.hash_format, o.provenance_hash from cairn.observations o
      ${where.length > 0 ? `where ${where.join(' and ')}` : ''}
      order by o.entity_type, o.entity_id, o.entity_version
      limit $${params.length}`,
    params,
  );
  return rows;
}

/** The content hash as append computed it, from what the row stores. */
export function recomputeContentHash(o: StoredObservation): string {
  return contentHash({
    entityType: o.entityType,
    entityId: o.entityId,
    type: o.type,
    schemaVersion: o.schemaVersion,
    kind: o.kind,
    fields: o.fields,
    scope: o.scope,
    derivedFrom: o.provenance.derivedFrom,
    source: o.provenance.source ?? null,
    targetId: o.targetId,
    expectedVersion: o.expectedVersion,
  });
}

function isClient(db: Queryable): db is PoolClient {
  return typeof (db as Partial<PoolClient>).release === 'function';
}

function short(hash: string): string {
  return hash.length > 12 ? `${hash.slice(0, 12)}…` : JSON.stringify(hash);
}
