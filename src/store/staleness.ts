/**
 * Stale-decision detection: inside a step's transaction, before its append, the read set is
 * recorded and checked against everything committed since the reads (with the heads of the
 * read and written entities locked, so the answer cannot change before COMMIT).
 *
 * - `strict` items (decisions by default): any conflict refuses the attempt. Its writes roll
 *   back; the refusal and its read set are then committed on their own (they are evidence), and
 *   StaleReadError (retryable) sends the step back to Temporal, whose retry re-reads and decides again.
 * - `warn` items: written, and flagged `stale` with the conflicts (cairn.observation_flags).
 * - `off` items: no check (the read set is still stored and linked).
 * A conflict = an observation above the version read that touched a field the step read
 * (any field when the step read them all). See docs/read-receipts.md.
 */
import type { Pool } from 'pg';
import { z } from 'zod';
import { StaleReadError } from '../shared/errors';
import type { EntityRef } from '../shared/observation';
import type { ObservationTypeRegistry } from '../shared/observationTypes';
import {
  resolveDependsOnReads,
  type DependsOnReads,
  type DependsOnReadsByType,
  type ReadSetEntry,
  type StaleConflict,
} from '../shared/readSets';
import {
  appendObservations,
  type AppendContext,
  type AppendedObservation,
  type AppendItem,
} from './observations/append';
import { isoUtc } from './observations/rows';
import { pgError, withTransaction, type Queryable } from './pool';
import { recordReadSet, staleConflictSchema, type RecordedReadSet, type StepProvenance } from './readSets';
import { countFlaggedStale, tracedCommit } from '../telemetry/instrument';

/** An append item as an agent step buffers it: how it depends on the step's reads. */
export type StepAppendItem = AppendItem & {
  /** Default: the agent's per-type default, else `strict` for decisions and `off` for the rest. */
  dependsOnReads?: DependsOnReads;
};

export interface ReadReceiptOptions {
  provenance: StepProvenance;
  /** The step's default idempotency prefix (workflow id + ':' + activity id). */
  idempotencyPrefix: string;
  entries: readonly ReadSetEntry[];
  items: readonly StepAppendItem[];
  dependsOnReadsByType?: DependsOnReadsByType;
}

/** A step's writes as the read receipt sees them; made once per attempt by planReadReceipt. */
export interface ReadReceiptPlan {
  provenance: StepProvenance;
  entries: readonly ReadSetEntry[];
  /** The items without `dependsOnReads`, each with its idempotency key made explicit (the link is by key). */
  items: AppendItem[];
  keys: string[];
  modes: DependsOnReads[];
  writes: EntityRef[];
}

export function planReadReceipt(opts: ReadReceiptOptions): ReadReceiptPlan {
  const items: AppendItem[] = [];
  const keys: string[] = [];
  const modes: DependsOnReads[] = [];
  opts.items.forEach((item, index) => {
    const { dependsOnReads, ...plain } = item;
    const idempotencyKey = plain.idempotencyKey ?? `${opts.idempotencyPrefix}:${index}`;
    items.push({ ...plain, idempotencyKey });
    keys.push(idempotencyKey);
    modes.push(
      resolveDependsOnReads(
        { kind: plain.kind, type: plain.type, dependsOnReads },
        opts.dependsOnReadsByType,
      ),
    );
  });
  return {
    provenance: opts.provenance,
    entries: opts.entries,
    items,
    keys,
    modes,
    writes: uniqueRefs(items),
  };
}

/** Thrown inside the step's transaction; withReadReceipt turns it into a recorded StaleReadError. */
class RefusedAttempt extends Error {
  constructor(readonly conflicts: StaleConflict[]) {
    super('stale read (refused attempt; recorded after rollback)');
  }
}

/**
 * Inside the step's transaction, before its append: records the read set, checks it (heads
 * locked until COMMIT), links the items. Throws when a strict item's reads moved on — let it
 * propagate to withReadReceipt, which rolls back, records the refusal, throws StaleReadError.
 */
export async function checkReadReceipt(
  client: Queryable,
  plan: ReadReceiptPlan,
): Promise<RecordedReadSet | null> {
  if (plan.entries.length === 0) return null;
  const receipt = await recordReadSet(client, plan);
  if (receipt.refused) throw new RefusedAttempt(receipt.conflicts);
  countFlaggedStale(receipt);
  return receipt;
}

const DEADLOCK = '40P01';

/**
 * Runs the step's transaction `run` (which calls checkReadReceipt before appending), with:
 * - refusals recorded: after `run` rolled back, the refused attempt's read set and conflicts
 *   are committed on their own (they are evidence), then StaleReadError (retryable) is thrown;
 * - deadlocks retried: Postgres broke a lock cycle (40P01) and rolled `run` back; everything in
 *   it is idempotent, so it runs again, a bounded number of times.
 */
export const withReadReceipt = tracedCommit(withReadReceiptUntraced);
async function withReadReceiptUntraced<T>(
  pool: Pool,
  plan: ReadReceiptPlan,
  run: () => Promise<T>,
  opts: { deadlockAttempts?: number } = {},
): Promise<T> {
  const maxAttempts = opts.deadlockAttempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (err instanceof RefusedAttempt) {
        const readSetId = await recordStaleRefusal(pool, plan, err.conflicts);
        throw new StaleReadError(err.conflicts, readSetId);
      }
      if (pgError(err)?.code === DEADLOCK && attempt < maxAttempts) {
        await sleep(5 + Math.random() * 20 * attempt);
        continue;
      }
      throw err;
    }
  }
}

async function recordStaleRefusal(
  pool: Pool,
  plan: ReadReceiptPlan,
  conflicts: StaleConflict[],
): Promise<string> {
  const p = plan.provenance;
  const entries = plan.entries.map((e) => ({ t: e.entityType, i: e.entityId, v: e.version, f: e.fields }));
  const { rows } = await pool.query<{ id: string }>(
    `select cairn.record_stale_refusal($1, $2, $3, $4::int, $5, $6, $7, $8::jsonb, $9::text[], $10::jsonb) as id`,
    [
      p.workflowId,
      p.runId,
      p.activityId,
      p.attempt,
      p.taskKey,
      p.role,
      p.agentId,
      JSON.stringify(entries),
      plan.keys,
      JSON.stringify(conflicts),
    ],
  );
  return rows[0]!.id;
}

/** An append outside an agent step, behind a read receipt (what tests and benchmarks use). */
export async function appendWithReads(
  pool: Pool,
  registry: ObservationTypeRegistry,
  items: readonly StepAppendItem[],
  ctx: AppendContext,
  entries: readonly ReadSetEntry[],
  opts: { dependsOnReadsByType?: DependsOnReadsByType } = {},
): Promise<{ appended: AppendedObservation[]; receipt: RecordedReadSet | null }> {
  const plan = planReadReceipt({
    provenance: ctx.provenance,
    idempotencyPrefix: ctx.idempotencyPrefix,
    entries,
    items,
    ...opts,
  });
  return withReadReceipt(pool, plan, () =>
    withTransaction(pool, (client) => appendBehindReadReceipt(client, registry, plan, plan.items, ctx)),
  );
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };
const settle = <T>(p: Promise<T>): Promise<Settled<T>> =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );

/**
 * checkReadReceipt then appendObservations, inside the caller's transaction, sent together: the
 * pool pipelines, so the append travels with the read set (one round trip instead of two). The
 * database still runs them in that order (read set recorded and checked, heads locked, then the
 * append), and the outcome is the sequential one: a refused read set throws RefusedAttempt (the
 * append that ran behind it is rolled back with the transaction by withReadReceipt), a failed
 * read set throws its error, otherwise the append's result or error.
 */
export async function appendBehindReadReceipt(
  client: Queryable,
  registry: ObservationTypeRegistry,
  plan: ReadReceiptPlan,
  items: AppendItem[],
  ctx: AppendContext,
): Promise<{ appended: AppendedObservation[]; receipt: RecordedReadSet | null }> {
  const receipt = settle(checkReadReceipt(client, plan));
  const appended = settle(appendObservations(client, registry, items, ctx));
  const r = await receipt;
  const a = await appended;
  if (!r.ok) throw r.error;
  if (!a.ok) throw a.error;
  return { appended: a.value, receipt: r.value };
}

function uniqueRefs(items: readonly AppendItem[]): { entityType: string; entityId: string }[] {
  const seen = new Map<string, { entityType: string; entityId: string }>();
  for (const i of items)
    seen.set(`${i.entityType}\u0000${i.entityId}`, { entityType: i.entityType, entityId: i.entityId });
  return [...seen.values()];
}

export interface StaleFlag {
  observationId: string;
  readSetId: string;
  conflicts: StaleConflict[];
  flaggedAt: string;
}

const flagRow = z.object({
  observation_id: z.string(),
  read_set_id: z.string(),
  details: z.object({ conflicts: z.array(staleConflictSchema) }),
  created_at: z.string(),
});

/** Observations among `observationIds` flagged stale (written under 'warn' on moved-on reads). */
export async function staleFlags(
  db: Queryable,
  observationIds: readonly string[],
): Promise<Map<string, StaleFlag>> {
  const out = new Map<string, StaleFlag>();
  if (observationIds.length === 0) return out;
  const { rows } = await db.query(
    `select o.id as observation_id, f.read_set_id, f.details, ${isoUtc('f.created_at')} as created_at
       from cairn.observations o
       join cairn.observation_flags f on f.idempotency_key = o.idempotency_key and f.flag = 'stale'
       -- The flag of the attempt that wrote it (a replaying retry may have added its own).
       join cairn.read_sets r
         on r.id = f.read_set_id and r.workflow_id = o.workflow_id and r.activity_id = o.activity_id and r.attempt = o.attempt
      where o.id = any($1::uuid[])`,
    [observationIds],
  );
  for (const row of rows) {
    const r = flagRow.parse(row);
    out.set(r.observation_id, {
      observationId: r.observation_id,
      readSetId: r.read_set_id,
      conflicts: r.details.conflicts,
      flaggedAt: r.created_at,
    });
  }
  return out;
}

export interface StaleRefusal {
  id: string;
  readSetId: string;
  taskKey: string;
  workflowId: string;
  activityId: string;
  attempt: number;
  role: string;
  agentId: string;
  /** The items the refused attempt would have written. */
  idempotencyKeys: string[];
  conflicts: StaleConflict[];
  refusedAt: string;
}

const refusalRow = z.object({
  id: z.string(),
  read_set_id: z.string(),
  task_key: z.string(),
  workflow_id: z.string(),
  activity_id: z.string(),
  attempt: z.number().int(),
  role: z.string(),
  agent_id: z.string(),
  idempotency_keys: z.array(z.string()),
  conflicts: z.array(staleConflictSchema),
  created_at: z.string(),
});

/** Refused attempts, oldest first, filtered by task or workflow. */
export async function listStaleRefusals(
  db: Queryable,
  filter: { taskKey?: string; workflowId?: string; limit?: number } = {},
): Promise<StaleRefusal[]> {
  const { rows } = await db.query(
    `select s.id, s.read_set_id, r.task_key, r.workflow_id, r.activity_id, r.attempt, r.role, r.agent_id,
            s.idempotency_keys, s.conflicts, ${isoUtc('s.created_at')} as created_at
       from cairn.stale_refusals s join cairn.read_sets r on r.id = s.read_set_id
      where ($1::text is null or r.task_key = $1) and ($2::text is null or r.workflow_id = $2)
      order by s.created_at
      limit $3`,
    [filter.taskKey ?? null, filter.workflowId ?? null, filter.limit ?? 1000],
  );
  return rows.map((row) => {
    const r = refusalRow.parse(row);
    return {
      id: r.id,
      readSetId: r.read_set_id,
      taskKey: r.task_key,
      workflowId: r.workflow_id,
      activityId: r.activity_id,
      attempt: r.attempt,
      role: r.role,
      agentId: r.agent_id,
      idempotencyKeys: r.idempotency_keys,
      conflicts: r.conflicts,
      refusedAt: r.created_at,
    };
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
