/**
 * A tool session acting on the store directly: what an MCP connection gets. Identity comes from
 * the server (a token or the stdio configuration). Every query runs under withScope with the
 * grant of that identity, so Postgres row-level security is the boundary, not this code.
 *
 * Writes are one transaction per append_observations call, behind the session's read receipt
 * (its reads, checked for staleness exactly as an agent step's) and its fences.
 * Provenance: agent id and role, task (when named), activity id `mcp/<session>/<call>`, and a
 * `tool-call` source naming the MCP client (name@version).
 */
import type { Pool } from 'pg';
import type { CairnClient } from '../client';
import type { PolicyResolver } from '../shared/entityState';
import { FencingTokenStaleError } from '../shared/errors';
import type { EntityRef, ExternalSource } from '../shared/observation';
import { describeObservationType, type ObservationTypeRegistry } from '../shared/observationTypes';
import { resolveScope, scopePatternProblem, TASK_SCOPE, type ScopeGrant } from '../shared/scopes';
import type { TaskInput } from '../shared/task';
import { blastRadius } from '../store/blastRadius';
import { checkFences, claim, nextFree, release, renew, type Fence } from '../store/claims';
import { findEpisodes } from '../store/episodeSearch';
import { acknowledgeMessages, listMessages, persistMessages } from '../store/messages';
import { appendObservations } from '../store/observations/append';
import { traceField } from '../store/observations/trace';
import { loadTaint, taintedFields, withoutTainted } from '../store/quarantine';
import { pgError } from '../store/pool';
import { readEntityInScope, scopeErrorFrom, withScope } from '../store/scope';
import {
  checkReadReceipt,
  planReadReceipt,
  staleFlags,
  withReadReceipt,
  type StepAppendItem,
} from '../store/staleness';
import type { AgentBinding } from '../store/mcpAgents';
import { ToolInputError } from './refusals';
import { SessionReads } from './sessionReads';
import type {
  AppendOutcome,
  AppendRequest,
  CairnSession,
  ReadOptions,
  SendRequest,
  SessionIdentity,
} from './session';

export type { AgentBinding };

export interface StoreSessionDeps {
  /** A pool acting as cairn_app WITHOUT `scopes: 'all'`: each query is bounded by the grant. */
  pool: Pool;
  registry: ObservationTypeRegistry;
  policyOf: PolicyResolver;
  clock?: () => Date;
  /** For start_task / task_status / task_result and routing context to running tasks. */
  client?: CairnClient | undefined;
  temporalUi?: { uiUrl: string; namespace: string };
}

export interface ConnectionInfo {
  sessionId: string;
  clientName?: string | undefined;
  clientVersion?: string | undefined;
}

export function grantOf(binding: AgentBinding, taskKey: string | undefined): ScopeGrant {
  const resolve = (patterns: readonly string[]) =>
    [
      ...new Set(
        patterns.filter((p) => p !== TASK_SCOPE || taskKey).map((p) => resolveScope(p, taskKey ?? '')),
      ),
    ].sort();
  return { read: resolve(binding.read), write: resolve(binding.write) };
}

export function createStoreSession(
  deps: StoreSessionDeps,
  binding: AgentBinding,
  conn: () => ConnectionInfo,
): CairnSession {
  const { pool, registry, policyOf } = deps;
  const clock = deps.clock ?? (() => new Date());
  const reads = new SessionReads();
  const held = new Map<string, number>();
  const holder = `mcp/${binding.agentId}`;
  let calls = 0;
  const base = grantOf(binding, binding.task);
  const identity: SessionIdentity = {
    agentId: binding.agentId,
    role: binding.role,
    task: binding.task,
    read: base.read,
    write: base.write,
  };
  const taskOf = (t: string | undefined) => t ?? binding.task;
  const callId = () => `mcp/${conn().sessionId}/${++calls}`;
  const clientSource = (): ExternalSource => {
    const c = conn();
    return {
      kind: 'tool-call',
      ref: `mcp:${c.clientName ?? 'unknown-client'}`,
      ...(c.clientVersion ? { detail: `version ${c.clientVersion}` } : {}),
    };
  };
  // The agent's own task (its binding's, chosen by the server): it acts for it, so that task's
  // context and claims are its own (migration 013). Naming another task grants nothing.
  const inScope = <T>(taskKey: string | undefined, fn: Parameters<typeof withScope<T>>[2]) =>
    withScope(
      pool,
      grantOf(binding, taskKey),
      fn,
      taskKey !== undefined && taskKey === binding.task ? { taskKey } : {},
    );

  const session: CairnSession = {
    identity,
    listTypes: () =>
      registry
        .all()
        .map(describeObservationType)
        .map((t) => ({ ...t, policies: t.policies })),

    async readEntity(ref: EntityRef, opts: ReadOptions) {
      const grant = grantOf(binding, taskOf(opts.task));
      const { fields, excludeTainted, asOfTime, task: _task, ...versionOpts } = opts;
      let state = await readEntityInScope(pool, grant, binding.role, policyOf, ref, {
        ...versionOpts,
        ...(asOfTime !== undefined ? { asOfTime } : {}),
      });
      const { notesState, notes } = await withScope(pool, grant, async (client) => {
        const taint = await loadTaint(client);
        if (excludeTainted) state = await withoutTainted(client, policyOf, state, taint);
        const winners = Object.values(state.fields).map((f) => f.winner.observationId);
        const flags = await staleFlags(client, winners);
        const stale = Object.entries(state.fields)
          .filter(([, f]) => flags.has(f.winner.observationId))
          .map(([n]) => n);
        return { notesState: state, notes: { tainted: taintedFields(state, taint), writtenStale: stale } };
      });
      state = notesState;
      if (fields !== undefined) {
        state = {
          ...state,
          fields: Object.fromEntries(
            fields.filter((f) => Object.hasOwn(state.fields, f)).map((f) => [f, state.fields[f]!]),
          ),
        };
      }
      reads.record(state.entityType, state.entityId, state.version, fields);
      return {
        state,
        notes: { ...notes, tainted: notes.tainted.filter((t) => Object.hasOwn(state.fields, t.field)) },
      };
    },

    async append(req: AppendRequest): Promise<AppendOutcome> {
      const taskKey = taskOf(req.task);
      const grant = grantOf(binding, taskKey);
      const activityId = callId();
      const prefix = `mcp:${binding.agentId}:${req.requestId ?? activityId}`;
      const items: StepAppendItem[] = req.items.map((item, i) => ({
        ...item,
        scope: itemScope(item.scope, taskKey, grant, i),
        source: item.source ?? req.source ?? clientSource(),
      }));
      const fences: Fence[] = req.fences.map((f) => {
        if (f.token !== undefined) return { resource: f.resource, token: f.token };
        const token = held.get(f.resource);
        if (token === undefined)
          throw new FencingTokenStaleError(f.resource, null, 'not-held', {
            token: null,
            holder: null,
            expiresAt: null,
            checkedAt: null,
          });
        return { resource: f.resource, token };
      });
      const provenance = {
        taskKey: taskKey ?? '',
        workflowId: '',
        runId: '',
        activityId,
        attempt: 1,
        agentId: binding.agentId,
        role: binding.role,
      };
      const plan = planReadReceipt({
        provenance,
        idempotencyPrefix: prefix,
        entries: reads.entries(),
        items,
      });
      try {
        const stored = await withReadReceipt(pool, plan, () =>
          withScope(pool, grant, async (client) => {
            await checkFences(client, fences);
            await checkReadReceipt(client, plan);
            return appendObservations(client, registry, plan.items, {
              provenance,
              idempotencyPrefix: prefix,
              observedAt: clock().toISOString(),
            });
          }),
        );
        return {
          written: true,
          observations: stored.map((o) => ({
            id: o.id,
            entity: `${o.entityType}/${o.entityId}`,
            entityVersion: o.entityVersion,
            replayed: o.replayed,
          })),
        };
      } catch (err) {
        throw scopeErrorFrom(err) ?? err;
      }
    },

    async sendContext(req: SendRequest) {
      const taskKey = taskOf(req.task);
      if (taskKey === undefined) throw new ToolInputError('task', 'name the task the recipient works in');
      const id = `mcp:${binding.agentId}:${req.requestId ?? callId()}`;
      const message = {
        id,
        fromRole: binding.role,
        toRole: req.toRole,
        type: req.type,
        content: req.content,
      };
      try {
        await inScope(taskKey, (c) =>
          persistMessages(c, [message], { taskKey, workflowId: '', activityId: `mcp/${conn().sessionId}` }),
        );
      } catch (err) {
        // Row-level security (migration 013): a task's context belongs to the task's scope.
        if (pgError(err)?.code === '42501')
          throw new ToolInputError(
            'task',
            `task:${taskKey} is not in your grant: you may not send context there`,
          );
        throw err;
      }
      let delivered: 'now' | 'when-step-completes' = 'now';
      // A running task also gets it as a signal, so its next step of that role has it in its inbox
      // (the step stores it under the same id: one message).
      if (deps.client) {
        try {
          await deps.client.sendContext(taskKey, message);
          delivered = 'when-step-completes';
        } catch {
          // Not running (or not a task): the message waits in Postgres for read_inbox.
        }
      }
      return { id, toRole: req.toRole, task: taskKey, delivered };
    },

    async readInbox(opts) {
      const taskKey = taskOf(opts.task);
      return inScope(taskKey, async (c) => {
        const msgs = await listMessages(c, {
          toRole: binding.role,
          ...(taskKey ? { taskKey } : {}),
          unreadOnly: true,
          limit: 100,
        });
        if (opts.ack) {
          // Message ids are unique per task: acknowledge each task's own.
          const byTask = new Map<string, string[]>();
          for (const m of msgs) byTask.set(m.taskKey, [...(byTask.get(m.taskKey) ?? []), m.id]);
          for (const [task, ids] of byTask)
            await acknowledgeMessages(c, task, ids, {
              workflowId: '',
              activityId: `mcp/${conn().sessionId}`,
            });
        }
        return msgs.map((m) => ({
          id: m.id,
          task: m.taskKey,
          fromRole: m.fromRole,
          type: m.type,
          content: m.content,
          sentAt: m.createdAt,
        }));
      });
    },

    async claim(resource, ttlMs) {
      // In the session's grant: the claim belongs to its one write scope (migration 013).
      const r = await inScope(binding.task, (c) => claim(c, resource, { holder, ttlMs }));
      if (r.granted) held.set(resource, r.token);
      return r;
    },
    async renew(resource, ttlMs) {
      const token = held.get(resource);
      if (token === undefined) return { renewed: false, reason: 'not-holder', current: null };
      return inScope(binding.task, (c) => renew(c, resource, { holder, token, ttlMs }));
    },
    async release(resource) {
      const token = held.get(resource);
      held.delete(resource);
      if (token === undefined) return false;
      return (await inScope(binding.task, (c) => release(c, resource, { holder, token }))).released;
    },
    async nextFree(kind, from, ttlMs) {
      const g = await inScope(binding.task, (c) => nextFree(c, kind, from, { holder, ttlMs }));
      if (g) held.set(g.resource, g.token);
      return g;
    },

    traceField: (ref, field, opts) =>
      inScope(binding.task, (c) =>
        traceField(c, policyOf, ref, field, {
          ...(deps.temporalUi ?? { uiUrl: '', namespace: 'default' }),
          ...opts,
        }),
      ),
    searchEpisodes: (q) => inScope(binding.task, (c) => findEpisodes(c, q)),
    blastRadius: (id, opts) => inScope(binding.task, (c) => blastRadius(c, id, { ...opts, policyOf })),
  };

  const client = deps.client;
  if (client) {
    session.startTask = async (input: TaskInput) => {
      // A task's agents write where the task allows: an MCP agent may only start tasks whose
      // scopes it could write itself.
      for (const [i, p] of (input.scopes ?? [TASK_SCOPE]).entries()) {
        const problem = scopePatternProblem(p);
        if (problem !== undefined) throw new ToolInputError(`scopes.${i}`, problem);
        if (p !== TASK_SCOPE && !base.write.includes(p))
          throw new ToolInputError(
            `scopes.${i}`,
            `${p} is not one of your write scopes (${base.write.join(', ') || 'none'})`,
          );
      }
      return client.startTask(input);
    };
    // Status, working memory and result come from Temporal, not through RLS: the same rule as
    // a read in the task's scope (the agent's read scopes include `task`) is checked here.
    const mayReadTask = (taskKey: string) => {
      if (!grantOf(binding, taskKey).read.includes(resolveScope(TASK_SCOPE, taskKey)))
        throw new ToolInputError(
          'taskKey',
          `role ${binding.role} may not read task ${taskKey}: its read scopes (${binding.read.join(', ') || 'none'}) do not include task`,
        );
    };
    session.taskStatus = async (taskKey) => {
      mayReadTask(taskKey);
      const desc = await client.handle(taskKey).describe();
      if (desc.status.name !== 'RUNNING')
        return { taskKey, running: false, status: desc.status.name.toLowerCase() };
      return {
        taskKey,
        running: true,
        status: await client.status(taskKey),
        memory: await client.getWorkingMemory(taskKey),
      };
    };
    session.taskResult = async (taskKey, { waitMs }) => {
      mayReadTask(taskKey);
      const desc = await client.handle(taskKey).describe();
      if (desc.status.name !== 'RUNNING') return client.result(taskKey);
      const result = client.result(taskKey);
      const timeout = new Promise<'running'>((resolve) =>
        setTimeout(() => resolve('running'), waitMs).unref(),
      );
      const first = await Promise.race([result, timeout]);
      if (first === 'running') {
        result.catch(() => undefined);
        return { taskKey, status: 'running' as const };
      }
      return first;
    };
  }
  return session;
}

function itemScope(
  scope: string | undefined,
  taskKey: string | undefined,
  grant: ScopeGrant,
  index: number,
): string {
  if (scope === TASK_SCOPE || scope === undefined) {
    if (taskKey !== undefined) return resolveScope(TASK_SCOPE, taskKey);
    if (scope === undefined && grant.write.length === 1) return grant.write[0]!;
    throw new ToolInputError(
      `items.${index}.scope`,
      `name a scope (${grant.write.join(', ') || 'you have no write scope'}) or a task`,
    );
  }
  return scope;
}
