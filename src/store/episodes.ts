/** Episodes: the record a finished task leaves behind. One per task workflow id. */
import type pg from 'pg';
import type { EpisodeInput } from '../shared/activityTypes';

export async function recordEpisode(db: pg.Pool | pg.PoolClient, e: EpisodeInput): Promise<{ episodeId: string }> {
  const inserted = await db.query<{ id: string }>(
    `INSERT INTO cairn.episodes (task_key, workflow_id, run_id, goal, outcome, started_at, ended_at, step_count, steps, observation_ids, message_count)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::uuid[], $11)
     ON CONFLICT (workflow_id) DO NOTHING RETURNING id`,
    [e.taskKey, e.workflowId, e.runId, e.goal, e.outcome, e.startedAt, e.endedAt, e.steps.length, JSON.stringify(e.steps), e.observationIds, e.messages],
  );
  if (inserted.rows[0]) return { episodeId: inserted.rows[0].id };
  const existing = await db.query<{ id: string }>('SELECT id FROM cairn.episodes WHERE workflow_id = $1', [e.workflowId]);
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

export async function listEpisodes(db: pg.Pool | pg.PoolClient, filter: { taskKey?: string; outcome?: string; limit?: number } = {}): Promise<Episode[]> {
  const { rows } = await db.query<{
    id: string; task_key: string; workflow_id: string; run_id: string; goal: string; outcome: string;
    started_at: Date; ended_at: Date; step_count: number; observation_ids: string[]; message_count: number;
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
