/**
 * The tool session of an agent step: THE one place the AI SDK adapter touches the agent API
 * (src/agent.ts). Reads go through the step's memory view (so they are the step's read set),
 * writes and messages are buffered into the step's one transaction (checked for staleness and
 * fences when the step completes), claims are the step's (renewed on its heartbeat, released
 * when it ends). If the agent API changes, only this file changes.
 */
import type { AgentContext } from '../agent';
import { describeObservationType, type ObservationTypeRegistry } from '../shared/observationTypes';
import { ToolInputError } from '../tools/refusals';
import type { CairnSession } from '../tools/session';

export interface StepSessionOptions {
  /** The worker's observation types, for list_types (omitted from the tools without them). */
  types?: ObservationTypeRegistry;
}

const BUFFERED =
  'buffered: written when this step completes, in one transaction; a decision is refused then if what you read has changed';

export function stepSession(ctx: AgentContext<unknown>, opts: StepSessionOptions = {}): CairnSession {
  const ownTask = ctx.task.taskKey;
  const session: CairnSession = {
    identity: {
      agentId: ctx.agentId,
      role: ctx.role,
      task: ownTask,
      read: ctx.scopes.read,
      write: ctx.scopes.write,
    },

    async readEntity(ref, o) {
      if (o.task !== undefined && o.task !== ownTask)
        throw new ToolInputError('task', `a step reads in its own task (${ownTask})`);
      if (o.asOfVersion !== undefined)
        throw new ToolInputError('asOfVersion', 'not available inside an agent step: read the current state');
      if (o.asOfTime !== undefined)
        throw new ToolInputError('asOfTime', 'not available inside an agent step: read the current state');
      const state = await ctx.memory.entity(ref, {
        ...(o.minVersion !== undefined ? { minVersion: o.minVersion } : {}),
        ...(o.waitMs !== undefined ? { waitMs: o.waitMs } : {}),
        ...(o.excludeTainted !== undefined ? { excludeTainted: o.excludeTainted } : {}),
        ...(o.fields !== undefined ? { fields: o.fields } : {}),
      });
      // Taint and stale-write notes need store queries the step's view does not offer;
      // excludeTainted is how a step leaves tainted values out.
      return { state, notes: { tainted: [], writtenStale: [] } };
    },

    async append(req) {
      if (req.task !== undefined && req.task !== ownTask)
        throw new ToolInputError('task', `a step writes in its own task (${ownTask})`);
      if (req.fences.length > 1) throw new ToolInputError('fence', 'a step names at most one claim per call');
      const f = req.fences[0];
      const fence =
        f === undefined
          ? undefined
          : f.token === undefined
            ? f.resource
            : { resource: f.resource, token: f.token };
      // Validate every item's type first, so a bad item buffers nothing of the call.
      const resolved = req.items.map((item, i) => {
        const type = ctx.types.get(item.type);
        if (type === undefined)
          throw new ToolInputError(`items.${i}.type`, `unknown observation type ${item.type}`);
        if (type.entity !== item.entityType)
          throw new ToolInputError(
            `items.${i}.entityType`,
            `${type.key} is about ${type.entity}, not ${item.entityType}`,
          );
        return { item, type };
      });
      const buffered = resolved.map(({ item, type }) => {
        const source = item.source ?? req.source;
        const opts = {
          ...(item.scope !== undefined ? { scope: item.scope } : {}),
          ...(item.derivedFrom !== undefined ? { derivedFrom: item.derivedFrom } : {}),
          ...(source !== undefined ? { source } : {}),
          ...(fence !== undefined ? { fence } : {}),
        };
        const fields = item.fields as never;
        if (item.kind === 'correction' || item.kind === 'retraction') {
          if (item.targetId === undefined)
            throw new ToolInputError('targetId', `a ${item.kind} names the observation it targets`);
          return item.kind === 'correction'
            ? ctx.correct(type, item.entityId, item.targetId, fields, opts)
            : ctx.retract(type, item.entityId, item.targetId, opts);
        }
        return ctx.append(type, item.entityId, fields, {
          ...opts,
          ...(item.kind !== undefined ? { kind: item.kind } : {}),
          ...(item.expectedVersion !== undefined ? { expectedVersion: item.expectedVersion } : {}),
        });
      });
      return { written: false, buffered, note: BUFFERED };
    },

    async sendContext(req) {
      const toTask = req.task !== undefined && req.task !== ownTask ? req.task : undefined;
      ctx.send(req.toRole, req.type, req.content, toTask === undefined ? undefined : { toTask });
      return {
        id: '(assigned when the step completes)',
        toRole: req.toRole,
        task: toTask ?? ownTask,
        delivered: 'when-step-completes',
      };
    },

    async readInbox() {
      // The step's inbox is fixed at its start and acknowledged when it completes.
      return ctx.inbox.map((m) => ({
        id: m.id,
        task: ownTask,
        fromRole: m.fromRole,
        type: m.type,
        content: m.content,
        sentAt: null,
      }));
    },

    claim: (resource, ttlMs) => ctx.claim(resource, { ttlMs }),
    release: (resource) => ctx.release(resource),
    nextFree: (kind, from, ttlMs) => ctx.nextFree(kind, from, { ttlMs }),
    searchEpisodes: (q) => ctx.memory.episodes(q),
  };
  const types = opts.types;
  if (types) session.listTypes = () => types.all().map(describeObservationType);
  return session;
}
