/** Context messages in Postgres: persisted on send or delivery, acknowledged once. */
import type pg from 'pg';
import type { ContextMessage } from '../shared/task';

export interface MessageOrigin {
  taskKey: string;
  workflowId?: string;
  activityId?: string;
}

/** Inserts messages that are not stored yet (dedup by id). */
export async function persistMessages(db: pg.Pool | pg.PoolClient, messages: readonly ContextMessage[], origin: MessageOrigin): Promise<void> {
  if (messages.length === 0) return;
  await db.query(
    `INSERT INTO cairn.context_messages (id, task_key, from_task, from_role, to_role, type, content, sent_by_workflow_id, sent_by_activity_id)
     SELECT m.id, COALESCE(m.to_task, $2), m.from_task, m.from_role, m.to_role, m.type, m.content, $3, $4
       FROM jsonb_to_recordset($1::jsonb) AS m(id text, to_task text, from_task text, from_role text, to_role text, type text, content jsonb)
     ON CONFLICT (id) DO NOTHING`,
    [
      JSON.stringify(
        messages.map((m) => ({
          id: m.id,
          to_task: m.toTask ?? null,
          from_task: m.fromTask ?? null,
          from_role: m.fromRole,
          to_role: m.toRole,
          type: m.type,
          content: m.content,
        })),
      ),
      origin.taskKey,
      origin.workflowId ?? null,
      origin.activityId ?? null,
    ],
  );
}

/** Marks messages read by a completed step. Already-acknowledged messages keep their first ack. */
export async function acknowledgeMessages(db: pg.Pool | pg.PoolClient, ids: readonly string[], by: { workflowId: string; activityId: string }): Promise<void> {
  if (ids.length === 0) return;
  await db.query(
    `UPDATE cairn.context_messages SET acked_at = clock_timestamp(), acked_by_workflow_id = $2, acked_by_activity_id = $3
      WHERE id = ANY($1::text[]) AND acked_at IS NULL`,
    [ids, by.workflowId, by.activityId],
  );
}

export interface StoredMessage extends ContextMessage {
  taskKey: string;
  createdAt: string;
  ackedAt: string | null;
  ackedBy: string | null;
}

export async function listMessages(
  db: pg.Pool | pg.PoolClient,
  filter: { taskKey?: string; toRole?: string; unreadOnly?: boolean; limit?: number },
): Promise<StoredMessage[]> {
  const { rows } = await db.query<{
    id: string; task_key: string; from_task: string | null; from_role: string; to_role: string; type: string;
    content: ContextMessage['content']; created_at: Date; acked_at: Date | null; acked_by_activity_id: string | null; acked_by_workflow_id: string | null;
  }>(
    `SELECT * FROM cairn.context_messages
      WHERE ($1::text IS NULL OR task_key = $1) AND ($2::text IS NULL OR to_role = $2) AND (NOT $3 OR acked_at IS NULL)
      ORDER BY created_at, id LIMIT $4`,
    [filter.taskKey ?? null, filter.toRole ?? null, filter.unreadOnly ?? false, filter.limit ?? 100],
  );
  return rows.map((r) => ({
    id: r.id,
    taskKey: r.task_key,
    ...(r.from_task ? { fromTask: r.from_task } : {}),
    fromRole: r.from_role,
    toRole: r.to_role,
    type: r.type,
    content: r.content,
    createdAt: r.created_at.toISOString(),
    ackedAt: r.acked_at?.toISOString() ?? null,
    ackedBy: r.acked_by_workflow_id ? `${r.acked_by_workflow_id}/${r.acked_by_activity_id ?? ''}` : null,
  }));
}
