/**
 * Activities are built by a factory from their dependencies: the worker passes real ones, tests
 * pass their own. Everything that does I/O lives here, never in workflows/.
 */
import type pg from 'pg';
import type { AgentDefinition } from '../src/agent';
import type { ObservationTypeRegistry } from '../src/shared/observationTypes';
import { recordEpisode } from '../src/store/episodes';
import { createAgentStepActivity, type AgentStepFaults } from './agentStep';
import type { AgentActivities, EpisodeInput, TaskActivities } from './types';

export interface ActivityDeps {
  pool: pg.Pool;
  registry: ObservationTypeRegistry;
  agents: readonly AgentDefinition[];
  clock?: () => Date;
  agentId?: (role: string) => string;
  heartbeatEveryMs?: number;
  faults?: AgentStepFaults;
}

export function createAgentActivities(deps: ActivityDeps): AgentActivities {
  return {
    runAgentStep: createAgentStepActivity({
      pool: deps.pool,
      registry: deps.registry,
      agents: new Map(deps.agents.map((a) => [a.role, a])),
      clock: deps.clock ?? (() => new Date()),
      agentId: deps.agentId ?? ((role) => `${role}@${process.pid}`),
      ...(deps.heartbeatEveryMs !== undefined ? { heartbeatEveryMs: deps.heartbeatEveryMs } : {}),
      ...(deps.faults ? { faults: deps.faults } : {}),
    }),
  };
}

export function createTaskActivities(deps: { pool: pg.Pool }): TaskActivities {
  return {
    recordEpisode: (input: EpisodeInput) => recordEpisode(deps.pool, input),
  };
}

export function createBenchActivities() {
  return { benchNoop: async (): Promise<void> => {} };
}
