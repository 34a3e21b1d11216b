/**
 * Step completions (migration 007): a step's transaction records the result it returns, so an
 * attempt that Temporal runs again after the step committed (worker killed in the commit window,
 * completion lost while the Temporal frontend was down) returns that result instead of running
 * the agent again. See docs/production.md, "What a retry repeats".
 */
import type { StepResult } from '../shared/task';
import type { Queryable } from './pool';

export interface StepKey {
  workflowId: string;
  activityId: string;
}

export interface StepCompletion {
  result: StepResult;
  /** The attempt whose transaction committed the step. */
  attempt: number;
  committedAt: Date;
}

export interface StepCompletionRecord extends StepKey {
  runId: string;
  attempt: number;
  taskKey: string;
  role: string;
  result: StepResult;
  /** The read set the step decided on, if it read memory. */
  readSetId: string | null;
}

/**
 * The step's completion, or undefined. In the step's commit transaction this also takes the
 * step's lock until COMMIT, so of two concurrent attempts one writes and the other then finds
 * its completion.
 */
export async function findStepCompletion(db: Queryable, key: StepKey): Promise<StepCompletion | undefined> {
  const { rows } = await db.query<{ result: StepResult; attempt: number; committed_at: Date }>(
    'select result, attempt, committed_at from cairn.step_completion($1, $2)',
    [key.workflowId, key.activityId],
  );
  const row = rows[0];
  return row ? { result: row.result, attempt: row.attempt, committedAt: row.committed_at } : undefined;
}

/** Records the step's completion; call inside the step's transaction, after its writes. */
export async function recordStepCompletion(db: Queryable, rec: StepCompletionRecord): Promise<void> {
  await db.query(
    'select cairn.record_step_completion($1, $2, $3, $4::int, $5, $6, $7::jsonb, $8::uuid[], $9::uuid)',
    [
      rec.workflowId,
      rec.activityId,
      rec.runId,
      rec.attempt,
      rec.taskKey,
      rec.role,
      // JSON text, not the object: pg would turn a top-level array into a Postgres array.
      JSON.stringify(rec.result),
      rec.result.observations.map((o) => o.id),
      rec.readSetId,
    ],
  );
}
