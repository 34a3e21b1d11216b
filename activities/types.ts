/**
 * The activity interface as workflow code sees it: types only, so the workflow bundle never pulls
 * in activity implementations (pg, Node I/O).
 */
import type { EpisodeInput } from '../src/shared/episode';
import type { AgentStepInput, StepResult } from '../src/shared/task';

export type { EpisodeInput } from '../src/shared/episode';

export interface AgentActivities {
  /** Runs one step of an agent: loads its view, calls the agent, appends its output atomically. */
  runAgentStep(input: AgentStepInput): Promise<StepResult>;
}

export interface TaskActivities {
  /** Leaves the record of a finished task behind. Idempotent per workflow id. */
  recordEpisode(input: EpisodeInput): Promise<{ episodeId: string }>;
}
