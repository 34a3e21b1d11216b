/**
 * Context messages in Postgres, keyed by (task_key, id): persisted when they arrive at a task
 * (admission) or when a step sends them within its task, acknowledged once by the step that read
 * them. Ids are the sender's: the same id in two tasks is two messages.
 */
import type pg from 'pg';
import type { ContextMessage } from '../shared/task';

export interface MessageOrigin {
  taskKey: string;
  workflowId?: string;
  activityId?: string;
}

/** Inserts messages that are not stored yet for their task (dedup by task and id). */
export async function persistMessages(
  db: pg.Pool | pg.PoolClient,
  messages: readonly ContextMessage[],
  origin: MessageOrigin,
): Promise<void> {
  if (messages.length === 0) return;
  await db.query(
    `INSERT INTO cairn.context_messages (id, task_key, from_task, from_role, to_role, type, content, sent_by_workflow_id, sent_by_activity_id)
     SELECT m.id, COALESCE(m.to_task, $2), m.from_task, m.from_role, m.to_role, m.type, m.content, $3, $4
       FROM jsonb_to_recordset($1::jsonb) AS m(id text, to_task text, from_task text, from_role text, to_role text, type text, content jsonb)
     ON CONFLICT (task_key, id) DO NOTHING`,
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

/**
 * Admits messages that arrived at a running task: inserts the new ones and returns their ids.
 * An id the task already has (sent earlier, in any run) is a duplicate and not returned, except
 * rows this same batch inserted before (a retried admission must not lose its own messages).
 */
export async function admitMessages(
  db: pg.Pool | pg.PoolClient,
  taskKey: string,
  messages: readonly ContextMessage[],
  by: { batchKey: string },
): Promise<string[]> {
  if (messages.length === 0) return [];
  const { rows } = await db.query<{ id: string }>(
    `WITH batch AS (
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS m(id text, from_task text, from_role text, to_role text, type text, content jsonb)
     ), inserted AS (
       INSERT INTO cairn.context_messages (id, task_key, from_task, from_role, to_role, type, content, sent_by_workflow_id, admitted_by)
       SELECT b.id, $2, b.from_task, b.from_role, b.to_role, b.type, b.content, NULL, $3 FROM batch b
       ON CONFLICT (task_key, id) DO NOTHING
       RETURNING id
     )
     SELECT id FROM inserted
     UNION
     SELECT m.id FROM cairn.context_messages m JOIN batch b ON b.id = m.id WHERE m.task_key = $2 AND m.admitted_by = $3`,
    [
      JSON.stringify(
        messages.map((m) => ({
          id: m.id,
          from_task: m.fromTask ?? null,
          from_role: m.fromRole,
          to_role: m.toRole,
          type: m.type,
          content: m.content,
        })),
      ),
      taskKey,
      by.batchKey,
    ],
  );
  return rows.map((r) => r.id);
}

/** Marks a task's messages read by a completed step. Already-acknowledged messages keep their first ack. */
export async function acknowledgeMessages(
  db: pg.Pool | pg.PoolClient,
  taskKey: string,
  ids: readonly string[],
  by: { workflowId: string; activityId: string },
): Promise<void> {
  if (ids.length === 0) return;
  await db.query(
    `UPDATE cairn.context_messages SET acked_at = clock_timestamp(), acked_by_workflow_id = $3, acked_by_activity_id = $4
      WHERE task_key = $1 AND id = ANY($2::text[]) AND acked_at IS NULL`,
    [taskKey, ids, by.workflowId, by.activityId],
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
    id: string;
    task_key: string;
    from_task: string | null;
    from_role: string;
    to_role: string;
    type: string;
    content: ContextMessage['content'];
    created_at: Date;
    acked_at: Date | null;
    acked_by_activity_id: string | null;
    acked_by_workflow_id: string | null;
  }>(
    `SELECT * FROM cairn.context_messages
      WHERE ($1::text IS NULL OR task_key = $1) AND ($2::text IS NULL OR to_role = $2) AND (NOT $3 OR acked_at IS NULL)
      ORDER BY created_at, task_key, id LIMIT $4`,
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
