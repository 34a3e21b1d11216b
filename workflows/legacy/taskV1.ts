/**
 * FROZEN: the task workflow as released in 0.1.0 (before `patched('cairn-task-v2')`). Histories
 * recorded by that code replay through this path; never change it (test/replay guards it).
 *
 * The task workflow: runs a plan of agent steps (parallel where dependencies allow) on the roles'
 * task queues, routes context messages between roles, holds working memory, and leaves an
 * episode behind. Deterministic and free of I/O: everything it touches arrives as ids, versions
 * and small JSON.
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
  type ActivityInterfaceFor,
} from '@temporalio/workflow';
import type { AgentActivities, TaskActivities } from '../../activities/types';
import { FAILURE_TYPES } from '../../src/shared/errors';
import type { Json } from '../../src/shared/observation';
import {
  rolePolicySchema,
  roleTaskQueue,
  stepSpecSchema,
  taskInputSchema,
  taskWorkflowId,
  type ContextMessage,
  type ParsedTaskInput,
  type Step,
  type StepResult,
  type StepStatus,
  type TaskInput,
  type TaskResult,
} from './sharedV1';
import {
  contextSignal,
  setMemoryUpdate,
  statusQuery,
  TaskStatusAttribute,
  workingMemoryQuery,
  type MemoryWrite,
  type TaskStatusView,
} from './sharedV1';
import { applyMemoryWrite, checkMemoryWrite, type WorkingMemory } from './workingMemoryV1';
import { renderStepTable } from './detailsV1';

export interface StepStateV1 {
  spec: Step;
  status: StepStatus;
  attempts: number;
  output?: Json;
  error?: string;
  /** Proposed by an agent while the task ran (counts against maxAddedSteps). */
  added: boolean;
}

/** What survives continue-as-new: bounded by the plan size, the inbox and the dedup window. */
export interface CarriedStateV1 {
  steps: StepStateV1[];
  pendingMessages: ContextMessage[];
  seenMessageIds: string[];
  memory: WorkingMemory;
  observationIds: string[];
  messageCount: number;
  deliveredCount: number;
  startedAt: string;
  continuedAsNew: number;
}

export interface TaskWorkflowArgsV1 {
  task: TaskInput;
  /** Task-queue prefix of the deployment, so role queues resolve the same on every worker. */
  taskQueuePrefix: string;
  carried?: CarriedStateV1;
}

/** How many message ids are remembered for deduplication (bounded so state stays small). */
const DEDUP_WINDOW = 2000;
/** Observation ids kept for the episode's links. */
const MAX_LINKED_OBSERVATIONS = 200;

export async function legacyTaskWorkflowV1(args: TaskWorkflowArgsV1): Promise<TaskResult> {
  const parsed = taskInputSchema.safeParse(args.task);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw ApplicationFailure.create({
      type: FAILURE_TYPES.ValidationFailed,
      nonRetryable: true,
      message: `invalid task input: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
    });
  }
  const task = parsed.data;
  const state: CarriedStateV1 = args.carried ?? initialState(task, new Date().toISOString());
  const seen = new Set(state.seenMessageIds);
  let running = 0;
  let changes = 0;
  let taskFailure: string | undefined;

  const receive = (msg: ContextMessage) => {
    if (seen.has(msg.id)) return;
    seen.add(msg.id);
    state.seenMessageIds.push(msg.id);
    if (state.seenMessageIds.length > DEDUP_WINDOW) seen.delete(state.seenMessageIds.shift()!);
    state.pendingMessages.push(msg);
    state.messageCount++;
    changes++;
  };

  setHandler(contextSignal, receive);
  setHandler(workingMemoryQuery, () => state.memory);
  setHandler(statusQuery, () => statusView(task, state, taskFailure ? 'failed' : 'running'));
  setHandler(setMemoryUpdate, (write) => applyMemoryWrite(state.memory, write), {
    validator: (write: MemoryWrite) => checkMemoryWrite(state.memory, write),
  });

  const publish = () => {
    // Current details are the engineer's view of the plan in the Temporal UI.
    setCurrentDetails(renderStepTable(task.goal, state.steps));
  };

  const runStep = async (step: StepStateV1): Promise<void> => {
    const role = step.spec.role;
    const inbox = state.pendingMessages.filter((m) => m.toRole === role);
    state.pendingMessages = state.pendingMessages.filter((m) => m.toRole !== role);
    step.status = 'running';
    step.attempts++;
    publish();
    try {
      const result = await agentActivities(task, args.taskQueuePrefix, role).runAgentStep.executeWithOptions(
        {
          ...activityOptions(task, args.taskQueuePrefix, role),
          activityId: `step-${step.spec.id}`,
          summary: `${role}: ${step.spec.title}`,
        },
        [
          {
            taskKey: task.taskKey,
            goal: task.goal,
            step: step.spec,
            inbox,
            scopes: task.scopes,
            // Only when given, so the activity input of tasks without per-role grants is unchanged.
            ...(task.roleScopes?.[role] ? { roleScopes: task.roleScopes[role] } : {}),
            memory: state.memory.entries,
            upstream: upstreamOutputs(state.steps, step.spec),
          },
        ],
      );
      step.status = 'completed';
      step.output = result.output;
      state.deliveredCount += inbox.length;
      const outbound = absorb(result);
      // Context for another task travels as a signal to that task's workflow.
      await Promise.all(
        outbound.map((msg) =>
          getExternalWorkflowHandle(taskWorkflowId(msg.toTask!)).signal(contextSignal, msg),
        ),
      );
    } catch (err) {
      // Undelivered context goes back to the inbox for the role's next step.
      state.pendingMessages.unshift(...inbox);
      if (isCancellation(err)) {
        step.status = 'cancelled';
        throw err;
      }
      step.status = 'failed';
      step.error = failureMessage(err);
      if (task.onStepFailure === 'fail')
        taskFailure ??= `step ${step.spec.id} (${role}) failed: ${step.error}`;
    } finally {
      running--;
      changes++;
      publish();
    }
  };

  /** Folds a step's result into the task; returns the messages addressed to other tasks. */
  const absorb = (result: StepResult): ContextMessage[] => {
    const outbound: ContextMessage[] = [];
    for (const o of result.observations) {
      if (state.observationIds.length < MAX_LINKED_OBSERVATIONS) state.observationIds.push(o.id);
    }
    for (const msg of result.messages) {
      if (msg.toTask !== undefined && msg.toTask !== task.taskKey)
        outbound.push({ ...msg, fromTask: task.taskKey });
      else receive(msg);
    }
    for (const proposal of result.proposedSteps) {
      const added = state.steps.filter((s) => s.added).length;
      if (added >= task.maxAddedSteps) break;
      const spec = stepSpecSchema.parse(proposal);
      if (state.steps.some((s) => s.spec.id === spec.id)) continue;
      state.steps.push({ spec, status: 'pending', attempts: 0, added: true });
    }
    for (const write of result.memoryWrites ?? []) {
      if (checkMemoryWriteSafe(state.memory, write)) applyMemoryWrite(state.memory, write);
    }
    return outbound;
  };

  upsertSearchAttributes([{ key: TaskStatusAttribute, value: 'running' }]);
  publish();

  const pending: Promise<void>[] = [];
  let outcome: TaskResult['status'] = 'completed';
  try {
    for (;;) {
      settleBlockedSteps(state.steps, task.onStepFailure);
      const suggestCan = workflowInfo().continueAsNewSuggested;
      const ready =
        taskFailure || suggestCan
          ? []
          : state.steps.filter((s) => s.status === 'pending' && depsDone(state.steps, s));
      for (const step of ready) {
        running++;
        pending.push(runStep(step));
      }
      if (running === 0) {
        if (taskFailure) break;
        if (suggestCan && state.steps.some((s) => s.status === 'pending')) {
          await condition(allHandlersFinished);
          state.continuedAsNew++;
          return await continueAsNew<typeof legacyTaskWorkflowV1>({ ...args, carried: state });
        }
        if (!state.steps.some((s) => s.status === 'pending')) break;
      }
      const seenChanges = changes;
      await condition(() => changes !== seenChanges);
    }
    await Promise.all(pending);
    if (taskFailure) outcome = 'failed';
  } catch (err) {
    outcome = isCancellation(err) ? 'cancelled' : 'failed';
    taskFailure ??= failureMessage(err);
    await CancellationScope.nonCancellable(async () => {
      await Promise.allSettled(pending);
      await finish(task, state, outcome);
    });
    throw err;
  }
  await finish(task, state, outcome);
  if (outcome === 'failed') {
    throw ApplicationFailure.create({
      type: FAILURE_TYPES.AgentFailed,
      nonRetryable: true,
      message: taskFailure ?? 'task failed',
    });
  }
  return resultOf(task, state, outcome);
}

async function finish(
  task: ParsedTaskInput,
  state: CarriedStateV1,
  outcome: TaskResult['status'],
): Promise<void> {
  upsertSearchAttributes([{ key: TaskStatusAttribute, value: outcome }]);
  setCurrentDetails(renderStepTable(task.goal, state.steps, outcome));
  const info = workflowInfo();
  await taskActivities(info.taskQueue).recordEpisode({
    taskKey: task.taskKey,
    workflowId: info.workflowId,
    runId: info.runId,
    goal: task.goal,
    outcome,
    startedAt: state.startedAt,
    endedAt: new Date().toISOString(),
    steps: resultOf(task, state, outcome).steps,
    observationIds: state.observationIds,
    messages: state.messageCount,
    // Context no step read still belongs in the record (stored unacknowledged).
    undeliveredMessages: state.pendingMessages,
  });
}

function initialState(task: ParsedTaskInput, startedAt: string): CarriedStateV1 {
  return {
    steps: task.steps.map((spec) => ({ spec, status: 'pending', attempts: 0, added: false })),
    pendingMessages: [],
    seenMessageIds: [],
    memory: { entries: {} },
    observationIds: [],
    messageCount: 0,
    deliveredCount: 0,
    startedAt,
    continuedAsNew: 0,
  };
}

function depsDone(steps: StepStateV1[], step: StepStateV1): boolean {
  return step.spec.dependsOn.every((id) => steps.find((s) => s.spec.id === id)?.status === 'completed');
}

/** A pending step whose dependency failed, was skipped or never exists can never run. */
function settleBlockedSteps(steps: StepStateV1[], _policy: ParsedTaskInput['onStepFailure']): void {
  let changed = true;
  while (changed) {
    changed = false;
    for (const step of steps) {
      if (step.status !== 'pending') continue;
      const blocker = step.spec.dependsOn.find((id) => {
        const dep = steps.find((s) => s.spec.id === id);
        return (
          dep === undefined ||
          dep.status === 'failed' ||
          dep.status === 'skipped' ||
          dep.status === 'cancelled'
        );
      });
      if (blocker !== undefined) {
        step.status = 'skipped';
        step.error = `dependency ${blocker} did not complete`;
        changed = true;
      }
    }
  }
}

function upstreamOutputs(steps: StepStateV1[], spec: Step): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const id of spec.dependsOn) {
    const dep = steps.find((s) => s.spec.id === id);
    if (dep?.output !== undefined) out[id] = dep.output;
  }
  return out;
}

function activityOptions(task: ParsedTaskInput, prefix: string, role: string) {
  const policy = rolePolicySchema.parse(task.rolePolicies[role] ?? {});
  return {
    taskQueue: roleTaskQueue(prefix, role),
    startToCloseTimeout: policy.timeoutMs,
    heartbeatTimeout: policy.heartbeatMs,
    retry: {
      maximumAttempts: policy.maxAttempts,
      initialInterval: policy.initialRetryMs,
      backoffCoefficient: 2,
    },
  };
}

function agentActivities(
  task: ParsedTaskInput,
  prefix: string,
  role: string,
): ActivityInterfaceFor<AgentActivities> {
  return proxyActivities<AgentActivities>(activityOptions(task, prefix, role));
}

function taskActivities(taskQueue: string): ActivityInterfaceFor<TaskActivities> {
  return proxyActivities<TaskActivities>({
    taskQueue,
    startToCloseTimeout: '1 minute',
    retry: { maximumAttempts: 10 },
    summary: 'cairn: record episode',
  });
}

function resultOf(task: ParsedTaskInput, state: CarriedStateV1, status: TaskResult['status']): TaskResult {
  return {
    taskKey: task.taskKey,
    status,
    steps: state.steps.map((s) => ({
      id: s.spec.id,
      role: s.spec.role,
      status: s.status,
      ...(s.output !== undefined ? { output: s.output } : {}),
      ...(s.error !== undefined ? { error: s.error } : {}),
    })),
    observations: state.observationIds.length,
    messages: state.messageCount,
    continuedAsNew: state.continuedAsNew,
  };
}

function statusView(
  task: ParsedTaskInput,
  state: CarriedStateV1,
  status: TaskStatusView['status'],
): TaskStatusView {
  return {
    taskKey: task.taskKey,
    goal: task.goal,
    status,
    steps: state.steps.map((s) => ({
      id: s.spec.id,
      role: s.spec.role,
      title: s.spec.title,
      status: s.status,
      attempts: s.attempts,
      ...(s.error !== undefined ? { error: s.error } : {}),
    })),
    pendingMessages: state.pendingMessages.length,
    deliveredMessages: state.deliveredCount,
    continuedAsNew: state.continuedAsNew,
  };
}

function failureMessage(err: unknown): string {
  if (err instanceof Error) {
    // ActivityFailure wraps the agent's ApplicationFailure; the cause has the useful message.
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? cause.message : err.message;
  }
  return String(err);
}

function checkMemoryWriteSafe(memory: WorkingMemory, write: Parameters<typeof checkMemoryWrite>[1]): boolean {
  try {
    checkMemoryWrite(memory, write);
    return true;
  } catch {
    return false;
  }
}
