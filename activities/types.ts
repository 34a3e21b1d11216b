/**
 * The activity interface as workflow code sees it: types only, so the workflow bundle never pulls
 * in activity implementations (pg, Node I/O).
 */
import type { AgentStepInput, ContextMessage, StepResult, TaskResult } from '../src/shared/task';

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

export interface AgentActivities {
  /** Runs one step of an agent: loads its view, calls the agent, appends its output atomically. */
  runAgentStep(input: AgentStepInput): Promise<StepResult>;
}

export interface TaskActivities {
  /** Leaves the record of a finished task behind. Idempotent per workflow id. */
  recordEpisode(input: EpisodeInput): Promise<{ episodeId: string }>;
  /** Binds the task key to this workflow at start; reports who holds it otherwise (writes nothing then). */
  bindTaskKey(input: BindTaskKeyInput): Promise<BindTaskKeyOutcome>;
  /** Persists arriving context messages; returns the ids new to the task (the rest are duplicates). */
  admitMessages(input: AdmitMessagesInput): Promise<{ fresh: string[] }>;
}
