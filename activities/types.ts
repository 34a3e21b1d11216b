/** The activity interfaces live in src/shared/activityTypes.ts (one module); re-exported for workflows. */
export type {
  AdmitMessagesInput,
  AgentActivities,
  BindTaskKeyInput,
  BindTaskKeyOutcome,
  EpisodeInput,
  TaskActivities,
} from '../src/shared/activityTypes';
