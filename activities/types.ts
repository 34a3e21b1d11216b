/**
 * The activity interface as workflow code sees it: types only, so the workflow bundle never pulls
 * in activity implementations (pg, Node I/O).
 */
import type { AdmitMessagesInput, BindTaskKeyInput, BindTaskKeyOutcome, EpisodeInput } from '../src/shared/episode';
import type { AgentStepInput, StepResult } from '../src/shared/task';

export type { AdmitMessagesInput, BindTaskKeyInput, BindTaskKeyOutcome, EpisodeInput } from '../src/shared/episode';

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
