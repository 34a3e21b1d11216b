/**
 * The generic agent-step activity. It gives the agent its view, runs it, then writes everything
 * the agent produced in one Postgres transaction: inbox messages (persisted if new), the
 * observations (idempotent per workflow + step + index), outgoing messages (ids derived from the
 * step, so a retry sends nothing twice) and the inbox acknowledgements.
 */
import { Context } from '@temporalio/activity';
import type pg from 'pg';
import type { AgentContext, AgentDefinition } from '../src/agent';
import type { Json } from '../src/shared/observation';
import type { ObservationTypeRegistry } from '../src/shared/observationTypes';
import { policyResolverFor } from '../src/shared/reducer';
import { contextMessageSchema, stepSpecSchema, type AgentStepInput, type ContextMessage, type StepResult, type StepSpec } from '../src/shared/task';
import type { MemoryWrite } from '../src/shared/taskMessages';
import { ObservationValidationError } from '../src/shared/errors';
import { appendObservations } from '../src/store/observations/append';
import { checkReadReceipt, planReadReceipt, withReadReceipt, type StepAppendItem } from '../src/store/staleness';
import { ReadTracker } from './readTracking';
import { acknowledgeMessages, persistMessages } from '../src/store/messages';
import { readEntityInScope, scopeErrorFrom, withScope } from '../src/store/scope';
import { retryInfrastructure, toApplicationFailure } from './failures';
import { findStepCompletion, recordStepCompletion } from '../src/store/stepCompletions';
import { resolveAppendScopes, stepGrantOrFail } from './stepScopes';
import { StepClaims, stepHolder } from './claimContext';
import { createCoordination, type CoordinationDeps } from './coordination';

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

export function createAgentStepActivity(deps: AgentStepDeps) {
  const policyOf = policyResolverFor(deps.registry);
  // ctx.propose / vote / awaitAgreement / once, ctx.memory.episodes, max-age reads.
  const coordination = createCoordination({ pool: deps.pool, registry: deps.registry, clock: deps.clock, ...deps.coordination });

  return async function runAgentStep(input: AgentStepInput): Promise<StepResult> {
    const info = Context.current().info;
    const step = { stepId: input.step.id, attempt: info.attempt, role: input.step.role };
    const claims = new StepClaims({
      pool: deps.pool,
      holder: stepHolder({ workflowId: info.workflowExecution?.workflowId ?? '', activityId: info.activityId, attempt: info.attempt }),
      heartbeatEveryMs: deps.heartbeatEveryMs ?? 2000,
      pauseRenewal: () => deps.faults?.pauseClaimRenewal?.(step) ?? false,
    });
    try {
      return await runStep(input, claims);
    } finally {
      // Whatever the outcome: success, failure or cancellation. A crashed step's claims lapse.
      await claims.releaseAll();
    }
  };

  async function runStep(input: AgentStepInput, claims: StepClaims): Promise<StepResult> {
    const actx = Context.current();
    const info = actx.info;
    // Agent steps are always scheduled by a workflow, never standalone.
    const workflowId = info.workflowExecution?.workflowId ?? '';
    const runId = info.workflowExecution?.runId ?? '';
    const agent = deps.agents.get(input.step.role);
    if (!agent) throw toApplicationFailure(new Error(`no agent for role "${input.step.role}" on this worker`));
    // Infrastructure faults are retried inside the attempt: they are not the agent's failures.
    const infra = <T>(fn: () => Promise<T>) => retryInfrastructure(fn, { budgetMs: deps.dbRetryMs ?? 180_000, heartbeatEveryMs: deps.heartbeatEveryMs ?? 2000 });
    // A step commits exactly once: an attempt run again after the commit (worker killed in the
    // commit window, completion lost) returns what the committing attempt returned.
    const stepRef = { workflowId, activityId: info.activityId };
    const committed = await infra(() => findStepCompletion(deps.pool, stepRef)).catch((err: unknown) => {
      throw toApplicationFailure(err);
    });
    if (committed) return committed.result;
    // Every store query of the step runs in a transaction bounded by this grant (withScope).
    const scopes = stepGrantOrFail(input, agent);

    const appends: StepAppendItem[] = [];
    const outgoing: ContextMessage[] = [];
    const proposals: StepSpec[] = [];
    const memoryWrites: MemoryWrite[] = [];
    const agentId = deps.agentId(agent.role);
    const stepKey = `${workflowId}:${info.activityId}`;
    // Records what the agent reads (its read set): see activities/readTracking.ts.
    const reads = new ReadTracker({
      policyOf,
      read: (ref, opts) => infra(() => readEntityInScope(deps.pool, scopes, agent.role, policyOf, ref, opts)),
      withDb: (fn) => withScope(deps.pool, scopes, fn),
    });

    const coord = coordination({ taskKey: input.taskKey, workflowId, runId, activityId: info.activityId, attempt: info.attempt, agentId, role: agent.role, scopes, signal: actx.cancellationSignal });

    const ctx: AgentContext = {
      task: { taskKey: input.taskKey, goal: input.goal, scopes: input.scopes },
      step: { id: input.step.id, title: input.step.title, input: input.step.input, attempt: info.attempt, upstream: input.upstream },
      inbox: input.inbox,
      memory: {
        entity: coord.withFreshness(reads.entity.bind(reads)),
        working: input.memory,
        episodes: coord.episodes,
      },
      scopes,
      agentId,
      role: agent.role,
      append: (item, opts) => {
        if (opts?.fence !== undefined) claims.addFence(claims.fence(opts.fence));
        return appends.push(item) - 1;
      },
      claim: (resource, opts) => claims.claim(resource, opts.ttlMs),
      release: (resource) => claims.release(resource),
      nextFree: (kind, from, opts) => claims.nextFree(kind, from, opts.ttlMs),
      completeWorkItem: (resource) => claims.completeWorkItem(resource),
      send: (toRole, type, content, opts) => {
        outgoing.push({
          id: `${stepKey}:m${outgoing.length}`,
          fromRole: agent.role,
          toRole,
          type,
          content,
          ...(opts?.toTask !== undefined ? { toTask: opts.toTask } : {}),
        });
      },
      proposeStep: (spec) => proposals.push(spec),
      setMemory: (key, value, expectedVersion) => memoryWrites.push({ key, value, expectedVersion, writer: `${agent.role}/${input.step.id}` }),
      signal: actx.cancellationSignal,
      heartbeat: (details) => actx.heartbeat(details),
      ...coord.agent,
    };

    // Heartbeats let Temporal notice a dead worker early and deliver cancellation to the step;
    // they also renew the step's claims.
    const beat = setInterval(() => {
      actx.heartbeat();
      claims.renewOnBeat((err) => {
        actx.log.warn(`claim renewal failed: ${String(err)}`);
      });
    }, deps.heartbeatEveryMs ?? 2000);
    let output: Json | void;
    try {
      output = await agent.handle(ctx);
    } catch (err) {
      // A cancelled step reports cancellation, not an agent failure.
      if (actx.cancellationSignal.aborted) throw actx.cancellationSignal.reason;
      throw toApplicationFailure(err);
    } finally {
      clearInterval(beat);
    }

    try {
      const messages = outgoing.map((m, i) => parseOrFail(contextMessageSchema, m, `messages[${i}]`));
      const steps = proposals.map((p, i) => parseOrFail(stepSpecSchema, p, `proposedSteps[${i}]`));
      const provenance = { taskKey: input.taskKey, workflowId, runId, activityId: info.activityId, attempt: info.attempt, agentId, role: agent.role };
      const receipt = planReadReceipt({ provenance, idempotencyPrefix: stepKey, entries: reads.entries(), items: appends, ...(agent.dependsOnReads ? { dependsOnReadsByType: agent.dependsOnReads } : {}) });
      const result = await infra(() => withReadReceipt(deps.pool, receipt, () => withScope(deps.pool, scopes, async (client): Promise<StepResult> => {
        // Under the step's lock: a concurrent or earlier attempt may have committed meanwhile.
        const earlier = await findStepCompletion(client, stepRef);
        if (earlier) return earlier.result;
        await persistMessages(client, input.inbox, { taskKey: input.taskKey });
        // Fences first: a step whose claim lapsed writes nothing (FencingTokenStaleError).
        await claims.writeGuarded(client);
        // Before the append: refuses a strict decision whose reads moved on (StaleReadError).
        const readSet = await checkReadReceipt(client, receipt);
        const appended = await appendObservations(client, deps.registry, resolveAppendScopes(receipt.items, input.taskKey), {
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
        });
        // Context for another task is stored by that task when it arrives (or recorded as undeliverable).
        await persistMessages(client, messages.filter((m) => m.toTask === undefined || m.toTask === input.taskKey), {
          taskKey: input.taskKey,
          workflowId: workflowId,
          activityId: info.activityId,
        });
        await acknowledgeMessages(client, input.taskKey, input.inbox.map((m) => m.id), {
          workflowId: workflowId,
          activityId: info.activityId,
        });
        const stepResult: StepResult = {
          output: output ?? null,
          observations: appended.map((o) => ({ id: o.id, entity: `${o.entityType}/${o.entityId}`, entityVersion: o.entityVersion, replayed: o.replayed })),
          messages,
          proposedSteps: steps,
          memoryWrites,
          acknowledged: input.inbox.map((m) => m.id),
          attempt: info.attempt,
        };
        await recordStepCompletion(client, { ...stepRef, runId, attempt: info.attempt, taskKey: input.taskKey, role: agent.role, result: stepResult, readSetId: readSet?.readSetId ?? null });
        return stepResult;
      })));
      await deps.faults?.afterCommit?.({ stepId: input.step.id, attempt: info.attempt, role: agent.role });
      return result;
    } catch (err) {
      throw toApplicationFailure(scopeErrorFrom(err) ?? err);
    }
  }
}

function parseOrFail<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } } }, value: unknown, where: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new ObservationValidationError(0, `${where}.${issue?.path.map(String).join('.') ?? ''}`, issue?.message ?? 'invalid');
}
