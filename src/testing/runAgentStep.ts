/**
 * Runs ONE agent handler against a real Postgres database, without Temporal: the step goes
 * through the worker's own runner (activities/agentStep.ts), so its reads are scoped and
 * tracked, its claims are real, and its appends, messages and acknowledgements are committed
 * by the same transaction a worker commits. What comes back is what a test asserts on: the
 * output, the observations written (parsed by their types) and the messages sent.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { createStepRunner, type StepOutcome } from '../../activities/agentStep';
import type { AgentDefinition } from '../agent';
import { withCoordinationTypes } from '../shared/coordinationTypes';
import type { Json, StoredObservation } from '../shared/observation';
import type { FieldsOutput, ObservationType, ObservationTypeRegistry } from '../shared/observationTypes';
import type { AgentStepInput, ContextMessage, StepResult } from '../shared/task';
import type { MemoryEntry } from '../shared/taskMessages';
import { observationColumns, parseObservationRow } from '../store/observations/rows';
import { registerObservationTypes } from '../store/observations/registerTypes';
import { createPool } from '../store/pool';
import { withSystemScope } from '../store/systemScope';

/** A message in the step's inbox: only `type` and `content` are needed. */
export type InboxMessage = Partial<ContextMessage> & Pick<ContextMessage, 'type' | 'content'>;

export interface RunAgentStepOptions {
  /** A pool on a migrated database (kept open), or its URL (a pool is made and closed). */
  pool?: pg.Pool;
  databaseUrl?: string;
  /** The observation types the agent writes (registered in the database if they are not yet). */
  types: ObservationTypeRegistry;
  /** The step's input, as a task would give it (JSON; parsed by the agent's input schema). */
  input?: unknown;
  inbox?: readonly InboxMessage[];
  /** Default: a fresh `test-<uuid>`, so tests do not see each other's task-scoped entities. */
  taskKey?: string;
  goal?: string;
  /** Default: the agent's role. Running the same step id of a task again is a retry: once committed, it returns the recorded result. */
  stepId?: string;
  /** The task's scopes (default: the agent's declared write scopes, else `task`). */
  scopes?: string[];
  /** Working memory as of the step's start. */
  memory?: Record<string, Json>;
  /** Outputs of upstream steps. */
  upstream?: Record<string, Json>;
  /** Which attempt this is (default 1): agents that behave differently on a retry. */
  attempt?: number;
  /** Observed-at clock (default: now). */
  clock?: () => Date;
  signal?: AbortSignal;
}

export interface AgentStepRun<O> {
  /** The handler's output, parsed by its output schema. */
  output: O;
  /** What the workflow would get (references, messages, proposed steps, memory writes). */
  result: StepResult;
  /** The observations the step wrote, in append order (replayed ones included). */
  observations: StoredObservation[];
  /** The written observations of one type, with their fields typed by it. */
  observationsOf<T extends ObservationType>(type: T): (StoredObservation & { fields: FieldsOutput<T> })[];
  /** Messages the step sent. */
  messages: ContextMessage[];
  taskKey: string;
  /** The workflow id the step ran under (provenance of its observations). */
  workflowId: string;
}

export async function runAgentStep<I, O>(
  agent: AgentDefinition<I, O>,
  opts: RunAgentStepOptions,
): Promise<AgentStepRun<O>> {
  if (!opts.pool && !opts.databaseUrl) throw new TypeError('runAgentStep: give `pool` or `databaseUrl`');
  const pool = opts.pool ?? createPool(opts.databaseUrl!, { max: 4, applicationName: 'cairn-testing' });
  try {
    // A worker registers its types at start; a step's transaction cannot heal a missing one.
    await registerObservationTypes(pool, withCoordinationTypes(opts.types));
    const taskKey = opts.taskKey ?? `test-${randomUUID()}`;
    // Per role by default: two agents run in one task are two steps (the same step id again is a
    // retry of a committed step, which returns its recorded result without running the agent).
    const stepId = opts.stepId ?? agent.role;
    const workflowId = `cairn-test-${taskKey}`;
    const activityId = `step-${stepId}`;
    const run = createStepRunner({
      pool,
      registry: opts.types,
      agents: new Map<string, AgentDefinition>([[agent.role, agent]]),
      clock: opts.clock ?? (() => new Date()),
      agentId: (role) => `${role}@test`,
    });
    const input: AgentStepInput = {
      taskKey,
      goal: opts.goal ?? `test of ${agent.role}`,
      step: {
        id: stepId,
        role: agent.role,
        title: `${agent.role} (test)`,
        input: (opts.input ?? null) as Json,
        dependsOn: [],
      },
      inbox: (opts.inbox ?? []).map((m, i) => ({
        ...m,
        id: m.id ?? `${workflowId}:inbox:${i}`,
        fromRole: m.fromRole ?? 'test',
        toRole: m.toRole ?? agent.role,
      })),
      scopes: opts.scopes ?? [...(agent.scopes?.write ?? ['task'])],
      memory: Object.fromEntries(
        Object.entries(opts.memory ?? {}).map(([k, value]): [string, MemoryEntry] => [
          k,
          { value, version: 1, updatedBy: 'test' },
        ]),
      ),
      upstream: opts.upstream ?? {},
    };
    const outcome: StepOutcome = await run(input, {
      workflowId,
      runId: randomUUID(),
      activityId,
      attempt: opts.attempt ?? 1,
      signal: opts.signal ?? new AbortController().signal,
      heartbeat: () => undefined,
      warn: (message) => console.warn(message),
    });
    const observations = await loadObservations(
      pool,
      outcome.appended.map((a) => a.id),
    );
    return {
      output: outcome.result.output as O,
      result: outcome.result,
      observations,
      observationsOf: <T extends ObservationType>(type: T) =>
        observations.filter(
          (o) => o.type === type.name && o.schemaVersion === type.version,
        ) as (StoredObservation & {
          fields: FieldsOutput<T>;
        })[],
      messages: outcome.result.messages,
      taskKey,
      workflowId,
    };
  } finally {
    if (!opts.pool) await pool.end();
  }
}

async function loadObservations(pool: pg.Pool, ids: readonly string[]): Promise<StoredObservation[]> {
  if (ids.length === 0) return [];
  const { rows } = await withSystemScope(pool, (c) =>
    c.query(`select ${observationColumns('o')} from cairn.observations o where o.id = any($1::uuid[])`, [
      ids,
    ]),
  );
  const byId = new Map(rows.map((r) => parseObservationRow(r)).map((o) => [o.id, o]));
  return ids.map((id) => byId.get(id)).filter((o): o is StoredObservation => o !== undefined);
}
