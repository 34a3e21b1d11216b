/** The module `cairn worker` and `cairn demo` load by default: agents plus their observation types. */
export { dueDiligenceAgents as agents, dueDiligenceTask } from './agents';
export { dueDiligenceTypes as types } from './types';
