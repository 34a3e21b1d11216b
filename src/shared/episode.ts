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
}
