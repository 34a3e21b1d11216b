/**
 * Quarantine and retraction: `retract` appends a `retraction` observation (the reducer then folds
 * the entity as if the observation had never been written) and opens a quarantine on it; while
 * a quarantine is active, the retracted observation's blast radius is *tainted* in reads. Taint
 * is computed at read time from the active quarantines and the closure
 * (src/store/blastRadius.ts): the log is never rewritten, and observations that build on
 * tainted state after the retraction are tainted too.
 * Lifting a quarantine is a row of its own (cairn.quarantine_lifts), never a delete, plus a
 * retraction of the quarantine's retraction: the observation counts again, so every view is
 * what it was before the quarantine.
 */
import type { Pool } from 'pg';
import { z } from 'zod';
import type { EntityState, PolicyResolver } from '../shared/entityState';
import type { EntityRef } from '../shared/observation';
import { defineObservationType, ObservationTypeRegistry } from '../shared/observationTypes';
import { closureOf, retractionVersionOf, type BlastNode, type ClosureOptions } from './blastRadius';
import { appendObservations, type AppendedObservation } from './observations/append';
import { getEntityState, type EntityStateOptions } from './observations/read';
import { isoUtc } from './observations/rows';
import { withTransaction, type Queryable } from './pool';

export interface Quarantine {
  id: string;
  rootObservationId: string;
  retractionId: string;
  reason: string;
  createdBy: string;
  createdAt: string;
  lifted: { by: string; reason: string; at: string } | null;
}

export interface RetractOptions {
  reason: string;
  /** Who retracts (a person or a system), recorded as the retraction's agent id. */
  by: string;
}

export interface Retraction {
  retraction: AppendedObservation;
  quarantine: Quarantine;
  /** True when the observation was already under an active quarantine (nothing new written). */
  alreadyQuarantined: boolean;
}

/** The role system-written retractions carry. */
export const SYSTEM_ROLE = 'cairn';

const targetRow = z.object({
  entity_type: z.string(),
  scope: z.string(),
  entity_id: z.string(),
  type: z.string(),
  schema_version: z.number().int(),
  task_key: z.string(),
});

/**
 * Retracts `observationId` and quarantines its blast radius. Idempotent: an observation under
 * an active quarantine returns that quarantine and its retraction; one whose quarantine was
 * lifted (its retraction retracted) gets a new quarantine with a new retraction.
 */
export async function retract(pool: Pool, id: string, opts: RetractOptions): Promise<Retraction> {
  const observationId = checkUuid('retract', id);
  const reason = opts.reason.trim();
  const by = opts.by.trim();
  if (reason === '') throw new Error('retract: a reason is required');
  if (by === '') throw new Error('retract: `by` (who retracts) is required');
  return withTransaction(pool, async (client) => {
    // Serializes retractions of one observation, so two at once open one quarantine.
    await client.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', [
      `cairn:retract:${observationId}`,
    ]);
    const target = await client.query(
      'select entity_type, entity_id, scope, type, schema_version, task_key from cairn.observations where id = $1::uuid',
      [observationId],
    );
    if (target.rows[0] === undefined) throw new Error(`retract: no observation ${observationId} in the log`);
    const t = targetRow.parse(target.rows[0]);
    const active = (await listQuarantines(client, { rootObservationId: observationId })).find(
      (q) => q.lifted === null,
    );
    if (active) {
      const retraction = await storedRetraction(client, { id: active.retractionId }, t);
      if (!retraction) throw new Error(`retract: quarantine ${active.id}'s retraction is not in the log`);
      return { retraction, quarantine: active, alreadyQuarantined: true };
    }
    // One retraction per quarantine: a lift withdrew the earlier ones, so a new quarantine
    // needs its own (the first keeps the original key, so earlier logs replay).
    const earlier = (await listQuarantines(client, { rootObservationId: observationId })).length;
    const key = `cairn:retraction:${observationId}${earlier === 0 ? '' : `:${earlier + 1}`}`;
    const retraction =
      (await storedRetraction(client, { key }, t)) ??
      (await appendRetraction(client, observationId, key, t, by, reason));
    const inserted = await client.query<{ id: string }>(
      `insert into cairn.quarantines (root_observation_id, retraction_id, reason, created_by)
       values ($1::uuid, $2::uuid, $3, $4) returning id`,
      [observationId, retraction.id, reason, by],
    );
    const quarantine = await getQuarantine(client, inserted.rows[0]!.id);
    return { retraction, quarantine: quarantine!, alreadyQuarantined: false };
  });
}

type TargetRow = z.infer<typeof targetRow>;

async function appendRetraction(
  client: Queryable,
  observationId: string,
  key: string,
  t: TargetRow,
  by: string,
  reason: string,
): Promise<AppendedObservation> {
  // A retraction carries no fields; its type is the target's (the store requires a target of the
  // same entity), checked against an empty schema, so no registry of the writers' types is needed.
  const registry = new ObservationTypeRegistry([
    defineObservationType({ name: t.type, version: t.schema_version, entity: t.entity_type, fields: {} }),
  ]);
  const [appended] = await appendObservations(
    client,
    registry,
    [
      {
        entityType: t.entity_type,
        entityId: t.entity_id,
        type: t.type,
        schemaVersion: t.schema_version,
        kind: 'retraction',
        targetId: observationId,
        fields: {},
        idempotencyKey: key,
        // The target's scope, filed under its task: the retraction lives where its entity does.
        scope: t.scope,
        source: { kind: 'human', ref: by, detail: reason },
      },
    ],
    {
      // System provenance: written outside any workflow, filed under the target's task and scope.
      provenance: {
        taskKey: t.task_key,
        workflowId: '',
        runId: '',
        activityId: '',
        attempt: 0,
        agentId: by,
        role: SYSTEM_ROLE,
      },
      idempotencyPrefix: key,
      observedAt: new Date().toISOString(),
    },
  );
  if (!appended) throw new Error('retract: the append returned no row');
  return appended;
}

async function storedRetraction(
  client: Queryable,
  which: { key: string } | { id: string },
  t: TargetRow,
): Promise<AppendedObservation | undefined> {
  const { rows } = await client.query<{
    id: string;
    entity_version: number;
    recorded_at: string;
    content_hash: string;
    idempotency_key: string;
  }>(
    `select id, entity_version, ${isoUtc('recorded_at')} as recorded_at, content_hash, idempotency_key
       from cairn.observations where ${'key' in which ? 'idempotency_key = $1' : 'id = $1::uuid'}`,
    ['key' in which ? which.key : which.id],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    index: 0,
    id: row.id,
    entityType: t.entity_type,
    entityId: t.entity_id,
    entityVersion: row.entity_version,
    idempotencyKey: row.idempotency_key,
    contentHash: row.content_hash,
    recordedAt: row.recorded_at,
    replayed: true,
  };
}

/**
 * Lifts an active quarantine: a row in cairn.quarantine_lifts and, in the same transaction, a
 * retraction of the quarantine's retraction (so the observation counts again: the view is what
 * it was before the quarantine). Lifting twice is an error.
 */
export async function liftQuarantine(
  pool: Pool,
  id: string,
  opts: { by: string; reason: string },
): Promise<Quarantine> {
  const quarantineId = checkUuid('liftQuarantine', id);
  const by = opts.by.trim();
  const reason = opts.reason.trim();
  if (by === '' || reason === '') throw new Error('liftQuarantine: `by` and `reason` are required');
  return withTransaction(pool, async (client) => {
    const { rowCount } = await client.query(
      `insert into cairn.quarantine_lifts (quarantine_id, lifted_by, reason)
       select q.id, $2, $3 from cairn.quarantines q where q.id = $1::uuid
       on conflict (quarantine_id) do nothing`,
      [quarantineId, by, reason],
    );
    const q = await getQuarantine(client, quarantineId);
    if (!q) throw new Error(`liftQuarantine: no quarantine ${quarantineId}`);
    if (rowCount === 0)
      throw new Error(
        `liftQuarantine: quarantine ${quarantineId} was already lifted by ${q.lifted?.by ?? '?'} at ${q.lifted?.at ?? '?'}`,
      );
    const target = await client.query(
      'select entity_type, entity_id, scope, type, schema_version, task_key from cairn.observations where id = $1::uuid',
      [q.retractionId],
    );
    if (target.rows[0] === undefined)
      throw new Error(`liftQuarantine: the quarantine's retraction ${q.retractionId} is not in the log`);
    const key = `cairn:lift:${quarantineId}`;
    const t = targetRow.parse(target.rows[0]);
    if (!(await storedRetraction(client, { key }, t)))
      await appendRetraction(client, q.retractionId, key, t, by, reason);
    return q;
  });
}

const quarantineRow = z.object({
  id: z.string(),
  root_observation_id: z.string(),
  retraction_id: z.string(),
  reason: z.string(),
  created_by: z.string(),
  created_at: z.string(),
  lifted_by: z.string().nullable(),
  lift_reason: z.string().nullable(),
  lifted_at: z.string().nullable(),
});

const QUARANTINE_SELECT = `
  select q.id, q.root_observation_id, q.retraction_id, q.reason, q.created_by, ${isoUtc('q.created_at')} as created_at,
         l.lifted_by, l.reason as lift_reason, case when l.lifted_at is null then null else ${isoUtc('l.lifted_at')} end as lifted_at
    from cairn.quarantines q left join cairn.quarantine_lifts l on l.quarantine_id = q.id`;

function parseQuarantine(row: unknown): Quarantine {
  const r = quarantineRow.parse(row);
  return {
    id: r.id,
    rootObservationId: r.root_observation_id,
    retractionId: r.retraction_id,
    reason: r.reason,
    createdBy: r.created_by,
    createdAt: r.created_at,
    lifted:
      r.lifted_by === null ? null : { by: r.lifted_by, reason: r.lift_reason ?? '', at: r.lifted_at ?? '' },
  };
}

export async function getQuarantine(db: Queryable, id: string): Promise<Quarantine | undefined> {
  const { rows } = await db.query(`${QUARANTINE_SELECT} where q.id = $1::uuid`, [id]);
  return rows[0] === undefined ? undefined : parseQuarantine(rows[0]);
}

export async function listQuarantines(
  db: Queryable,
  filter: { active?: boolean; rootObservationId?: string } = {},
): Promise<Quarantine[]> {
  const { rows } = await db.query(
    `${QUARANTINE_SELECT}
      where ($1::boolean is null or (l.quarantine_id is null) = $1) and ($2::uuid is null or q.root_observation_id = $2::uuid)
      order by q.created_at`,
    [filter.active ?? null, filter.rootObservationId ?? null],
  );
  return rows.map(parseQuarantine);
}

/** A tainted observation: which quarantine reaches it, and the hop it was reached by. */
export interface TaintMark extends BlastNode {
  quarantineId: string;
}

export interface Taint {
  marks: ReadonlyMap<string, TaintMark>;
  quarantines: Quarantine[];
  /** The walk hit its limit: some tainted observations may be missing. */
  truncated: boolean;
}

export const NO_TAINT: Taint = { marks: new Map(), quarantines: [], truncated: false };

/**
 * The taint of every active quarantine, now: their roots' closure. Cheap when nothing is
 * quarantined (one indexed query).
 */
export async function loadTaint(db: Queryable, opts: ClosureOptions = {}): Promise<Taint> {
  const quarantines = await listQuarantines(db, { active: true });
  if (quarantines.length === 0) return NO_TAINT;
  const byRoot = new Map<string, Quarantine>();
  for (const q of quarantines) if (!byRoot.has(q.rootObservationId)) byRoot.set(q.rootObservationId, q);
  const seeds = [];
  for (const root of byRoot.keys())
    seeds.push({ observationId: root, retractedAtVersion: await retractionVersionOf(db, root) });
  const closure = await closureOf(db, seeds, opts);
  const marks = new Map<string, TaintMark>();
  for (const n of closure.nodes)
    marks.set(n.observationId, { ...n, quarantineId: byRoot.get(n.rootId)?.id ?? '' });
  return { marks, quarantines, truncated: closure.truncated };
}

/** The hops from the quarantined root down to `observationId` (root first); empty if untainted. */
export function taintPath(taint: Taint, observationId: string): TaintMark[] {
  const path: TaintMark[] = [];
  const seen = new Set<string>();
  for (let id: string | null = observationId; id !== null && !seen.has(id);) {
    seen.add(id);
    const mark = taint.marks.get(id);
    if (!mark) break;
    path.unshift(mark);
    id = mark.parentId;
  }
  return path;
}

export interface TaintedField {
  field: string;
  /** The tainted observation the value rests on. */
  observationId: string;
  quarantineId: string;
  rootObservationId: string;
}

/** Fields of `state` whose value rests on a tainted observation (winner or a set element's contributor). */
export function taintedFields(state: EntityState, taint: Taint): TaintedField[] {
  if (taint.marks.size === 0) return [];
  const out: TaintedField[] = [];
  for (const name of Object.keys(state.fields).sort()) {
    const f = state.fields[name]!;
    // A set keeps each element's first contributor (bounded state); the winner is the latest.
    const candidates = [f.winner, ...Object.values(f.contributors ?? {}).map((c) => c.first)];
    const hit = candidates.find(
      (c) => taint.marks.has(c.observationId) && (c !== f.winner || f.value !== undefined),
    );
    const mark = hit && taint.marks.get(hit.observationId);
    if (mark)
      out.push({
        field: name,
        observationId: mark.observationId,
        quarantineId: mark.quarantineId,
        rootObservationId: mark.rootId,
      });
  }
  return out;
}

/**
 * The entity as if its tainted observations had never been written (they count as withdrawn:
 * an untainted earlier value shows through, and a tainted retraction withdraws nothing), at the
 * version of `state`. The fold starts below the first tainted version (snapshots serve that).
 */
export async function withoutTainted(
  db: Queryable,
  policyOf: PolicyResolver,
  state: EntityState,
  taint: Taint,
): Promise<EntityState> {
  const ref = { entityType: state.entityType, entityId: state.entityId };
  const ids = new Set<string>();
  let lowestVersion = Infinity;
  for (const m of taint.marks.values()) {
    if (m.entityType === ref.entityType && m.entityId === ref.entityId && m.entityVersion <= state.version) {
      ids.add(m.observationId);
      lowestVersion = Math.min(lowestVersion, m.entityVersion);
    }
  }
  if (ids.size === 0) return state;
  return getEntityState(db, policyOf, ref, {
    asOfVersion: state.version,
    writeSnapshots: false,
    without: { ids, lowestVersion },
  });
}

/** The entity now, without what rests on the given taint (see withoutTainted). */
export async function getEntityStateWithoutTainted(
  db: Queryable,
  policyOf: PolicyResolver,
  ref: EntityRef,
  taint: Taint,
  opts: Omit<EntityStateOptions, 'stats'> = {},
): Promise<EntityState> {
  return withoutTainted(db, policyOf, await getEntityState(db, policyOf, ref, opts), taint);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Lower-cased (as Postgres prints uuids, and as keys derived from them must be). */
export function checkUuid(what: string, id: string): string {
  const lower = id.trim().toLowerCase();
  if (!UUID.test(lower)) throw new Error(`${what}: "${id}" is not an id (a uuid)`);
  return lower;
}
