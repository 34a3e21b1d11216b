/**
 * What a finished task leaves behind (written by the task workflow's last activity): shared by
 * the workflow, the activity and the store, so it lives in the sandbox-safe layer and the store
 * needs nothing from activities/.
 */
import type { ContextMessage, TaskResult } from './task';

export interface EpisodeInput {
  taskKey: string;
  workflowId: string;
  runId: string;
  goal: string;
  outcome: TaskResult['status'];
  startedAt: string;
  endedAt: string;
  steps: TaskResult['steps'];
  observationIds: string[];
  messages: number;
  /** Messages that arrived for roles with no step left to read them. */
  undeliveredMessages?: ContextMessage[];
  /** The task's result, kept with its key binding so a re-run of the key returns it (0.2.0+). */
  result?: TaskResult;
}

/** Binds a task key to the workflow that runs it (first run id identifies one task across continue-as-new). */
export interface BindTaskKeyInput {
  taskKey: string;
  workflowId: string;
  firstRunId: string;
}

export type BindTaskKeyOutcome =
  | { kind: 'bound' }
  /** The key belongs to another workflow id, or to an earlier (finished or running) run of this one. */
  | {
      kind: 'taken';
      workflowId: string;
      firstRunId: string;
      outcome: TaskResult['status'] | null;
      result: TaskResult | null;
    };

export interface AdmitMessagesInput {
  taskKey: string;
  workflowId: string;
  /** Deterministic per batch (run id + sequence), so a retried admission recognises its own inserts. */
  batchKey: string;
  messages: ContextMessage[];
}
