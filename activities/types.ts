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
}

export interface AgentActivities {
  /** Runs one step of an agent: loads its view, calls the agent, appends its output atomically. */
  runAgentStep(input: AgentStepInput): Promise<StepResult>;
}

export interface TaskActivities {
  /** Leaves the record of a finished task behind. Idempotent per workflow id. */
  recordEpisode(input: EpisodeInput): Promise<{ episodeId: string }>;
}
