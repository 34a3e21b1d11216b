/**
 * What the task workflow shows: its status query, its result, and failure text that keeps the
 * cause chain (a step failure reads "activity failed: no worker…", not just "Activity task failed").
 */
import { ActivityFailure, TimeoutFailure } from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { Json } from '../src/shared/observation';
import type {
  ParsedTaskInput,
  RolePolicy,
  Step,
  StepStatus,
  TaskResult,
  TaskStepResult,
  UndeliverableMessage,
} from '../src/shared/task';
import type { TaskStatusView, WorkingMemory } from '../src/shared/taskMessages';
import type { ContextMessage } from '../src/shared/task';

export interface StepState {
  spec: Step;
  status: StepStatus;
  attempts: number;
  output?: Json;
  error?: string;
  /** Proposed by an agent while the task ran (counts against maxAddedSteps). */
  added: boolean;
  queue?: string;
  lostMemoryWrites?: string[];
  undeliverable?: UndeliverableMessage[];
}

/** What survives continue-as-new. Every message accepted so far is here or in Postgres. */
export interface CarriedState {
  steps: StepState[];
  /** Admitted (persisted, new to the task) and not yet read by a step. */
  pendingMessages: ContextMessage[];
  /** Accepted by a signal but not yet persisted: the next run admits them first. */
  arriving: ContextMessage[];
  memory: WorkingMemory;
  /** Links kept for the episode (bounded); observationCount counts all. */
  observationIds: string[];
  observationCount: number;
  messageCount: number;
  deliveredCount: number;
  duplicateMessages: number;
  rejectedSignals: { count: number; recent: string[] };
  undeliverable: UndeliverableMessage[];
  roles: string[];
  startedAt: string;
  continuedAsNew: number;
  /** JSON characters of the step outputs held inline (claim-check budget); absent before 0.3.0. */
  inlineOutputBytes?: number;
}

export function resultOf(
  task: ParsedTaskInput,
  state: CarriedState,
  status: TaskResult['status'],
): TaskResult {
  return {
    taskKey: task.taskKey,
    status,
    steps: state.steps.map(stepResult),
    observations: state.observationCount,
    messages: state.messageCount,
    continuedAsNew: state.continuedAsNew,
  };
}

function stepResult(s: StepState): TaskStepResult {
  return {
    id: s.spec.id,
    role: s.spec.role,
    status: s.status,
    attempts: s.attempts,
    ...(s.output !== undefined ? { output: s.output } : {}),
    ...(s.error !== undefined ? { error: s.error } : {}),
    ...(s.lostMemoryWrites?.length ? { lostMemoryWrites: s.lostMemoryWrites } : {}),
    ...(s.undeliverable?.length ? { undeliverable: s.undeliverable } : {}),
  };
}

export function statusView(
  task: ParsedTaskInput,
  state: CarriedState,
  status: TaskStatusView['status'],
  thisRun: { signals: number; updates: number },
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
      ...(s.queue !== undefined ? { queue: s.queue } : {}),
      ...(s.lostMemoryWrites?.length ? { lostMemoryWrites: s.lostMemoryWrites } : {}),
      ...(s.undeliverable?.length ? { undeliverable: s.undeliverable.length } : {}),
    })),
    pendingMessages: state.pendingMessages.length + state.arriving.length,
    deliveredMessages: state.deliveredCount,
    continuedAsNew: state.continuedAsNew,
    rejectedSignals: state.rejectedSignals,
    undeliverable: state.undeliverable,
    thisRun,
  };
}

/** The failure's messages down its cause chain, without repeats: what a person needs to act. */
export function causeChain(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    const msg = e instanceof Error ? e.message : typeof e === 'string' ? e : JSON.stringify(e);
    if (msg && !parts.includes(msg)) parts.push(msg);
    e = e instanceof Error ? (e as { cause?: unknown }).cause : undefined;
  }
  return parts.join(': ') || 'unknown failure';
}

/** Why a step failed, in words: an unserved queue is named; otherwise the agent's own failure. */
export function stepFailureMessage(err: unknown, queue: string, role: string, policy: RolePolicy): string {
  const timeout =
    err instanceof ActivityFailure && err.cause instanceof TimeoutFailure ? err.cause : undefined;
  if (timeout?.timeoutType === TimeoutType.SCHEDULE_TO_START) {
    return `no worker picked the step up on task queue ${queue} within ${policy.scheduleToStartMs} ms (start a worker serving role "${role}", or raise rolePolicies.${role}.scheduleToStartMs)`;
  }
  // The ActivityFailure itself only says "Activity task failed"; its causes say why.
  return err instanceof ActivityFailure && err.cause ? causeChain(err.cause) : causeChain(err);
}

/** Attempts a failed step took: all of them when retries ran out, else at least the one. */
export function attemptsOnFailure(err: unknown, policy: RolePolicy, before: number): number {
  if (err instanceof ActivityFailure && err.retryState === 'MAXIMUM_ATTEMPTS_REACHED')
    return policy.maxAttempts;
  return Math.max(before, 1);
}
