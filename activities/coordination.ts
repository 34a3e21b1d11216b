/**
 * Coordination and long-term memory for agent steps (ctx.propose / vote / awaitAgreement /
 * once, ctx.memory.episodes, max-age reads) and the bookkeeping activities of the tasks queue
 * (recording an agreement's decision, retention maintenance).
 *
 * Unlike ctx.append, these act immediately, not at the end of the step: a vote must be in the
 * log before the agreement can cite it, and an outside call's result must be stored before the
 * step can fail. Each is idempotent per step (or per voter / key), so a retried step replays
 * them rather than repeating them.
 */
import { Context } from '@temporalio/activity';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowIdConflictPolicy,
  WorkflowIdReusePolicy,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type pg from 'pg';
import type { AgentCoordination, AgentEpisodicMemory, ProposalSpec } from '../src/agentCoordination';
import {
  agreementEntity,
  agreementInputSchema,
  agreementKey,
  agreementQuery,
  agreementWorkflowId,
  AgreementNotFoundError,
  AgreementRefusedError,
  decisionIdempotencyKey,
  formatRule,
  subjectText,
  voteIdempotencyKey,
  voteUpdate,
  type AgreementDecisionInput,
  type AgreementOutcome,
  type AgreementView,
  type VoteReceipt,
} from '../src/shared/agreement';
import { coordinationTypes, withCoordinationTypes } from '../src/shared/coordinationTypes';
import type { EntityState } from '../src/shared/entityState';
import { FAILURE_TYPES } from '../src/shared/errors';
import type { AgreementActivities, MaintenanceActivities } from '../src/shared/activityTypes';
import type { MaintenanceOptions } from '../src/shared/maintenance';
import type { EntityRef, Json } from '../src/shared/observation';
import type { ObservationTypeRegistry } from '../src/shared/observationTypes';
import { resolveScope, type ScopeGrant } from '../src/shared/scopes';
import { taskWorkflowQueue } from '../src/shared/task';
import { effectKey, runOnce } from '../src/store/effects';
import { findEpisodes } from '../src/store/episodeSearch';
import { annotateFreshness, withFreshness, type FreshnessReader } from '../src/store/freshness';
import { runMaintenance } from '../src/store/maintenance';
import { appendObservations, type AppendContext } from '../src/store/observations/append';
import { registerObservationTypes } from '../src/store/observations/registerTypes';
import { actingFor, withScope } from '../src/store/scope';
import { withSystemScope } from '../src/store/systemScope';
import type { agreementWorkflow } from '../workflows/agreement';

export interface CoordinationDeps {
  pool: pg.Pool;
  registry: ObservationTypeRegistry;
  clock: () => Date;
  /** Needed by propose / vote / awaitAgreement; the worker passes one on its own connection. */
  temporalClient?: Client;
  /** The deployment's task-queue prefix (agreements run on `<prefix>-tasks`). */
  taskQueuePrefix?: string;
}

/** The step an agent runs in, as coordination needs it. */
export interface StepIdentity {
  taskKey: string;
  workflowId: string;
  runId: string;
  activityId: string;
  attempt: number;
  agentId: string;
  role: string;
  scopes: ScopeGrant;
  signal: AbortSignal;
}

export interface StepCoordination {
  agent: AgentCoordination;
  episodes: AgentEpisodicMemory['episodes'];
  /** Adds `maxAgeMs` reads to the step's entity read (dating runs in the step's scopes). */
  withFreshness<O extends object>(
    read: (ref: EntityRef, opts?: O) => Promise<EntityState>,
  ): FreshnessReader<O>;
}

const DEFAULT_PROPOSAL_WAIT_MS = 60_000;

export function createCoordination(deps: CoordinationDeps) {
  const registry = withCoordinationTypes(deps.registry);
  // Votes are appended inside a transaction (the step's scope), where a type missing from the
  // database cannot be healed by retrying the statement: register ours once per process.
  let registered: Promise<unknown> | undefined;
  const ensureTypes = () =>
    (registered ??= registerObservationTypes(deps.pool, coordinationTypes).catch((err: unknown) => {
      registered = undefined;
      throw err;
    }));

  return function forStep(step: StepIdentity): StepCoordination {
    const inScope = <T>(fn: (client: pg.PoolClient) => Promise<T>) => withScope(deps.pool, step.scopes, fn);
    const temporal = (): { client: Client; prefix: string } => {
      if (!deps.temporalClient || deps.taskQueuePrefix === undefined)
        throw new Error(
          'agreements need a Temporal client: pass temporalClient and taskQueuePrefix to the activities (createWorker does)',
        );
      return { client: deps.temporalClient, prefix: deps.taskQueuePrefix };
    };
    const handleOf = (agreementId: string) =>
      temporal().client.workflow.getHandle<typeof agreementWorkflow>(
        agreementWorkflowId(step.taskKey, agreementId),
      );

    /** The stored vote of this role, if an earlier attempt (or a racing one) wrote it. */
    const storedVote = async (key: string) => {
      const { rows } = await inScope((c) =>
        c.query<{ id: string; fields: { approve: boolean; reason: string } }>(
          'select id, fields from cairn.observations where idempotency_key = $1',
          [key],
        ),
      );
      return rows[0];
    };

    const appendVote = async (agreementId: string, approve: boolean, reason: string) => {
      const key = voteIdempotencyKey(step.taskKey, agreementId, step.role);
      const existing = await storedVote(key);
      // The first vote a role wrote stands, even if a retry would now vote otherwise.
      if (existing)
        return { id: existing.id, approve: existing.fields.approve, reason: existing.fields.reason };
      await ensureTypes();
      try {
        const [stored] = await inScope((c) =>
          appendObservations(
            c,
            registry,
            [
              {
                ...agreementEntity(step.taskKey, agreementId),
                type: 'agreement.vote',
                kind: 'decision',
                scope: resolveScope('task', step.taskKey),
                fields: { voter: step.role, approve, reason },
                idempotencyKey: key,
              },
            ],
            appendContext(step, deps.clock, 'vote'),
          ),
        );
        return { id: stored!.id, approve, reason };
      } catch (err) {
        const raced = await storedVote(key);
        if (raced) return { id: raced.id, approve: raced.fields.approve, reason: raced.fields.reason };
        throw err;
      }
    };

    const agent: AgentCoordination = {
      async propose(spec: ProposalSpec) {
        const { client, prefix } = temporal();
        const input = {
          agreementId: spec.agreementId,
          taskKey: step.taskKey,
          proposal: spec.proposal,
          voters: spec.voters,
          rule: spec.rule ?? 'all-of',
          deadlineMs: spec.deadlineMs,
          ...(spec.subject ? { subject: spec.subject } : {}),
          proposedBy: step.role,
        };
        const parsed = agreementInputSchema.safeParse(input);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          throw new AgreementRefusedError(
            spec.agreementId,
            `invalid proposal: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
          );
        }
        const workflowId = agreementWorkflowId(step.taskKey, spec.agreementId);
        try {
          await client.workflow.start<typeof agreementWorkflow>('agreementWorkflow', {
            taskQueue: taskWorkflowQueue(prefix),
            workflowId,
            args: [input],
            // A retried proposer finds the running agreement; a decided one is never rerun.
            workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
            workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
            staticSummary: `Agreement ${spec.agreementId}: ${formatRule(parsed.data.rule)} of ${spec.voters.join(', ')}`,
            staticDetails: `Proposed by ${step.role} in task \`${step.taskKey}\`${spec.subject ? ` about ${subjectText(spec.subject)}` : ''}.\n\n\`\`\`json\n${JSON.stringify(spec.proposal, null, 2).slice(0, 2000)}\n\`\`\``,
          });
        } catch (err) {
          if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        }
        return { agreementId: spec.agreementId, workflowId };
      },

      async vote(agreementId, approve, reason, opts) {
        const key = agreementKey(step.taskKey, agreementId);
        const handle = handleOf(agreementId);
        const view = await untilProposed(
          key,
          () => handle.query(agreementQuery),
          step.signal,
          opts?.waitForProposalMs ?? DEFAULT_PROPOSAL_WAIT_MS,
        );
        if (!view.voters.includes(step.role))
          throw new AgreementRefusedError(
            key,
            `${step.role} is not a voter (voters: ${view.voters.join(', ')})`,
          );
        const answered = receiptFromView(view, step.role);
        if (answered) return answered;
        const vote = await appendVote(agreementId, approve, reason);
        try {
          return await handle.executeUpdate(voteUpdate, {
            args: [
              { voter: step.role, approve: vote.approve, reason: vote.reason, voteObservationId: vote.id },
            ],
            // Deduplicates a resent update within the run; the workflow dedups by voter too.
            updateId: `vote-${step.role}`,
          });
        } catch (err) {
          const cause = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
          if (cause instanceof ApplicationFailure && cause.type === FAILURE_TYPES.AgreementRefused)
            throw new AgreementRefusedError(key, cause.message);
          // The agreement closed between our query and the update: say so rather than fail.
          const after = await handle.query(agreementQuery).catch(() => undefined);
          const receipt = after && receiptFromView(after, step.role);
          if (receipt) return receipt;
          throw err;
        }
      },

      async awaitAgreement(agreementId, opts): Promise<AgreementOutcome> {
        const { client } = temporal();
        const key = agreementKey(step.taskKey, agreementId);
        const handle = handleOf(agreementId);
        await untilProposed(
          key,
          () => handle.describe(),
          step.signal,
          opts?.waitForProposalMs ?? DEFAULT_PROPOSAL_WAIT_MS,
        );
        const timeout = opts?.timeoutMs !== undefined ? AbortSignal.timeout(opts.timeoutMs) : undefined;
        const stop = timeout ? AbortSignal.any([step.signal, timeout]) : step.signal;
        try {
          // A long poll on the result: every waiter returns when the workflow closes.
          return await client.withAbortSignal(stop, () => handle.result());
        } catch (err) {
          if (step.signal.aborted) throw step.signal.reason;
          if (timeout?.aborted) throw new Error(`agreement ${key} not decided within ${opts?.timeoutMs} ms`);
          throw err;
        }
      },

      async once<T extends Json>(
        key: string,
        fn: () => Promise<T>,
        opts?: { global?: boolean; leaseMs?: number },
      ): Promise<T> {
        const stored = effectKey(key, opts?.global ? { global: true } : { taskKey: step.taskKey });
        // A task's effects are its own (migration 016); a global one is everyone's.
        const { result } = await runOnce(
          opts?.global ? deps.pool : actingFor(deps.pool, step.taskKey),
          stored,
          {
            taskKey: opts?.global ? null : step.taskKey,
            workflowId: step.workflowId,
            activityId: step.activityId,
            attempt: step.attempt,
          },
          fn,
          { signal: step.signal, ...(opts?.leaseMs !== undefined ? { leaseMs: opts.leaseMs } : {}) },
        );
        return result;
      },
    };

    return {
      agent,
      episodes: (query) => inScope((c) => findEpisodes(c, query ?? {})),
      withFreshness: (read) =>
        withFreshness(read, (state, opts) =>
          inScope((c) => annotateFreshness(c, state, { now: deps.clock(), ...opts })),
        ),
    };
  };
}

function appendContext(step: StepIdentity, clock: () => Date, what: string): AppendContext {
  return {
    provenance: {
      taskKey: step.taskKey,
      workflowId: step.workflowId,
      runId: step.runId,
      activityId: step.activityId,
      attempt: step.attempt,
      agentId: step.agentId,
      role: step.role,
    },
    idempotencyPrefix: `${step.workflowId}:${step.activityId}:${what}`,
    observedAt: clock().toISOString(),
  };
}

/** The answer a vote gets without voting: this role already voted, or the agreement is decided. */
function receiptFromView(view: AgreementView, role: string): VoteReceipt | undefined {
  const mine = view.votes.find((v) => v.voter === role);
  if (mine) return { counted: true, disposition: 'duplicate', status: view.status, vote: mine };
  if (view.status !== 'open') return { counted: false, disposition: 'closed', status: view.status };
  return undefined;
}

/** Calls `fn` until the agreement's workflow exists (a voter may run before the proposer). */
async function untilProposed<T>(
  key: string,
  fn: () => Promise<T>,
  signal: AbortSignal,
  waitMs: number,
): Promise<T> {
  const started = Date.now();
  let delay = 100;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      const waited = Date.now() - started;
      if (waited >= waitMs) throw new AgreementNotFoundError(key, waited);
      await sleep(Math.min(delay, waitMs - waited), signal);
      delay = Math.min(delay * 2, 1000);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  // The step's cancellation reason (a CancelledFailure) is what the step reports.
  const reason = () => (signal.reason instanceof Error ? signal.reason : new Error('cancelled'));
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(reason());
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(reason());
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The tasks queue's coordination activities: recording decisions, retention maintenance. */
export function createCoordinationActivities(deps: { pool: pg.Pool; clock?: () => Date }) {
  const clock = deps.clock ?? (() => new Date());
  // The decision is appended inside a transaction, where a missing type cannot be healed by a
  // retry of the statement: make sure the types are registered first (once per process).
  let registered: Promise<unknown> | undefined;
  return {
    async recordAgreementDecision(input: AgreementDecisionInput) {
      const info = Context.current().info;
      registered ??= registerObservationTypes(deps.pool, coordinationTypes).catch((err: unknown) => {
        registered = undefined;
        throw err;
      });
      await registered;
      const [stored] = await withSystemScope(deps.pool, (client) =>
        appendObservations(
          client,
          coordinationTypes,
          [
            {
              ...agreementEntity(input.taskKey, input.agreementId),
              type: 'agreement.decision',
              kind: 'decision',
              scope: resolveScope('task', input.taskKey),
              fields: {
                status: input.status,
                subject: subjectText(input.subject),
                rule: formatRule(input.rule),
                voters: input.voters,
                approvals: input.votes.filter((v) => v.approve).map((v) => v.voter),
                rejections: input.votes.filter((v) => !v.approve).map((v) => v.voter),
                missing: input.voters.filter((v) => !input.votes.some((x) => x.voter === v)),
                proposal: input.proposal,
              },
              derivedFrom: input.votes.map((v) => v.voteObservationId),
              idempotencyKey: decisionIdempotencyKey(input.taskKey, input.agreementId),
              observedAt: input.decidedAt,
            },
          ],
          {
            provenance: {
              taskKey: input.taskKey,
              workflowId: info.workflowExecution?.workflowId ?? '',
              runId: info.workflowExecution?.runId ?? '',
              activityId: info.activityId,
              attempt: info.attempt,
              agentId: 'cairn-agreement',
              role: 'cairn',
            },
            idempotencyPrefix: decisionIdempotencyKey(input.taskKey, input.agreementId),
            observedAt: clock().toISOString(),
          },
        ),
      );
      return { observationId: stored!.id };
    },

    async runMaintenance(opts: MaintenanceOptions) {
      const info = Context.current().info;
      return runMaintenance(deps.pool, opts, {
        workflowId: info.workflowExecution?.workflowId ?? '',
        runId: info.workflowExecution?.runId ?? '',
        activityId: info.activityId,
        attempt: info.attempt,
      });
    },
  } satisfies AgreementActivities & MaintenanceActivities;
}
