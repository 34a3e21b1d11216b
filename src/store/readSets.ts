/**
 * Read sets: what an agent step's attempt read (entity, version, fields), stored with the
 * attempt and linked to the observations it wrote (see migration 003 and
 * docs/read-receipts.md). `recordReadSet` is the write (one statement, inside the step's
 * transaction, before its append); the rest answers "what exactly did this agent see when it
 * decided this?" — down to the entity states it saw, reduced as of the versions it read.
 */
import { z } from 'zod';
import type { EntityState, PolicyResolver } from '../shared/entityState';
import type { ReadSetEntry, StaleConflict, DependsOnReads } from '../shared/readSets';
import type { EntityRef } from '../shared/observation';
import { textArrayLiteral } from './arrayLiteral';
import type { Queryable } from './pool';
import { getEntityState, getEntityVersion } from './observations/read';
import { isoUtc } from './observations/rows';

export interface StepProvenance {
  taskKey: string;
  workflowId: string;
  runId: string;
  activityId: string;
  attempt: number;
  agentId: string;
  role: string;
}

export interface RecordReadSetInput {
  provenance: StepProvenance;
  entries: readonly ReadSetEntry[];
  /** Entities the step is about to append to (locked with the read ones when checking). */
  writes: readonly EntityRef[];
  /** Idempotency keys of the step's items, and each item's mode, in the same order. */
  keys: readonly string[];
  modes: readonly DependsOnReads[];
}

export interface RecordedReadSet {
  readSetId: string;
  /** True when a 'strict' item met conflicts: the refusal is recorded, nothing is linked. */
  refused: boolean;
  conflicts: StaleConflict[];
}

const RECORD_SQL = {
  text: `select read_set_id, refused, conflicts
           from cairn.record_read_set($1, $2, $3, $4::int, $5, $6, $7, $8::text[], $9::text[], $10::int[], $11::text[],
                  $12::text[], $13::text[], $14::text[], $15::text[])`,
};

/** A conflict as the database reports it (cairn.record_read_set, stale flags and refusals). */
export const staleConflictSchema: z.ZodType<StaleConflict> = z.object({
  entityType: z.string(),
  entityId: z.string(),
  versionRead: z.number().int(),
  currentVersion: z.number().int(),
  fields: z.array(z.string()).nullable(),
  observationIds: z.array(z.string()),
});
const recordedRow = z.object({
  read_set_id: z.string(),
  refused: z.boolean(),
  conflicts: z.array(staleConflictSchema),
});

/** Stores the read set, checks staleness when some item asks for it, links the items. One statement. */
export async function recordReadSet(db: Queryable, input: RecordReadSetInput): Promise<RecordedReadSet> {
  if (input.keys.length !== input.modes.length)
    throw new Error(`recordReadSet: ${input.keys.length} keys but ${input.modes.length} modes`);
  const p = input.provenance;
  const e = input.entries;
  const { rows } = await db.query({
    ...RECORD_SQL,
    values: [
      p.workflowId,
      p.runId,
      p.activityId,
      p.attempt,
      p.taskKey,
      p.role,
      p.agentId,
      e.map((x) => x.entityType),
      e.map((x) => x.entityId),
      e.map((x) => x.version),
      e.map((x) => (x.fields === null ? null : textArrayLiteral(x.fields))),
      input.writes.map((w) => w.entityType),
      input.writes.map((w) => w.entityId),
      input.keys,
      input.modes,
    ],
  });
  const r = recordedRow.parse(rows[0]);
  return { readSetId: r.read_set_id, refused: r.refused, conflicts: r.conflicts };
}

export interface ReadSet {
  id: string;
  taskKey: string;
  workflowId: string;
  runId: string;
  activityId: string;
  attempt: number;
  agentId: string;
  role: string;
  createdAt: string;
  entries: ReadSetEntry[];
}

const readSetRow = z.object({
  id: z.string(),
  task_key: z.string(),
  workflow_id: z.string(),
  run_id: z.string(),
  activity_id: z.string(),
  attempt: z.number().int(),
  agent_id: z.string(),
  role: z.string(),
  created_at: z.string(),
  entries: z.array(
    z.object({
      entityType: z.string(),
      entityId: z.string(),
      version: z.number().int(),
      fields: z.array(z.string()).nullable(),
    }),
  ),
});

const READ_SET_SELECT = `
  select r.id, r.task_key, r.workflow_id, r.run_id, r.activity_id, r.attempt, r.agent_id, r.role,
         ${isoUtc('r.created_at')} as created_at,
         coalesce((select jsonb_agg(jsonb_build_object('entityType', e.entity_type, 'entityId', e.entity_id,
                                                       'version', e.version, 'fields', e.fields)
                                    order by e.entity_type, e.entity_id, e.version)
                     from cairn.read_set_entries e where e.read_set_id = r.id), '[]'::jsonb) as entries
    from cairn.read_sets r`;

function parseReadSet(row: unknown): ReadSet {
  const r = readSetRow.parse(row);
  return {
    id: r.id,
    taskKey: r.task_key,
    workflowId: r.workflow_id,
    runId: r.run_id,
    activityId: r.activity_id,
    attempt: r.attempt,
    agentId: r.agent_id,
    role: r.role,
    createdAt: r.created_at,
    entries: r.entries,
  };
}

export async function getReadSet(db: Queryable, readSetId: string): Promise<ReadSet | undefined> {
  const { rows } = await db.query(`${READ_SET_SELECT} where r.id = $1::uuid`, [readSetId]);
  return rows[0] === undefined ? undefined : parseReadSet(rows[0]);
}

/** The read set of the attempt that wrote the observation; undefined when it read nothing (or was written outside a step). */
export async function readSetOfObservation(
  db: Queryable,
  observationId: string,
): Promise<ReadSet | undefined> {
  const { rows } = await db.query(
    `${READ_SET_SELECT}
      join cairn.observation_read_sets l on l.read_set_id = r.id
      join cairn.observations o
        on o.idempotency_key = l.idempotency_key and o.workflow_id = r.workflow_id
       and o.activity_id = r.activity_id and o.attempt = r.attempt
     where o.id = $1::uuid`,
    [observationId],
  );
  return rows[0] === undefined ? undefined : parseReadSet(rows[0]);
}

/** Read sets of a task's step attempts, oldest first (refused attempts included). */
export async function listReadSets(
  db: Queryable,
  filter: { taskKey: string; limit?: number },
): Promise<ReadSet[]> {
  const { rows } = await db.query(`${READ_SET_SELECT} where r.task_key = $1 order by r.created_at limit $2`, [
    filter.taskKey,
    filter.limit ?? 1000,
  ]);
  return rows.map(parseReadSet);
}

export interface ReceiptEntry extends ReadSetEntry {
  /** The entity's version now; above `version` when it moved on since the read. */
  currentVersion: number;
  /** The entity as the agent saw it: reduced as of the version it read (every field). */
  state: EntityState;
}

export interface ReadReceipt {
  observationId: string;
  readSet: ReadSet;
  entries: ReceiptEntry[];
}

/**
 * "What exactly did this agent see when it decided this?": the read set of the observation's
 * attempt with, per entry, the entity state as of the version read (not today's).
 * Null when the observation has no read set. Read-only (no snapshots written).
 */
export async function readReceipt(
  db: Queryable,
  policyOf: PolicyResolver,
  observationId: string,
): Promise<ReadReceipt | null> {
  const readSet = await readSetOfObservation(db, observationId);
  if (!readSet) return null;
  const entries: ReceiptEntry[] = [];
  for (const e of readSet.entries) {
    const ref = { entityType: e.entityType, entityId: e.entityId };
    const state = await getEntityState(db, policyOf, ref, { asOfVersion: e.version, writeSnapshots: false });
    entries.push({ ...e, currentVersion: await getEntityVersion(db, ref), state });
  }
  return { observationId, readSet, entries };
}
