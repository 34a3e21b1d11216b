/** The activity interfaces live in src/shared/activityTypes.ts (one module); re-exported for workflows. */
export type { AgentActivities, EpisodeInput, TaskActivities } from '../src/shared/activityTypes';
