/**
 * The generic agent-step activity. It gives the agent its view, runs it, then writes everything
 * the agent produced in one Postgres transaction: inbox messages (persisted if new), the
 * observations (idempotent per workflow + step + index), outgoing messages (ids derived from the
 * step, so a retry sends nothing twice) and the inbox acknowledgements.
 */
import { Context } from '@temporalio/activity';
import type pg from 'pg';
import type { AgentDefinition } from '../src/agent';
import type { ObservationTypeRegistry } from '../src/shared/observationTypes';
import { policyResolverFor } from '../src/shared/reducer';
import {
  contextMessageSchema,
  stepSpecSchema,
  type AgentStepInput,
  type StepResult,
} from '../src/shared/task';
import { ObservationValidationError } from '../src/shared/errors';
import { registerWorkItems } from '../src/store/claims';
import { appendObservations, type AppendedObservation } from '../src/store/observations/append';
import { checkReadReceipt, planReadReceipt, withReadReceipt } from '../src/store/staleness';
import { ReadTracker } from './readTracking';
import { acknowledgeMessages, persistMessages } from '../src/store/messages';
import { readEntityInScope, scopeErrorFrom, withScope } from '../src/store/scope';
import { retryInfrastructure, toApplicationFailure } from './failures';
import { findStepCompletion, recordStepCompletion } from '../src/store/stepCompletions';
import { resolvePayloads, storeIfLarge } from '../src/store/stepPayloads';
import { DEFAULT_PAYLOAD_INLINE_MAX_BYTES } from '../src/shared/payloadRefs';
import type { Json } from '../src/shared/observation';
import { resolveAppendScopes, stepGrant } from './stepScopes';
import { StepClaims, stepHolder } from './claimContext';
import { createCoordination, type CoordinationDeps } from './coordination';
import { buildStepContext, emptyBuffers, jsonOutput, parseAgentValue } from './stepContext';

/** Claim calls read and write no observations: they need no grant, only the task they act for. */
const NO_GRANT = { read: [], write: [] } as const;

export interface AgentStepDeps {
  pool: pg.Pool;
  registry: ObservationTypeRegistry;
  agents: ReadonlyMap<string, AgentDefinition>;
  /** Wall clock for observed-at times; injectable for tests. */
  clock: () => Date;
  /** Identity of this worker process, recorded as the agent id. */
  agentId: (role: string) => string;
  heartbeatEveryMs?: number;
  /** How long one attempt retries database faults around its reads and commit (default 180 s). */
  dbRetryMs?: number;
  /**
   * CAIRN_PAYLOAD_INLINE_MAX_BYTES: outputs (and proposed steps' inputs) larger than this are
   * stored in Postgres and returned as references, when the workflow asks for it (default 16 KiB).
   */
  payloadInlineMaxBytes?: number;
  /** Named fault-injection points for tests that must hit a crash window on purpose. */
  faults?: AgentStepFaults;
  /** For agreements (ctx.propose / vote / awaitAgreement): a Temporal client and the queue prefix. */
  coordination?: Pick<CoordinationDeps, 'temporalClient' | 'taskQueuePrefix'>;
}

export interface AgentStepFaults {
  /** Runs after the step's transaction committed, before the activity reports completion. */
  afterCommit?: (step: { stepId: string; attempt: number; role: string }) => void | Promise<void>;
  /** While it returns true, heartbeats do not renew the step's claims (a paused holder). */
  pauseClaimRenewal?: (step: { stepId: string; attempt: number; role: string }) => boolean;
}

/** Where one attempt runs: Temporal's activity context, or the /testing helper's stand-in. */
export interface StepEnv {
  workflowId: string;
  runId: string;
  activityId: string;
  attempt: number;
  /** Cancelled when the task is cancelled or the step timed out. */
  signal: AbortSignal;
  heartbeat(details?: unknown): void;
  warn(message: string): void;
}

/**
 * A committed step: what the workflow gets, and the rows written (for the /testing helper;
 * empty when the attempt found the step already committed by an earlier one).
 */
export interface StepOutcome {
  result: StepResult;
  appended: AppendedObservation[];
}

export function createAgentStepActivity(deps: AgentStepDeps) {
  const runStep = createStepRunner(deps);
  return async function runAgentStep(input: AgentStepInput): Promise<StepResult> {
    const actx = Context.current();
    const info = actx.info;
    const signal = actx.cancellationSignal;
    // Agent steps are always scheduled by a workflow, never standalone.
    const env: StepEnv = {
      workflowId: info.workflowExecution?.workflowId ?? '',
      runId: info.workflowExecution?.runId ?? '',
      activityId: info.activityId,
      attempt: info.attempt,
      signal,
      heartbeat: (details) => actx.heartbeat(details),
      warn: (message) => {
        actx.log.warn(message);
      },
    };
    try {
      return (await runStep(input, env)).result;
    } catch (err) {
      // A cancelled step reports cancellation, not an agent failure.
      if (signal.aborted && err === signal.reason) throw err;
      throw toApplicationFailure(err);
    }
  };
}

/**
 * One attempt of a step, wherever it runs: gives the agent its view, runs it, commits. Throws
 * Cairn's own errors as they are (the activity maps them to ApplicationFailures) and, when the
 * step was cancelled during the handler, the signal's reason.
 */
export function createStepRunner(
  deps: AgentStepDeps,
): (input: AgentStepInput, env: StepEnv) => Promise<StepOutcome> {
  const policyOf = policyResolverFor(deps.registry);
  // ctx.propose / vote / awaitAgreement / once, ctx.memory.episodes, max-age reads.
  const coordination = createCoordination({
    pool: deps.pool,
    registry: deps.registry,
    clock: deps.clock,
    ...deps.coordination,
  });

  return async function runAgentStep(input: AgentStepInput, env: StepEnv): Promise<StepOutcome> {
    const step = { stepId: input.step.id, attempt: env.attempt, role: input.step.role };
    const claims = new StepClaims({
      pool: deps.pool,
      // Claims made by the step belong to its task's scope (migration 013).
      run: (fn) => withScope(deps.pool, NO_GRANT, fn, { taskKey: input.taskKey }),
      holder: stepHolder({ workflowId: env.workflowId, activityId: env.activityId, attempt: env.attempt }),
      heartbeatEveryMs: deps.heartbeatEveryMs ?? 2000,
      pauseRenewal: () => deps.faults?.pauseClaimRenewal?.(step) ?? false,
    });
    try {
      return await runStep(input, env, claims);
    } finally {
      // Whatever the outcome: success, failure or cancellation. A crashed step's claims lapse.
      await claims.releaseAll();
    }
  };

  async function runStep(received: AgentStepInput, env: StepEnv, claims: StepClaims): Promise<StepOutcome> {
    const { workflowId, runId, activityId, attempt } = env;
    let input = received;
    const info = { activityId, attempt };
    const agent = deps.agents.get(input.step.role);
    if (!agent) throw new Error(`no agent for role "${input.step.role}" on this worker`);
    // Infrastructure faults are retried inside the attempt: they are not the agent's failures.
    const infra = <T>(fn: () => Promise<T>) =>
      retryInfrastructure(fn, {
        budgetMs: deps.dbRetryMs ?? 180_000,
        heartbeatEveryMs: deps.heartbeatEveryMs ?? 2000,
        signal: env.signal,
        heartbeat: () => env.heartbeat(),
        warn: (m) => env.warn(m),
      });
    // A step commits exactly once: an attempt run again after the commit (worker killed in the
    // commit window, completion lost) returns what the committing attempt returned, with its own
    // attempt number (the step table counts attempts), without running the agent again.
    const stepRef = { workflowId, activityId };
    const committed = await infra(() => findStepCompletion(deps.pool, stepRef));
    if (committed) return { result: { ...committed.result, attempt }, appended: [] };
    // Large upstream outputs (and a proposed step's large input) arrive as references.
    input = await infra(() => resolveStepInputs(deps.pool, received));
    // Every store query of the step runs in a transaction bounded by this grant (withScope).
    const scopes = stepGrant(input, agent);
    // Bad input fails the step for good, before the agent runs (nothing is written).
    const stepInput = parseAgentValue(agent.role, 'input', agent.input, input.step.input);

    const buffers = emptyBuffers();
    const agentId = deps.agentId(agent.role);
    const stepKey = `${workflowId}:${activityId}`;
    // Records what the agent reads (its read set): see activities/readTracking.ts.
    const reads = new ReadTracker({
      policyOf,
      read: (ref, opts) => infra(() => readEntityInScope(deps.pool, scopes, agent.role, policyOf, ref, opts)),
      withDb: (fn) => withScope(deps.pool, scopes, fn),
    });
    const coord = coordination({
      taskKey: input.taskKey,
      workflowId,
      runId,
      activityId,
      attempt,
      agentId,
      role: agent.role,
      scopes,
      signal: env.signal,
    });
    const ctx = buildStepContext({
      input,
      stepInput,
      attempt,
      role: agent.role,
      agentId,
      stepKey,
      scopes,
      types: deps.registry,
      buffers,
      claims,
      read: (ref, opts) => reads.entity(ref, opts),
      coord,
      registerWorkItems: (kind, ids) =>
        withScope(deps.pool, scopes, (c) => registerWorkItems(c, kind, ids), { taskKey: input.taskKey }),
      signal: env.signal,
      heartbeat: (details) => env.heartbeat(details),
    });

    // Heartbeats let Temporal notice a dead worker early and deliver cancellation to the step;
    // they also renew the step's claims.
    const beat = setInterval(() => {
      env.heartbeat();
      claims.renewOnBeat((err) => {
        env.warn(`claim renewal failed: ${String(err)}`);
      });
    }, deps.heartbeatEveryMs ?? 2000);
    let returned: unknown;
    try {
      returned = await agent.handle(ctx);
    } catch (err) {
      // A cancelled step reports cancellation, not an agent failure.
      if (env.signal.aborted) throw env.signal.reason;
      throw err;
    } finally {
      clearInterval(beat);
    }
    // Checked before anything is committed: a bad output writes nothing.
    const output = jsonOutput(agent.role, parseAgentValue(agent.role, 'output', agent.output, returned));
    const { appends, outgoing, proposals, memoryWrites } = buffers;

    try {
      const messages = outgoing.map((m, i) => parseOrFail(contextMessageSchema, m, `messages[${i}]`));
      const steps = proposals.map((p, i) => parseOrFail(stepSpecSchema, p, `proposedSteps[${i}]`));
      const provenance = {
        taskKey: input.taskKey,
        workflowId,
        runId,
        activityId: info.activityId,
        attempt: info.attempt,
        agentId,
        role: agent.role,
      };
      const receipt = planReadReceipt({
        provenance,
        idempotencyPrefix: stepKey,
        entries: reads.entries(),
        items: appends,
        ...(agent.dependsOnReads ? { dependsOnReadsByType: agent.dependsOnReads } : {}),
      });
      const committedNow = await infra(() =>
        withReadReceipt(deps.pool, receipt, () =>
          // Acting for the task: its messages are the step's to persist and acknowledge whatever
          // the grant says about the task's scope, and every append must name the task (CNP01).
          withScope(
            deps.pool,
            scopes,
            async (client): Promise<StepOutcome> => {
              // Under the step's lock: a concurrent or earlier attempt may have committed meanwhile.
              const earlier = await findStepCompletion(client, stepRef);
              if (earlier) return { result: { ...earlier.result, attempt }, appended: [] };
              await persistMessages(client, input.inbox, { taskKey: input.taskKey });
              // Fences first: a step whose claim lapsed writes nothing (FencingTokenStaleError).
              await claims.writeGuarded(client);
              // Before the append: refuses a strict decision whose reads moved on (StaleReadError).
              const readSet = await checkReadReceipt(client, receipt);
              const appended = await appendObservations(
                client,
                deps.registry,
                resolveAppendScopes(receipt.items, input.taskKey),
                {
                  provenance: {
                    taskKey: input.taskKey,
                    workflowId: workflowId,
                    runId: runId,
                    activityId: info.activityId,
                    attempt: info.attempt,
                    agentId,
                    role: agent.role,
                  },
                  idempotencyPrefix: stepKey,
                  observedAt: deps.clock().toISOString(),
                },
              );
              // Context for another task is stored by that task when it arrives (or recorded as undeliverable).
              await persistMessages(
                client,
                messages.filter((m) => m.toTask === undefined || m.toTask === input.taskKey),
                { taskKey: input.taskKey, workflowId: workflowId, activityId: info.activityId },
              );
              await acknowledgeMessages(
                client,
                input.taskKey,
                input.inbox.map((m) => m.id),
                { workflowId: workflowId, activityId: info.activityId },
              );
              const result: StepResult = {
                output,
                observations: appended.map((o) => ({
                  id: o.id,
                  entity: `${o.entityType}/${o.entityId}`,
                  entityVersion: o.entityVersion,
                  replayed: o.replayed,
                })),
                messages,
                proposedSteps: steps,
                memoryWrites,
                acknowledged: input.inbox.map((m) => m.id),
                attempt,
              };
              if (input.payloads) {
                // Claim-check, in the step's transaction: the rows commit exactly when the step does.
                const max = Math.min(
                  input.payloads.inlineMaxBytes,
                  deps.payloadInlineMaxBytes ?? DEFAULT_PAYLOAD_INLINE_MAX_BYTES,
                );
                const owner = { taskKey: input.taskKey, workflowId, activityId };
                result.output = await storeIfLarge(client, owner, 'output', output, max);
                for (const [i, s] of result.proposedSteps.entries()) {
                  if (s.input === undefined) continue;
                  const stored = await storeIfLarge(
                    client,
                    owner,
                    `proposedSteps[${i}].input`,
                    s.input as Json,
                    max,
                  );
                  result.proposedSteps[i] = { ...s, input: stored };
                }
              }
              await recordStepCompletion(client, {
                ...stepRef,
                runId,
                attempt,
                taskKey: input.taskKey,
                role: agent.role,
                result,
                readSetId: readSet?.readSetId ?? null,
              });
              return { result, appended };
            },
            { taskKey: input.taskKey },
          ),
        ),
      );
      await deps.faults?.afterCommit?.({ stepId: input.step.id, attempt: info.attempt, role: agent.role });
      return committedNow;
    } catch (err) {
      throw scopeErrorFrom(err) ?? err;
    }
  }
}

/** The step's inputs with references resolved (one query; the input itself when there are none). */
async function resolveStepInputs(pool: pg.Pool, input: AgentStepInput): Promise<AgentStepInput> {
  const keys = Object.keys(input.upstream);
  const values = [input.step.input, ...keys.map((k) => input.upstream[k])];
  const resolved = await resolvePayloads(pool, input.taskKey, values);
  if (resolved.every((v, i) => v === values[i])) return input;
  return {
    ...input,
    step: { ...input.step, input: resolved[0] as Json },
    upstream: Object.fromEntries(keys.map((k, i) => [k, resolved[i + 1] as Json])),
  };
}

function parseOrFail<T>(
  schema: {
    safeParse(
      v: unknown,
    ):
      | { success: true; data: T }
      | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } };
  },
  value: unknown,
  where: string,
): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new ObservationValidationError(
    0,
    `${where}.${issue?.path.map(String).join('.') ?? ''}`,
    issue?.message ?? 'invalid',
  );
}
