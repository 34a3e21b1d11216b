/**
 * Every activity interface, in one place: what workflows proxy (`proxyActivities<…>`) and what
 * the factories in activities/ are checked against (`satisfies`). Types only and sandbox-safe,
 * so the workflow bundle never pulls in activity implementations (pg, Node I/O).
 */
import type { AgreementDecisionInput } from './agreement';
import type { MaintenanceOptions, MaintenanceReport } from './maintenance';
import type { AdmitMessagesInput, BindTaskKeyInput, BindTaskKeyOutcome, EpisodeInput } from './episode';
import type { AgentStepInput, StepResult } from './task';

export type { AdmitMessagesInput, BindTaskKeyInput, BindTaskKeyOutcome, EpisodeInput } from './episode';

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

export interface AgreementActivities {
  /** Appends the `agreement.decision` observation (idempotent per agreement). */
  recordAgreementDecision(input: AgreementDecisionInput): Promise<{ observationId: string }>;
}

export interface MaintenanceActivities {
  runMaintenance(opts: MaintenanceOptions): Promise<MaintenanceReport>;
}

/** The calibration workflow's no-op (`npm run bench`). */
export interface BenchActivities {
  benchNoop(): Promise<void>;
}
