/**
 * Rows of cairn.observations as they come back from Postgres, parsed at the edge into the
 * shared model. Timestamps are selected as ISO 8601 UTC text with microseconds: pg's default
 * Date parsing would drop the microseconds the database recorded.
 */
import { z } from 'zod';
import { OBSERVATION_KINDS, type Json, type StoredObservation } from '../../shared/observation';
import type { AppendedObservation } from './types';

/** SQL for a timestamptz as `2025-01-31T12:00:00.123456Z`. */
export function isoUtc(column: string): string {
  return `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

/** Select list for `parseObservationRow`; qualify with a table alias by passing it. */
export function observationColumns(alias = 'o'): string {
  const c = (name: string) => `${alias}.${name}`;
  return [
    'id',
    'seq',
    'entity_type',
    'entity_id',
    'entity_version',
    'type',
    'schema_version',
    'kind',
    'fields',
    'scope',
    'task_key',
    'workflow_id',
    'run_id',
    'activity_id',
    'attempt',
    'agent_id',
    'role',
    'derived_from',
    'source',
    'target_id',
    'expected_version',
    'idempotency_key',
    'content_hash',
    'prev_hash',
    'chain_hash',
  ]
    .map(c)
    .concat([`${isoUtc(c('observed_at'))} as observed_at`, `${isoUtc(c('recorded_at'))} as recorded_at`])
    .join(', ');
}

const json: z.ZodType<Json> = z.lazy(() =>
  z.union([z.null(), z.boolean(), z.number(), z.string(), z.array(json), z.record(z.string(), json)]),
);

const sourceRow = z.strictObject({
  kind: z.enum(['url', 'document', 'tool-call', 'human', 'other']),
  ref: z.string(),
  detail: z.string().optional(),
});

const observationRow = z.object({
  id: z.string(),
  // bigint arrives as text; seq stays far below 2^53.
  seq: z.union([z.string(), z.number()]).transform(Number),
  entity_type: z.string(),
  entity_id: z.string(),
  entity_version: z.number().int(),
  type: z.string(),
  schema_version: z.number().int(),
  kind: z.enum(OBSERVATION_KINDS),
  fields: z.record(z.string(), json),
  scope: z.string(),
  task_key: z.string(),
  workflow_id: z.string(),
  run_id: z.string(),
  activity_id: z.string(),
  attempt: z.number().int(),
  agent_id: z.string(),
  role: z.string(),
  derived_from: z.array(z.string()),
  source: sourceRow.nullable(),
  target_id: z.string().nullable(),
  expected_version: z.number().int().nullable(),
  observed_at: z.string(),
  recorded_at: z.string(),
  idempotency_key: z.string(),
  content_hash: z.string(),
  prev_hash: z.string(),
  chain_hash: z.string(),
});

export function parseObservationRow(row: unknown): StoredObservation {
  const r = observationRow.parse(row);
  return {
    id: r.id,
    seq: r.seq,
    entityType: r.entity_type,
    entityId: r.entity_id,
    entityVersion: r.entity_version,
    type: r.type,
    schemaVersion: r.schema_version,
    kind: r.kind,
    fields: r.fields,
    scope: r.scope,
    provenance: {
      taskKey: r.task_key,
      workflowId: r.workflow_id,
      runId: r.run_id,
      activityId: r.activity_id,
      attempt: r.attempt,
      agentId: r.agent_id,
      role: r.role,
      derivedFrom: r.derived_from,
      ...(r.source ? { source: r.source } : {}),
    },
    targetId: r.target_id,
    expectedVersion: r.expected_version,
    observedAt: r.observed_at,
    recordedAt: r.recorded_at,
    idempotencyKey: r.idempotency_key,
    contentHash: r.content_hash,
    prevHash: r.prev_hash,
    chainHash: r.chain_hash,
  };
}

const appendedRow = z.object({
  idx: z.number().int(),
  id: z.string(),
  entity_version: z.number().int(),
  recorded_at: z.string(),
  replayed: z.boolean(),
});

type AppendedRow = z.infer<typeof appendedRow>;

/** What `appendedRow.parse` accepts unchanged. */
function isAppendedRow(row: unknown): row is AppendedRow {
  if (typeof row !== 'object' || row === null) return false;
  const r = row as Record<string, unknown>;
  return (
    Number.isSafeInteger(r.idx) &&
    typeof r.id === 'string' &&
    Number.isSafeInteger(r.entity_version) &&
    typeof r.recorded_at === 'string' &&
    typeof r.replayed === 'boolean'
  );
}

/** A row of the append statement, completed with what the caller sent for that item. */
export function parseAppendedRow(
  row: unknown,
  items: readonly { entityType: string; entityId: string; idempotencyKey: string; contentHash: string }[],
): AppendedObservation {
  // Checked by hand (a batch has thousands of rows); zod words the error for a row that fails.
  const r = isAppendedRow(row) ? row : appendedRow.parse(row);
  const item = items[r.idx];
  if (!item) throw new Error(`append_observations returned a row for item ${r.idx} of ${items.length}`);
  return {
    index: r.idx,
    id: r.id,
    entityType: item.entityType,
    entityId: item.entityId,
    entityVersion: r.entity_version,
    idempotencyKey: item.idempotencyKey,
    contentHash: item.contentHash,
    recordedAt: r.recorded_at,
    replayed: r.replayed,
  };
}
