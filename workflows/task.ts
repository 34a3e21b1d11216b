/**
 * The task workflow: runs a plan of agent steps (parallel where dependencies allow) on the roles'
 * task queues, routes context messages between roles, holds working memory, and leaves an
 * episode behind. Deterministic and free of I/O: everything it touches arrives as ids, versions
 * and small JSON.
 *
 * It is the gatekeeper whatever the client (CairnClient, the `temporal` CLI, another SDK): the
 * input is parsed strictly once and the parsed form is what it keeps; signals are validated
 * (malformed ones dropped and counted), updates rejected by synchronous validators; the task key
 * is bound to this workflow in Postgres before anything runs; messages are persisted on arrival.
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
  type ActivityInterfaceFor,
} from '@temporalio/workflow';
import type { AgentActivities, TaskActivities } from '../activities/types';
import { FAILURE_TYPES } from '../src/shared/errors';
import type { Json } from '../src/shared/observation';
import {
  contextMessageSchema,
  formatIssues,
  parseTaskInput,
  rolePolicyOf,
  roleTaskQueue,
  stepSpecSchema,
  taskQueuePrefixSchema,
  taskWorkflowId,
  type ContextMessage,
  type ParsedTaskInput,
  type Step,
  type StepResult,
  type TaskInput,
  type TaskResult,
} from '../src/shared/task';
import {
  contextSignal,
  memoryWriteSchema,
  RolesAttribute,
  setMemoryUpdate,
  statusQuery,
  TaskKeyAttribute,
  TaskStatusAttribute,
  workingMemoryQuery,
  type MemoryWrite,
} from '../src/shared/taskMessages';
import {
  isPayloadRef,
  MAX_PAYLOAD_INLINE_MAX_BYTES,
  WORKFLOW_INLINE_OUTPUT_BUDGET,
  type PayloadPolicy,
} from '../src/shared/payloadRefs';
import { applyMemoryWrite, checkMemoryWrite, memoryWriteConflict } from './workingMemory';
import { renderStepTable } from './details';
import type { TaskWorkflowArgsV1 } from './legacy/taskV1';
import {
  attemptsOnFailure,
  causeChain,
  resultOf,
  statusView,
  stepFailureMessage,
  type CarriedState,
  type StepState,
} from './taskView';

export type { CarriedState, StepState };

export interface TaskWorkflowArgs {
  task: TaskInput;
  /** Task-queue prefix of the deployment, so role queues resolve the same on every worker. */
  taskQueuePrefix: string;
  carried?: CarriedState;
}

/** Histories without this marker were recorded by 0.1.0 and replay through workflows/legacy/. */
export const TASK_V2_PATCH = 'cairn-task-v2';
/** Histories without this marker bound the key and recorded the episode as ordinary activities. */
export const LOCAL_BOOKKEEPING_PATCH = 'cairn-task-local-bookkeeping';
/** Histories without this marker scheduled steps whose outputs all came back inline. */
export const PAYLOAD_REFS_PATCH = 'cairn-step-payload-refs';
/** An output this small stays inline whatever the budget: a reference would be about as large. */
const TRIVIAL_OUTPUT_BYTES = 256;
/** Observation ids linked from the episode (the count is kept in full). */
const MAX_LINKED_OBSERVATIONS = 200;
const MAX_REJECTION_REASONS = 10;
const MAX_UNDELIVERABLE_KEPT = 200;
/**
 * Temporal refuses a run's 10,001st signal and 2,001st update. Continue-as-new well before, and
 * refuse (updates) or drop with a reason (signals) past the hard margin while a step still runs.
 */
export const RUN_LIMITS = { signals: 10_000, updates: 2_000, continueAt: 0.8, refuseAt: 0.97 } as const;
const ADMIT_BATCH = 200;

export async function taskWorkflow(args: TaskWorkflowArgs): Promise<TaskResult> {
  if (!patched(TASK_V2_PATCH)) {
    // Loaded by the runs that take the 0.1.0 path only, so no other run evaluates its schemas
    // (module code runs again for every workflow run). "eager": in the bundle, no extra chunk.
    const { legacyTaskWorkflowV1 } = await import(/* webpackMode: "eager" */ './legacy/taskV1');
    return legacyTaskWorkflowV1(args as unknown as TaskWorkflowArgsV1);
  }
  const { task, prefix, carried } = parseArgsOrFail(args);
  const info = workflowInfo();
  const state: CarriedState = carried ?? initialState(task, new Date().toISOString());
  // Binding the key and recording the episode run as local activities (one marker event each,
  // no task-queue round trip: issue #14's task latency); histories recorded before scheduled them.
  const acts = taskActivities(info.taskQueue);
  const book = patched(LOCAL_BOOKKEEPING_PATCH) ? taskLocalActivities() : acts;

  // Ids seen in this run; earlier runs' ids are in Postgres (admission drops them as duplicates).
  const seen = new Set<string>([...state.pendingMessages, ...state.arriving].map((m) => m.id));
  const thisRun = { signals: 0, updates: 0 };
  let running = 0;
  let changes = 0;
  let taskFailure: string | undefined;
  let admitting = false;
  let admitSeq = 0;
  let closed = false;

  const reject = (reason: string) => {
    state.rejectedSignals.count++;
    state.rejectedSignals.recent.push(reason);
    if (state.rejectedSignals.recent.length > MAX_REJECTION_REASONS) state.rejectedSignals.recent.shift();
    changes++;
  };

  setHandler(contextSignal, (raw: unknown) => {
    thisRun.signals++;
    const msg = checkSignal(raw, task.taskKey);
    if (typeof msg === 'string') return reject(msg);
    if (thisRun.signals >= RUN_LIMITS.signals * RUN_LIMITS.refuseAt) {
      return reject(
        `context ${msg.id} refused: this run took ${thisRun.signals} signals, close to Temporal's per-run limit of ${RUN_LIMITS.signals}; resend it after the task continues as new`,
      );
    }
    if (seen.has(msg.id)) return;
    seen.add(msg.id);
    state.arriving.push(msg);
    changes++;
  });
  setHandler(workingMemoryQuery, () => state.memory);
  setHandler(statusQuery, () => statusView(task, state, 'running', thisRun));
  setHandler(
    setMemoryUpdate,
    (raw: unknown) => {
      thisRun.updates++;
      return applyMemoryWrite(state.memory, parseMemoryWrite(raw));
    },
    {
      validator: (raw: unknown) => {
        if (closed) throw refusal('the task has finished; working memory is read-only now');
        if (thisRun.updates >= RUN_LIMITS.updates * RUN_LIMITS.refuseAt) {
          throw refusal(
            `this run took ${thisRun.updates} updates, close to Temporal's per-run limit of ${RUN_LIMITS.updates}; retry after the task continues as new`,
          );
        }
        checkMemoryWrite(state.memory, parseMemoryWrite(raw));
      },
    },
  );

  const continueWanted = () =>
    workflowInfo().continueAsNewSuggested ||
    thisRun.signals >= RUN_LIMITS.signals * RUN_LIMITS.continueAt ||
    thisRun.updates >= RUN_LIMITS.updates * RUN_LIMITS.continueAt;

  // Rendered once per turn of the main loop, not per change: a batch of 500 completions in one
  // workflow task re-rendering a 1,500-row table each time ran past the 5 s workflow-task limit.
  let detailsStale = true;
  const publish = () => {
    detailsStale = true;
  };
  const publishNow = () => {
    if (!detailsStale) return;
    detailsStale = false;
    setCurrentDetails(renderStepTable(task.goal, state.steps, undefined, state));
  };

  /**
   * Claim-check (behind a patch: earlier histories scheduled steps without it): large outputs
   * come back as references; once the outputs held inline reach the budget, every output but a
   * trivial one does, so state, result and continue-as-new input stay small however many steps.
   */
  const payloadPolicy = (): PayloadPolicy | undefined => {
    if (!patched(PAYLOAD_REFS_PATCH)) return undefined;
    const left = WORKFLOW_INLINE_OUTPUT_BUDGET - (state.inlineOutputBytes ?? 0);
    return { inlineMaxBytes: Math.max(TRIVIAL_OUTPUT_BYTES, Math.min(left, MAX_PAYLOAD_INLINE_MAX_BYTES)) };
  };

  // Behind a patch: 0.2.0 histories were recorded without admissions while a run waited to continue.
  const admitWhileStepsRun = () => running > 0 && patched('cairn-task-admit-while-steps-run');

  /** Persists arriving messages in batches; only ids new to the task reach a step's inbox. */
  const admit = async (drain = false): Promise<void> => {
    if (admitting || state.arriving.length === 0) return;
    admitting = true;
    try {
      // Unless draining (the task is ending), stop when the run should continue as new: what
      // is left is carried, so a steady stream of signals cannot hold the run open. But while a
      // step still runs the run cannot continue as new yet: keep persisting then, or context
      // would wait unpersisted (and unseen by `cairn inbox`) for as long as the step takes.
      while (state.arriving.length > 0 && (drain || !continueWanted() || admitWhileStepsRun())) {
        const batch = state.arriving.slice(0, ADMIT_BATCH);
        const { fresh } = await acts.admitMessages({
          taskKey: task.taskKey,
          workflowId: info.workflowId,
          batchKey: `${info.runId}:${admitSeq++}`,
          messages: batch,
        });
        const isFresh = new Set(fresh);
        state.arriving.splice(0, batch.length);
        for (const m of batch) {
          if (isFresh.has(m.id)) {
            state.pendingMessages.push(m);
            state.messageCount++;
          } else state.duplicateMessages++;
        }
        changes++;
      }
    } catch (err) {
      taskFailure ??= `could not persist context messages: ${causeChain(err)}`;
      changes++;
    } finally {
      admitting = false;
      changes++;
    }
  };

  const runStep = async (step: StepState): Promise<void> => {
    const role = step.spec.role;
    const policy = rolePolicyOf(task, role);
    const queue = roleTaskQueue(prefix, role);
    const inbox = state.pendingMessages.filter((m) => m.toRole === role);
    state.pendingMessages = state.pendingMessages.filter((m) => m.toRole !== role);
    step.status = 'scheduled';
    step.queue = queue;
    publish();
    const payloads = payloadPolicy();
    let result: StepResult;
    try {
      result = await agentActivities(task, prefix, role).runAgentStep.executeWithOptions(
        {
          ...activityOptions(task, prefix, role),
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
            ...(task.roleScopes?.[role] ? { roleScopes: task.roleScopes[role] } : {}),
            memory: state.memory.entries,
            upstream: upstreamOutputs(state.steps, step.spec),
            ...(payloads ? { payloads } : {}),
          },
        ],
      );
    } catch (err) {
      // Nothing committed: the context goes back to the inbox for the role's next step.
      state.pendingMessages.unshift(...inbox);
      step.attempts = attemptsOnFailure(err, policy, step.attempts);
      if (isCancellation(err)) step.status = 'cancelled';
      else {
        step.status = 'failed';
        step.error = stepFailureMessage(err, queue, role, policy);
        if (task.onStepFailure === 'fail')
          taskFailure ??= `step ${step.spec.id} (${role}) failed: ${step.error}`;
      }
      running--;
      changes++;
      publish();
      if (isCancellation(err)) throw err;
      return;
    }
    // The step committed in Postgres: from here nothing turns it into a failure.
    step.status = 'completed';
    step.attempts = result.attempt ?? Math.max(step.attempts, 1);
    step.output = result.output;
    if (payloads && !isPayloadRef(result.output))
      state.inlineOutputBytes = (state.inlineOutputBytes ?? 0) + JSON.stringify(result.output ?? null).length;
    state.deliveredCount += inbox.length;
    const outbound = absorb(step, result);
    running--;
    changes++;
    publish();
    await deliverOutbound(step, outbound);
  };

  /** Context for another task travels as a signal; one that cannot be delivered is recorded. */
  const deliverOutbound = async (step: StepState, outbound: ContextMessage[]): Promise<void> => {
    await Promise.all(
      outbound.map(async (msg) => {
        try {
          await getExternalWorkflowHandle(taskWorkflowId(msg.toTask!)).signal(contextSignal, msg);
        } catch (err) {
          if (isCancellation(err)) throw err;
          const u = {
            id: msg.id,
            toTask: msg.toTask!,
            toRole: msg.toRole,
            stepId: step.spec.id,
            reason: causeChain(err),
          };
          (step.undeliverable ??= []).push(u);
          if (state.undeliverable.length < MAX_UNDELIVERABLE_KEPT) state.undeliverable.push(u);
          changes++;
          publish();
        }
      }),
    );
  };

  /** Folds a committed step's result into the task; returns the messages addressed to other tasks. */
  const absorb = (step: StepState, result: StepResult): ContextMessage[] => {
    const outbound: ContextMessage[] = [];
    state.observationCount += result.observations.length;
    for (const o of result.observations) {
      if (state.observationIds.length < MAX_LINKED_OBSERVATIONS) state.observationIds.push(o.id);
    }
    for (const msg of result.messages) {
      if (msg.toTask !== undefined && msg.toTask !== task.taskKey)
        outbound.push({ ...msg, fromTask: task.taskKey });
      else if (!seen.has(msg.id)) {
        // Persisted by the step's own transaction: straight to the inbox.
        seen.add(msg.id);
        state.pendingMessages.push(msg);
        state.messageCount++;
      }
    }
    for (const proposal of result.proposedSteps) {
      if (state.steps.filter((s) => s.added).length >= task.maxAddedSteps) break;
      const spec = stepSpecSchema.safeParse(proposal);
      if (!spec.success || state.steps.some((s) => s.spec.id === spec.data.id)) continue;
      state.steps.push({ spec: spec.data, status: 'pending', attempts: 0, added: true });
      if (!state.roles.includes(spec.data.role)) {
        state.roles = [...state.roles, spec.data.role].sort();
        upsertSearchAttributes([{ key: RolesAttribute, value: state.roles }]);
      }
    }
    for (const write of result.memoryWrites ?? []) {
      const conflict = memoryWriteConflict(state.memory, write);
      if (conflict === undefined) applyMemoryWrite(state.memory, write);
      else (step.lostMemoryWrites ??= []).push(`${write.key}: ${conflict}`);
    }
    return outbound;
  };

  if (carried === undefined) {
    upsertSearchAttributes([
      { key: TaskKeyAttribute, value: task.taskKey },
      { key: RolesAttribute, value: state.roles },
      { key: TaskStatusAttribute, value: 'running' },
    ]);
    const earlier = await bindOrExplain(book, task, info.workflowId, info.firstExecutionRunId);
    if (earlier !== undefined) return earlier;
  }
  publishNow();

  const pending: Promise<void>[] = [];
  let outcome: TaskResult['status'] = 'completed';
  let continuing = false;
  try {
    for (;;) {
      void admit();
      const byId = new Map(state.steps.map((s) => [s.spec.id, s]));
      settleBlockedSteps(state.steps, byId);
      const suggestCan = continueWanted();
      const ready =
        taskFailure || suggestCan
          ? []
          : state.steps.filter((s) => s.status === 'pending' && depsDone(byId, s));
      for (const step of ready) {
        running++;
        pending.push(runStep(step));
      }
      if (running === 0 && !admitting) {
        if (taskFailure) break;
        if (suggestCan && state.steps.some((s) => s.status === 'pending')) {
          continuing = true;
          break;
        }
        // Nothing left to run: the end (finish persists whatever is still arriving).
        if (!state.steps.some((s) => s.status === 'pending')) break;
      }
      publishNow();
      const seenChanges = changes;
      await condition(() => changes !== seenChanges);
    }
    await Promise.all(pending);
    if (taskFailure) outcome = 'failed';
  } catch (err) {
    outcome = isCancellation(err) ? 'cancelled' : 'failed';
    taskFailure ??= causeChain(err);
    await CancellationScope.nonCancellable(async () => {
      await Promise.allSettled(pending);
      await finish(outcome);
    });
    throw err;
  }
  if (continuing) {
    // An ordinary path: no status change, no episode. Signals that arrive while handlers finish
    // land in state.arriving, which the next run admits first.
    await condition(allHandlersFinished);
    state.continuedAsNew++;
    return await continueAsNew<typeof taskWorkflow>({
      task: task,
      taskQueuePrefix: prefix,
      carried: state,
    });
  }
  await finish(outcome);
  if (outcome === 'failed') {
    throw ApplicationFailure.create({
      type: FAILURE_TYPES.AgentFailed,
      nonRetryable: true,
      message: taskFailure ?? 'task failed',
    });
  }
  return resultOf(task, state, outcome);

  /** Records the episode (with every message not yet read), then, and only then, the final status. */
  async function finish(end: TaskResult['status']): Promise<void> {
    await condition(() => !admitting);
    await admit(true);
    closed = true;
    const record = async () =>
      book.recordEpisode({
        taskKey: task.taskKey,
        workflowId: info.workflowId,
        runId: workflowInfo().runId,
        goal: task.goal,
        outcome: end,
        startedAt: state.startedAt,
        endedAt: new Date().toISOString(),
        steps: resultOf(task, state, end).steps,
        observationIds: state.observationIds,
        messages: state.messageCount,
        undeliveredMessages: state.pendingMessages,
        result: resultOf(task, state, end),
      });
    await record();
    // Context that arrived while the episode was being written is persisted too (unread).
    await admit(true);
    upsertSearchAttributes([{ key: TaskStatusAttribute, value: end }]);
    setCurrentDetails(renderStepTable(task.goal, state.steps, end, state));
  }
}

/** Binds the task key; when another workflow or an earlier run holds it, returns its result or fails fast. */
async function bindOrExplain(
  acts: ActivityInterfaceFor<TaskActivities>,
  task: ParsedTaskInput,
  workflowId: string,
  firstRunId: string,
): Promise<TaskResult | undefined> {
  const bound = await acts.bindTaskKey({ taskKey: task.taskKey, workflowId, firstRunId });
  if (bound.kind === 'bound') return undefined;
  const holder = `workflow ${bound.workflowId} (first run ${bound.firstRunId})`;
  if (bound.outcome === 'completed' && bound.result) {
    // A re-run of a finished key is the same task: its recorded result, nothing run or written.
    upsertSearchAttributes([{ key: TaskStatusAttribute, value: 'completed' }]);
    setCurrentDetails(
      `Task \`${task.taskKey}\` already completed in ${holder}; this run returned its recorded result and ran nothing.`,
    );
    return bound.result;
  }
  const what = bound.outcome === null ? 'is still running' : `ended ${bound.outcome}`;
  upsertSearchAttributes([{ key: TaskStatusAttribute, value: bound.outcome ?? 'duplicate' }]);
  throw ApplicationFailure.create({
    type: FAILURE_TYPES.IdempotencyConflict,
    nonRetryable: true,
    message: `task key "${task.taskKey}" belongs to ${holder}, which ${what}; this run ran nothing. Use a new task key to run the task again, or read that task's result.`,
    details: [
      {
        taskKey: task.taskKey,
        workflowId: bound.workflowId,
        firstRunId: bound.firstRunId,
        outcome: bound.outcome,
      },
    ],
  });
}

/** The one strict parse of the workflow's arguments; problems fail the start, one line each. */
function parseArgsOrFail(args: unknown): {
  task: ParsedTaskInput;
  prefix: string;
  carried: CarriedState | undefined;
} {
  const problems: string[] = [];
  const a = (typeof args === 'object' && args !== null ? args : {}) as Record<string, unknown>;
  for (const key of Object.keys(a))
    if (!['task', 'taskQueuePrefix', 'carried'].includes(key))
      problems.push(`${key}: unknown key (expected task, taskQueuePrefix)`);
  const prefix = taskQueuePrefixSchema.safeParse(a.taskQueuePrefix);
  if (!prefix.success)
    problems.push(
      ...formatIssues(prefix.error.issues as never).map((l) => l.replace(/^\(input\)/, 'taskQueuePrefix')),
    );
  const task = parseTaskInput(a.task);
  if (!task.ok) problems.push(...task.problems.map((l) => `task.${l}`));
  if (!prefix.success || !task.ok || problems.length > 0) {
    upsertSearchAttributes([{ key: TaskStatusAttribute, value: 'rejected' }]);
    throw ApplicationFailure.create({
      type: FAILURE_TYPES.ValidationFailed,
      nonRetryable: true,
      message: `invalid task input:\n${problems.join('\n')}`,
      details: [{ problems }],
    });
  }
  return {
    task: task.task,
    prefix: prefix.data,
    carried:
      a.carried === undefined ? undefined : normalizeCarried(a.carried as Partial<CarriedState>, task.task),
  };
}

/** State carried by a 0.1.0 run that continued as new into this code lacks the newer fields. */
function normalizeCarried(c: Partial<CarriedState>, task: ParsedTaskInput): CarriedState {
  return {
    steps: c.steps ?? [],
    pendingMessages: c.pendingMessages ?? [],
    arriving: c.arriving ?? [],
    memory: c.memory ?? { entries: {} },
    observationIds: c.observationIds ?? [],
    observationCount: c.observationCount ?? c.observationIds?.length ?? 0,
    messageCount: c.messageCount ?? 0,
    deliveredCount: c.deliveredCount ?? 0,
    duplicateMessages: c.duplicateMessages ?? 0,
    rejectedSignals: c.rejectedSignals ?? { count: 0, recent: [] },
    undeliverable: c.undeliverable ?? [],
    roles: c.roles ?? rolesOf(task.steps),
    startedAt: c.startedAt ?? new Date().toISOString(),
    continuedAsNew: c.continuedAsNew ?? 0,
  };
}

/** A context signal as sent by any client: checked strictly; a string is the reason to drop it. */
function checkSignal(raw: unknown, taskKey: string): ContextMessage | string {
  const r = contextMessageSchema.safeParse(raw);
  const id =
    typeof raw === 'object' && raw !== null && typeof (raw as { id?: unknown }).id === 'string'
      ? ` ${(raw as { id: string }).id}`
      : '';
  if (!r.success) return `context${id} rejected: ${formatIssues(r.error.issues).join('; ')}`;
  if (r.data.toTask !== undefined && r.data.toTask !== taskKey)
    return `context${id} rejected: toTask is "${r.data.toTask}" but this is task "${taskKey}"`;
  return r.data;
}

function parseMemoryWrite(raw: unknown): MemoryWrite {
  if (raw === undefined || raw === null)
    throw refusal('setMemory takes one argument: { key, value, expectedVersion }');
  const r = memoryWriteSchema.safeParse(raw);
  if (!r.success) throw refusal(formatIssues(r.error.issues).join('; '));
  return r.data;
}

function refusal(message: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FAILURE_TYPES.ValidationFailed,
    nonRetryable: true,
    message: `setMemory refused: ${message}`,
  });
}

function initialState(task: ParsedTaskInput, startedAt: string): CarriedState {
  return {
    steps: task.steps.map((spec) => ({ spec, status: 'pending', attempts: 0, added: false })),
    pendingMessages: [],
    arriving: [],
    memory: { entries: {} },
    observationIds: [],
    observationCount: 0,
    messageCount: 0,
    deliveredCount: 0,
    duplicateMessages: 0,
    rejectedSignals: { count: 0, recent: [] },
    undeliverable: [],
    roles: rolesOf(task.steps),
    startedAt,
    continuedAsNew: 0,
  };
}

function rolesOf(steps: readonly Step[]): string[] {
  return [...new Set(steps.map((s) => s.role))].sort();
}

/** Steps by id, rebuilt each turn of the main loop (linear lookups made long plans quadratic). */
type StepIndex = ReadonlyMap<string, StepState>;

function depsDone(byId: StepIndex, step: StepState): boolean {
  return step.spec.dependsOn.every((id) => byId.get(id)?.status === 'completed');
}

/** A pending step whose dependency failed, was skipped or never exists (proposed steps) can never run. */
function settleBlockedSteps(steps: StepState[], byId: StepIndex): void {
  let changed = true;
  while (changed) {
    changed = false;
    for (const step of steps) {
      if (step.status !== 'pending') continue;
      const blocker = step.spec.dependsOn.find((id) => {
        const dep = byId.get(id);
        return (
          dep === undefined ||
          dep.status === 'failed' ||
          dep.status === 'skipped' ||
          dep.status === 'cancelled'
        );
      });
      if (blocker !== undefined) {
        step.status = 'skipped';
        step.error = byId.has(blocker)
          ? `dependency ${blocker} did not complete`
          : `dependency ${blocker} does not exist`;
        changed = true;
      }
    }
  }
}

function upstreamOutputs(steps: StepState[], spec: Step): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const id of spec.dependsOn) {
    const dep = steps.find((s) => s.spec.id === id);
    if (dep?.output !== undefined) out[id] = dep.output;
  }
  return out;
}

function activityOptions(task: ParsedTaskInput, prefix: string, role: string) {
  const policy = rolePolicyOf(task, role);
  return {
    taskQueue: roleTaskQueue(prefix, role),
    startToCloseTimeout: policy.timeoutMs,
    heartbeatTimeout: policy.heartbeatMs,
    scheduleToStartTimeout: policy.scheduleToStartMs,
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

function taskLocalActivities(): ActivityInterfaceFor<TaskActivities> {
  return proxyLocalActivities<TaskActivities>({
    startToCloseTimeout: '1 minute',
    retry: { maximumAttempts: 10 },
    summary: 'cairn: task bookkeeping',
  });
}

function taskActivities(taskQueue: string): ActivityInterfaceFor<TaskActivities> {
  return proxyActivities<TaskActivities>({
    taskQueue,
    startToCloseTimeout: '1 minute',
    retry: { maximumAttempts: 10 },
    summary: 'cairn: task bookkeeping',
  });
}
