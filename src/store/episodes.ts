/**
 * Episodes: the record a finished task leaves behind, one per task. The task key is bound to
 * its workflow (cairn.task_keys) before any step runs, so a second workflow id or a new run of a
 * finished key never gets this far; the binding keeps the result for re-runs to return.
 */
import type pg from 'pg';
import type { BindTaskKeyInput, BindTaskKeyOutcome, EpisodeInput } from '../shared/episode';
import type { TaskResult } from '../shared/task';

/** Binds a key to a workflow (id + first run id), or reports who holds it; writes nothing then. */
export async function bindTaskKey(
  db: pg.Pool | pg.PoolClient,
  b: BindTaskKeyInput,
): Promise<BindTaskKeyOutcome> {
  await db.query(
    `INSERT INTO cairn.task_keys (task_key, workflow_id, first_run_id) VALUES ($1, $2, $3) ON CONFLICT (task_key) DO NOTHING`,
    [b.taskKey, b.workflowId, b.firstRunId],
  );
  const { rows } = await db.query<{
    workflow_id: string;
    first_run_id: string;
    outcome: TaskResult['status'] | null;
    result: TaskResult | null;
  }>('SELECT workflow_id, first_run_id, outcome, result FROM cairn.task_keys WHERE task_key = $1', [
    b.taskKey,
  ]);
  const row = rows[0]!;
  if (row.workflow_id === b.workflowId && row.first_run_id === b.firstRunId) return { kind: 'bound' };
  return {
    kind: 'taken',
    workflowId: row.workflow_id,
    firstRunId: row.first_run_id,
    outcome: row.outcome,
    result: row.result,
  };
}

/** Which workflow holds a key, and how it ended (null while running); undefined when unbound. */
export async function taskKeyBinding(
  db: pg.Pool | pg.PoolClient,
  taskKey: string,
): Promise<{ workflowId: string; firstRunId: string; outcome: string | null } | undefined> {
  const { rows } = await db.query<{ workflow_id: string; first_run_id: string; outcome: string | null }>(
    'SELECT workflow_id, first_run_id, outcome FROM cairn.task_keys WHERE task_key = $1',
    [taskKey],
  );
  const r = rows[0];
  return r ? { workflowId: r.workflow_id, firstRunId: r.first_run_id, outcome: r.outcome } : undefined;
}

export async function recordEpisode(
  db: pg.Pool | pg.PoolClient,
  e: EpisodeInput,
): Promise<{ episodeId: string }> {
  const inserted = await db.query<{ id: string }>(
    `INSERT INTO cairn.episodes (task_key, workflow_id, run_id, goal, outcome, started_at, ended_at, step_count, steps, observation_ids, message_count)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::uuid[], $11)
     ON CONFLICT (workflow_id) DO NOTHING RETURNING id`,
    [
      e.taskKey,
      e.workflowId,
      e.runId,
      e.goal,
      e.outcome,
      e.startedAt,
      e.endedAt,
      e.steps.length,
      JSON.stringify(e.steps),
      e.observationIds,
      e.messages,
    ],
  );
  // The binding ends with the episode; a key bound to another workflow is left alone.
  await db.query(
    `UPDATE cairn.task_keys SET outcome = $3, result = $4, ended_at = $5
      WHERE task_key = $1 AND workflow_id = $2 AND outcome IS NULL`,
    [e.taskKey, e.workflowId, e.outcome, e.result === undefined ? null : JSON.stringify(e.result), e.endedAt],
  );
  if (inserted.rows[0]) return { episodeId: inserted.rows[0].id };
  const existing = await db.query<{ id: string }>('SELECT id FROM cairn.episodes WHERE workflow_id = $1', [
    e.workflowId,
  ]);
  return { episodeId: existing.rows[0]!.id };
}

export interface Episode {
  id: string;
  taskKey: string;
  workflowId: string;
  runId: string;
  goal: string;
  outcome: string;
  startedAt: string;
  endedAt: string;
  stepCount: number;
  observationIds: string[];
  messageCount: number;
}

export async function listEpisodes(
  db: pg.Pool | pg.PoolClient,
  filter: { taskKey?: string; outcome?: string; limit?: number } = {},
): Promise<Episode[]> {
  const { rows } = await db.query<{
    id: string;
    task_key: string;
    workflow_id: string;
    run_id: string;
    goal: string;
    outcome: string;
    started_at: Date;
    ended_at: Date;
    step_count: number;
    observation_ids: string[];
    message_count: number;
  }>(
    `SELECT * FROM cairn.episodes WHERE ($1::text IS NULL OR task_key = $1) AND ($2::text IS NULL OR outcome = $2)
      ORDER BY ended_at DESC LIMIT $3`,
    [filter.taskKey ?? null, filter.outcome ?? null, filter.limit ?? 50],
  );
  return rows.map((r) => ({
    id: r.id,
    taskKey: r.task_key,
    workflowId: r.workflow_id,
    runId: r.run_id,
    goal: r.goal,
    outcome: r.outcome,
    startedAt: r.started_at.toISOString(),
    endedAt: r.ended_at.toISOString(),
    stepCount: r.step_count,
    observationIds: r.observation_ids,
    messageCount: r.message_count,
  }));
}
