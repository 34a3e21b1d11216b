/**
 * The cleanup path for tasks the server ended: a run terminated (by an operator, or by Temporal
 * for exceeding a limit), timed out, or failed before its episode was recorded leaves no episode
 * and a `CairnTaskStatus` that still says `running` (a closed workflow's search attributes can no
 * longer change). The sweep finds such task workflows and records a `failed` episode with the
 * reason, so the task's record, its key binding and `cairn task list` tell the truth.
 */
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type pg from 'pg';
import { recordEpisode } from './store/episodes';
import { taskKeyFromWorkflowId, type TaskResult } from './shared/task';
import type { TaskWorkflowArgs } from '../workflows/task';

export interface SweptTask {
  taskKey: string;
  workflowId: string;
  runId: string;
  status: string;
  reason: string;
}

const ENDED_WITHOUT_EPISODE =
  "WorkflowType = 'taskWorkflow' AND ExecutionStatus IN ('Terminated', 'TimedOut', 'Failed')";

export async function sweepEndedTasks(
  client: Client,
  pool: pg.Pool,
  opts: { limit?: number } = {},
): Promise<SweptTask[]> {
  const swept: SweptTask[] = [];
  for await (const wf of client.workflow.list({ query: ENDED_WITHOUT_EPISODE })) {
    if (swept.length >= (opts.limit ?? 500)) break;
    const taskKey = taskKeyFromWorkflowId(wf.workflowId);
    if (taskKey === undefined) continue;
    const { rows } = await pool.query<{ bound: boolean; recorded: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM cairn.task_keys WHERE task_key = $1 AND workflow_id = $2 AND outcome IS NULL) AS bound,
              EXISTS (SELECT 1 FROM cairn.episodes WHERE workflow_id = $2) AS recorded`,
      [taskKey, wf.workflowId],
    );
    // Only a run that owns its key and left no episode: rejected inputs and duplicates never bound.
    if (!rows[0]?.bound || rows[0].recorded) continue;
    const handle = client.workflow.getHandle(wf.workflowId, wf.runId);
    const history = await handle.fetchHistory();
    const events = history.events ?? [];
    const last = events.at(-1);
    const reason =
      last?.workflowExecutionTerminatedEventAttributes?.reason ??
      last?.workflowExecutionFailedEventAttributes?.failure?.message ??
      (last?.workflowExecutionTimedOutEventAttributes ? 'workflow run timed out' : undefined) ??
      'ended by the server';
    const payload = events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    const args = payload
      ? defaultPayloadConverter.fromPayload<Partial<TaskWorkflowArgs>>(payload)
      : undefined;
    const task = (args?.task ?? {}) as { goal?: string; steps?: { id: string; role: string }[] };
    const steps: TaskResult['steps'] =
      args?.carried?.steps.map((s) => ({
        id: s.spec.id,
        role: s.spec.role,
        status: s.status === 'scheduled' ? 'cancelled' : s.status,
        attempts: s.attempts,
      })) ?? (task.steps ?? []).map((s) => ({ id: s.id, role: s.role, status: 'cancelled' as const }));
    const status = wf.status.name.toLowerCase();
    const message = `${status} by the server: ${reason}`;
    const endedAt = (wf.closeTime ?? new Date()).toISOString();
    await recordEpisode(pool, {
      taskKey,
      workflowId: wf.workflowId,
      runId: wf.runId,
      goal: task.goal ?? '(unknown)',
      outcome: 'failed',
      startedAt: (args?.carried?.startedAt ? new Date(args.carried.startedAt) : wf.startTime).toISOString(),
      endedAt,
      steps: steps.map((s) => (s.status === 'cancelled' ? { ...s, error: message } : s)),
      observationIds: args?.carried?.observationIds ?? [],
      messages: args?.carried?.messageCount ?? 0,
      result: {
        taskKey,
        status: 'failed',
        steps,
        observations: args?.carried?.observationCount ?? 0,
        messages: args?.carried?.messageCount ?? 0,
        continuedAsNew: args?.carried?.continuedAsNew ?? 0,
      },
    });
    swept.push({ taskKey, workflowId: wf.workflowId, runId: wf.runId, status, reason });
  }
  return swept;
}
