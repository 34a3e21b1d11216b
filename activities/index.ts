/**
 * Activities are built by a factory from their dependencies: the worker passes real ones, tests
 * pass their own. Everything that does I/O lives here, never in workflows/.
 */
import type { Client } from '@temporalio/client';
import type pg from 'pg';
import type { AgentDefinition } from '../src/agent';
import type { ObservationTypeRegistry } from '../src/shared/observationTypes';
import { bindTaskKey, recordEpisode } from '../src/store/episodes';
import { admitMessages, persistMessages } from '../src/store/messages';
import { withTaskBookkeeping } from '../src/store/scope';
import { createAgentStepActivity, type AgentStepFaults } from './agentStep';
import type {
  AgentActivities,
  BenchActivities,
  EpisodeInput,
  TaskActivities,
} from '../src/shared/activityTypes';

export interface ActivityDeps {
  pool: pg.Pool;
  registry: ObservationTypeRegistry;
  agents: readonly AgentDefinition[];
  clock?: () => Date;
  agentId?: (role: string) => string;
  heartbeatEveryMs?: number;
  /** CAIRN_DB_RETRY_MS: how long a step attempt retries database faults. */
  dbRetryMs?: number;
  /** CAIRN_PAYLOAD_INLINE_MAX_BYTES (default 16 KiB). */
  payloadInlineMaxBytes?: number;
  faults?: AgentStepFaults;
  /** For agreements: a Temporal client (createWorker makes one on the worker's connection) and the queue prefix. */
  temporalClient?: Client;
  taskQueuePrefix?: string;
}

/**
 * Each factory's object is checked with `satisfies` against the interface the workflows proxy
 * (src/shared/activityTypes.ts): a renamed or re-typed activity is a compile error here, not a
 * workflow failing at run time on a missing activity.
 */
export function createAgentActivities(deps: ActivityDeps) {
  return {
    runAgentStep: createAgentStepActivity({
      pool: deps.pool,
      registry: deps.registry,
      agents: new Map(deps.agents.map((a) => [a.role, a])),
      clock: deps.clock ?? (() => new Date()),
      agentId: deps.agentId ?? ((role) => `${role}@${process.pid}`),
      ...(deps.heartbeatEveryMs !== undefined ? { heartbeatEveryMs: deps.heartbeatEveryMs } : {}),
      ...(deps.faults ? { faults: deps.faults } : {}),
      ...(deps.dbRetryMs !== undefined ? { dbRetryMs: deps.dbRetryMs } : {}),
      ...(deps.payloadInlineMaxBytes !== undefined
        ? { payloadInlineMaxBytes: deps.payloadInlineMaxBytes }
        : {}),
      coordination: {
        ...(deps.temporalClient ? { temporalClient: deps.temporalClient } : {}),
        ...(deps.taskQueuePrefix !== undefined ? { taskQueuePrefix: deps.taskQueuePrefix } : {}),
      },
    }),
  } satisfies AgentActivities;
}

export function createTaskActivities(deps: { pool: pg.Pool }) {
  // The task's messages, episode and key binding are its own (row-level security, migrations
  // 013 and 016): these act for the task, under no grant of observations.
  return {
    recordEpisode: (input: EpisodeInput) =>
      withTaskBookkeeping(deps.pool, input.taskKey, async (client) => {
        await persistMessages(client, input.undeliveredMessages ?? [], {
          taskKey: input.taskKey,
          workflowId: input.workflowId,
        });
        return recordEpisode(client, input);
      }),
    bindTaskKey: (input) =>
      withTaskBookkeeping(deps.pool, input.taskKey, (client) => bindTaskKey(client, input)),
    admitMessages: async (input) => ({
      fresh: await withTaskBookkeeping(deps.pool, input.taskKey, (client) =>
        admitMessages(client, input.taskKey, input.messages, { batchKey: input.batchKey }),
      ),
    }),
  } satisfies TaskActivities;
}

export function createBenchActivities() {
  return { benchNoop: async (): Promise<void> => {} } satisfies BenchActivities;
}
