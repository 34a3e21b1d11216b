/**
 * `@cairn-memory/cairn/testing`: test an agent the way it runs.
 *
 * - `runAgentStep(agent, { databaseUrl, types, input })` runs ONE handler against a real
 *   Postgres database, without Temporal, through the worker's own step code: real scoped reads,
 *   appends committed by the step's transaction, claims, messages. It returns the output and the
 *   written observations (typed by `observationsOf(type)`).
 * - `runTask({ agents, types, task, databaseUrl })` runs a whole task on a Temporal server (a
 *   dev server) with a worker and a client, and returns its TaskResult.
 */
export { runAgentStep, type AgentStepRun, type InboxMessage, type RunAgentStepOptions } from './runAgentStep';
export { runTask, type RunTaskOptions } from './runTask';
