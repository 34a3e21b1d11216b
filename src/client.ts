/**
 * CairnClient: what orchestrators use to start tasks, send context, read and write working
 * memory, cancel and collect results. Task ids derive from task keys, so starting twice returns
 * the running task, and a finished task is never silently rerun.
 */
import {
  Client,
  Connection,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowIdConflictPolicy,
  WorkflowIdReusePolicy,
  WorkflowUpdateFailedError,
  type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure, TerminatedFailure } from '@temporalio/common';
import { FAILURE_TYPES, WorkingMemoryConflictError } from './shared/errors';
import { TypedSearchAttributes } from '@temporalio/common';
import { DEFAULT_TEMPORAL_RETRY_MS, type CairnConfig } from './config';
import { withTemporalRetry } from './temporalRetry';
import { temporalConnectionOptions } from './temporalConnection';
import {
  contextMessageSchema,
  parseTaskInput,
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
import type pg from 'pg';
import { isPayloadRef } from './shared/payloadRefs';
import { createPool } from './store/pool';
import { resolvePayloads } from './store/stepPayloads';
import { checkScopePatterns } from './shared/scopes';
import type { CairnTelemetry } from './telemetry/setup';

export interface StartedTask {
  taskKey: string;
  workflowId: string;
  /** The first run of the task; the same run id when the task was already running. */
  runId: string;
  uiUrl: string;
  /** True when the key had already finished: nothing new started; result() returns its result. */
  alreadyFinished?: boolean;
}

/** A task input that does not parse: `problems` has one line per problem (path: what is wrong). */
export class TaskInputError extends Error {
  override readonly name = 'TaskInputError';
  constructor(
    readonly problems: string[],
    readonly source?: string,
  ) {
    super(`invalid task${source ? ` in ${source}` : ''}:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}

/**
 * A task that failed, with the cause chain spelled out (and what to do about Temporal's limits).
 * Still a WorkflowFailedError, with the same `cause`, for callers that match on that.
 */
export class TaskFailedError extends WorkflowFailedError {
  override readonly name = 'TaskFailedError';
  /** The messages down the failure's cause chain, outermost first. */
  readonly causes: string[];
  /** Which Temporal limit the failure hit and what to do, or '' when it is not one. */
  readonly hint: string;
  constructor(
    readonly taskKey: string,
    original: WorkflowFailedError,
  ) {
    const terminated = original.cause instanceof TerminatedFailure;
    // A terminated run's only message is the terminator's reason: say what happened first.
    const causes = [
      ...(terminated ? ['workflow execution terminated'] : []),
      ...causeMessages(original.cause ?? original),
    ];
    const hint = limitHint(causes.join(' '));
    super(
      `task ${taskKey} failed: ${causes.join(': ')}${hint ? ` (${hint})` : ''}`,
      original.cause,
      original.retryState,
    );
    this.causes = causes;
    this.hint = hint;
  }
}

/** Names the Temporal limit a failure hit and what to do, when it is one. */
export function limitHint(text: string): string {
  if (/size limit|exceeds size/i.test(text)) {
    return "Temporal's payload limit, 2 MB per payload and ~4 MB per workflow task: keep step outputs small and put large data in observations";
  }
  if (/limit for signal|signal events/i.test(text))
    return "Temporal's limit of 10,000 signals per run: send fewer, larger messages";
  if (/limit for update|update/i.test(text) && /limit/i.test(text))
    return "Temporal's limit of 2,000 updates per run: retry after the task continues as new";
  if (/history (count|size)|terminated/i.test(text))
    return 'the server ended the run; `cairn task sweep` records its episode';
  return '';
}

/** The messages down an error's cause chain (Temporal wraps the useful one several levels deep). */
export function causeMessages(err: unknown): string[] {
  const out: string[] = [];
  for (
    let e: unknown = err, depth = 0;
    e instanceof Error && depth < 10;
    e = (e as { cause?: unknown }).cause, depth++
  ) {
    if (e.message && !out.includes(e.message)) out.push(e.message);
  }
  return out;
}

export interface CairnClientOptions {
  telemetry?: CairnTelemetry;
  /**
   * Postgres pool used to resolve large step outputs stored by reference (claim-check) in
   * result(). Default: a small pool on config.databaseUrl, opened only when a result holds one.
   */
  pool?: pg.Pool;
}

export class CairnClient {
  private ownedPool: pg.Pool | undefined;

  private constructor(
    readonly temporal: Client,
    private readonly config: CairnConfig,
    private readonly ownedConnection: Connection | undefined,
    private readonly options: CairnClientOptions = {},
  ) {}

  static async connect(
    config: CairnConfig,
    connection?: Connection,
    opts: CairnClientOptions = {},
  ): Promise<CairnClient> {
    const conn = connection ?? (await Connection.connect(temporalConnectionOptions(config)));
    // With telemetry on, a task's trace starts at startTask and follows it into the workflow.
    const workflow = opts.telemetry?.clientInterceptors() ?? [];
    return new CairnClient(
      new Client({
        connection: conn,
        namespace: config.temporalNamespace,
        ...(workflow.length > 0 ? { interceptors: { workflow } } : {}),
      }),
      config,
      connection ? undefined : conn,
      opts.pool ? { pool: opts.pool } : {},
    );
  }

  async close(): Promise<void> {
    await this.ownedConnection?.close();
    await this.ownedPool?.end();
    this.ownedPool = undefined;
  }

  /**
   * Starts a task, or returns the running one with the same key. A finished key is not run again:
   * the result says `alreadyFinished` and result() returns what it recorded. Bad input throws
   * TaskInputError (one line per problem) before anything reaches Temporal.
   */
  async startTask(input: TaskInput, source?: string): Promise<StartedTask> {
    const parsed = parseTaskInput(input);
    if (!parsed.ok) throw new TaskInputError(parsed.problems, source);
    const task = parsed.task;
    checkScopePatterns('scopes', task.scopes);
    const workflowId = taskWorkflowId(task.taskKey);
    const roles = [...new Set(task.steps.map((s) => s.role))].sort();
    let handle;
    try {
      // Safe to repeat: the workflow id is fixed and an existing run is used (USE_EXISTING).
      handle = await this.retrying(() =>
        this.temporal.workflow.start<typeof taskWorkflow>('taskWorkflow', {
          taskQueue: taskWorkflowQueue(this.config.taskQueuePrefix),
          workflowId,
          // The parsed form: what the workflow keeps (it parses again, strictly, and gets the same).
          args: [{ task: task, taskQueuePrefix: this.config.taskQueuePrefix }],
          workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
          workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
          staticSummary: task.goal.slice(0, 200),
          staticDetails: `Task \`${task.taskKey}\` — ${task.steps.length} planned steps for roles ${roles.join(', ')}`,
          typedSearchAttributes: new TypedSearchAttributes([
            { key: TaskKeyAttribute, value: task.taskKey },
            { key: TaskStatusAttribute, value: 'running' },
            { key: RolesAttribute, value: roles },
          ]),
        }),
      );
    } catch (err) {
      // REJECT_DUPLICATE refuses a finished key: idempotent, report the finished task instead.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      const desc = await this.retrying(() => this.handle(task.taskKey).describe());
      return {
        taskKey: task.taskKey,
        workflowId,
        runId: desc.runId,
        uiUrl: this.uiUrl(workflowId, desc.runId),
        alreadyFinished: true,
      };
    }
    const runId = handle.firstExecutionRunId;
    return { taskKey: task.taskKey, workflowId, runId, uiUrl: this.uiUrl(workflowId, runId) };
  }

  handle(taskKey: string): WorkflowHandle<typeof taskWorkflow> {
    return this.temporal.workflow.getHandle<typeof taskWorkflow>(taskWorkflowId(taskKey));
  }

  /** Sends directional context to a role of a task. The message id deduplicates. */
  async sendContext(taskKey: string, message: ContextMessage): Promise<void> {
    const parsed = contextMessageSchema.parse(message);
    try {
      await this.retrying(() => this.handle(taskKey).signal(contextSignal, parsed));
    } catch (err) {
      // "Failed to signal Workflow" alone hides the reason (a closed task, a per-run limit).
      const causes = causeMessages(err);
      const hint = limitHint(causes.join(' '));
      throw new Error(
        `could not send ${parsed.id} to task ${taskKey}: ${causes.join(': ')}${hint ? ` (${hint})` : ''}`,
        { cause: err },
      );
    }
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
      if (cause instanceof ApplicationFailure)
        throw new Error(`working memory update refused: ${cause.message}`, { cause });
      throw err;
    }
  }

  async status(taskKey: string): Promise<TaskStatusView> {
    return this.retrying(() => this.handle(taskKey).query(statusQuery));
  }

  async cancel(taskKey: string): Promise<void> {
    await this.handle(taskKey).cancel();
  }

  /**
   * The task's result, large step outputs resolved (they travel through Temporal as references,
   * see src/shared/payloadRefs.ts); a failed task throws TaskFailedError carrying the whole
   * cause chain.
   */
  async result(taskKey: string): Promise<TaskResult> {
    let result: TaskResult;
    try {
      // Waits through a Temporal restart: the wait is a long poll, taken up again after it broke.
      result = await this.retrying(() => this.handle(taskKey).result());
    } catch (err) {
      if (err instanceof WorkflowFailedError) throw new TaskFailedError(taskKey, err);
      throw err;
    }
    return this.resolveOutputs(result);
  }

  /** A task result (from result() or a raw handle) with every step output that is a reference resolved. */
  async resolveOutputs(result: TaskResult): Promise<TaskResult> {
    if (!result.steps.some((s) => isPayloadRef(s.output))) return result;
    const outputs = await resolvePayloads(
      this.payloadPool(),
      result.taskKey,
      result.steps.map((s) => s.output),
    );
    return {
      ...result,
      steps: result.steps.map((s, i) =>
        s.output === undefined ? s : { ...s, output: outputs[i] as TaskResult['steps'][number]['output'] },
      ),
    };
  }

  private payloadPool(): pg.Pool {
    if (this.options.pool) return this.options.pool;
    this.ownedPool ??= createPool(this.config.databaseUrl, {
      max: 2,
      applicationName: 'cairn-client',
      ...(this.config.pgConnectTimeoutMs !== undefined
        ? { connectTimeoutMs: this.config.pgConnectTimeoutMs }
        : {}),
    });
    return this.ownedPool;
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
