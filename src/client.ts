/**
 * CairnClient: what orchestrators use to start tasks, send context, read and write working
 * memory, cancel and collect results. Task ids derive from task keys, so starting twice returns
 * the running task, and a finished task is never silently rerun.
 */
import {
  Client,
  Connection,
  WorkflowExecutionAlreadyStartedError,
  WorkflowIdConflictPolicy,
  WorkflowIdReusePolicy,
  WorkflowUpdateFailedError,
  type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { FAILURE_TYPES, WorkingMemoryConflictError } from './shared/errors';
import { TypedSearchAttributes } from '@temporalio/common';
import { DEFAULT_TEMPORAL_RETRY_MS, type CairnConfig } from './config';
import { withTemporalRetry } from './temporalRetry';
import { temporalConnectionOptions } from './temporalConnection';
import {
  contextMessageSchema,
  taskInputSchema,
  taskWorkflowId,
  taskWorkflowQueue,
  type ContextMessage,
  type TaskInput,
  type TaskResult,
} from './shared/task';
import {
  contextSignal,
  RolesAttribute,
  setMemoryUpdate,
  statusQuery,
  TaskKeyAttribute,
  TaskStatusAttribute,
  workingMemoryQuery,
  type MemoryEntry,
  type MemoryWrite,
  type TaskStatusView,
  type WorkingMemory,
} from './shared/taskMessages';
import type { taskWorkflow } from '../workflows/task';
import { checkScopePatterns } from './shared/scopes';

export interface StartedTask {
  taskKey: string;
  workflowId: string;
  /** The first run of the task; the same run id when the task was already running. */
  runId: string;
  uiUrl: string;
}

export class CairnClient {
  private constructor(
    readonly temporal: Client,
    private readonly config: CairnConfig,
    private readonly ownedConnection: Connection | undefined,
  ) {}

  static async connect(config: CairnConfig, connection?: Connection): Promise<CairnClient> {
    const conn = connection ?? (await Connection.connect(temporalConnectionOptions(config)));
    return new CairnClient(new Client({ connection: conn, namespace: config.temporalNamespace }), config, connection ? undefined : conn);
  }

  async close(): Promise<void> {
    await this.ownedConnection?.close();
  }

  /** Starts a task, or returns the running one with the same key. A finished key is refused. */
  async startTask(input: TaskInput): Promise<StartedTask> {
    const task = taskInputSchema.parse(input);
    checkScopePatterns('scopes', task.scopes);
    const workflowId = taskWorkflowId(task.taskKey);
    const roles = [...new Set(task.steps.map((s) => s.role))].sort();
    // Safe to repeat: the workflow id is fixed and an existing run is used (USE_EXISTING).
    const handle = await this.retrying(() => this.temporal.workflow.start<typeof taskWorkflow>('taskWorkflow', {
      taskQueue: taskWorkflowQueue(this.config.taskQueuePrefix),
      workflowId,
      args: [{ task: input, taskQueuePrefix: this.config.taskQueuePrefix }],
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      staticSummary: task.goal.slice(0, 200),
      staticDetails: `Task \`${task.taskKey}\` — ${task.steps.length} planned steps for roles ${roles.join(', ')}`,
      typedSearchAttributes: new TypedSearchAttributes([
        { key: TaskKeyAttribute, value: task.taskKey },
        { key: TaskStatusAttribute, value: 'running' },
        { key: RolesAttribute, value: roles },
      ]),
    }));
    const runId = handle.firstExecutionRunId;
    return { taskKey: task.taskKey, workflowId, runId, uiUrl: this.uiUrl(workflowId, runId) };
  }

  handle(taskKey: string): WorkflowHandle<typeof taskWorkflow> {
    return this.temporal.workflow.getHandle<typeof taskWorkflow>(taskWorkflowId(taskKey));
  }

  /** Sends directional context to a role of a task. The message id deduplicates. */
  async sendContext(taskKey: string, message: ContextMessage): Promise<void> {
    const parsed = contextMessageSchema.parse(message);
    await this.retrying(() => this.handle(taskKey).signal(contextSignal, parsed));
  }

  async getWorkingMemory(taskKey: string): Promise<WorkingMemory> {
    return this.retrying(() => this.handle(taskKey).query(workingMemoryQuery));
  }

  /** Compare-and-set write; a stale expectedVersion fails with the current version in the message. */
  async updateWorkingMemory(taskKey: string, write: MemoryWrite): Promise<MemoryEntry> {
    try {
      return await this.handle(taskKey).executeUpdate(setMemoryUpdate, { args: [write] });
    } catch (err) {
      // The validator's refusal arrives wrapped; surface it as the local error it stands for.
      const cause = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
      if (cause instanceof ApplicationFailure && cause.type === FAILURE_TYPES.WorkingMemoryConflict) {
        const d = (cause.details?.[0] ?? {}) as { currentVersion?: number };
        throw new WorkingMemoryConflictError(write.key, write.expectedVersion, d.currentVersion ?? -1);
      }
      if (cause instanceof ApplicationFailure) throw new Error(`working memory update refused: ${cause.message}`, { cause });
      throw err;
    }
  }

  async status(taskKey: string): Promise<TaskStatusView> {
    return this.retrying(() => this.handle(taskKey).query(statusQuery));
  }

  async cancel(taskKey: string): Promise<void> {
    await this.handle(taskKey).cancel();
  }

  async result(taskKey: string): Promise<TaskResult> {
    // Waits through a Temporal restart: the wait is a long poll, taken up again after it broke.
    return this.retrying(() => this.handle(taskKey).result());
  }

  /** Retries calls that are safe to repeat while the frontend is unreachable (CAIRN_TEMPORAL_RETRY_MS). */
  private retrying<T>(fn: () => Promise<T>): Promise<T> {
    return withTemporalRetry(fn, { budgetMs: this.config.temporalRetryMs ?? DEFAULT_TEMPORAL_RETRY_MS });
  }

  uiUrl(workflowId: string, runId?: string): string {
    const ns = encodeURIComponent(this.config.temporalNamespace);
    return `${this.config.temporalUiUrl}/namespaces/${ns}/workflows/${encodeURIComponent(workflowId)}${runId ? `/${encodeURIComponent(runId)}` : ''}/history`;
  }
}

export { WorkflowExecutionAlreadyStartedError };
