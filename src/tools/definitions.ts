/**
 * THE Cairn tool set, defined once: name, what the model is told, the zod input schema and the
 * handler against a bound session (src/tools/session.ts). The MCP server (src/mcp/server.ts) and
 * the AI SDK adapter (src/ai/cairnTools.ts) are both generated from this list, so they cannot
 * drift. Inputs are strict objects: identity (agent, role, scopes of the grant) is never an input.
 */
import { z } from 'zod';
import { OBSERVATION_KINDS } from '../shared/observation';
import { jsonSchema, roleSchema, taskKeySchema, stepSpecSchema } from '../shared/task';
import type { CairnSession } from './session';
import { compactState, compactTrace, compactBlast, compactEpisode, compactClaim } from './compact';

export interface CairnToolDefinition<S extends z.ZodObject = z.ZodObject> {
  name: string;
  description: string;
  input: S;
  /** Present when the session must offer this capability for the tool to be listed. */
  needs?: keyof CairnSession;
  run(session: CairnSession, input: z.output<S>): Promise<unknown>;
}

function define<S extends z.ZodObject>(def: CairnToolDefinition<S>): CairnToolDefinition {
  return def;
}

const entityType = z.string().describe('entity type, e.g. company');
const entityId = z.string().describe('entity id, e.g. acme');
const task = taskKeySchema.optional().describe('task key this call belongs to (default: your session task)');
const requestId = z
  .string()
  .regex(/^[A-Za-z0-9._:-]{1,100}$/, 'letters, digits, . _ : - (max 100)')
  .optional()
  .describe('your id for this call: repeating a call with the same requestId writes nothing twice');
const ttlMs = z.number().int().min(1000).max(3_600_000).describe('lease length in ms (1 s to 1 h)');
const uuid = z.string().regex(/^[0-9a-fA-F-]{36}$/, 'must be an observation id (uuid)');

const appendItem = z
  .object({
    entityType,
    entityId,
    type: z.string().min(1).max(200).describe('registered observation type (list_types)'),
    kind: z
      .enum(OBSERVATION_KINDS)
      .optional()
      .describe('default assertion; decisions are checked against what you read'),
    fields: z.record(z.string(), z.unknown()).describe("the type's fields"),
    scope: z
      .string()
      .max(300)
      .optional()
      .describe('scope to write in (default: your task, or your only write scope)'),
    derivedFrom: z.array(uuid).max(100).optional().describe('observation ids this rests on'),
    targetId: uuid.optional().describe('for a correction or retraction: the observation it is about'),
    expectedVersion: z.number().int().min(0).optional().describe('compare-and-set on the entity version'),
  })
  .strict();

export const CAIRN_TOOLS: readonly CairnToolDefinition[] = [
  define({
    name: 'list_types',
    needs: 'listTypes',
    description:
      'List the registered observation types: entity, fields (JSON Schema) and per-field policies.',
    input: z.object({}).strict(),
    run: async (s) => s.listTypes!(),
  }),
  define({
    name: 'read_entity',
    description:
      'Read an entity: each field with its value, policy, who wrote it (agent, role, version, observation id), contested values and taint. What you read is recorded; a decision you append later is refused if what you read has changed since.',
    input: z
      .object({
        entityType,
        entityId,
        asOfVersion: z.number().int().min(0).optional(),
        asOfTime: z.string().datetime({ offset: true }).optional(),
        minVersion: z.number().int().min(0).optional().describe('wait until the entity reaches this version'),
        waitMs: z.number().int().min(0).max(10_000).optional(),
        fields: z.array(z.string().max(200)).max(200).optional().describe('only these fields'),
        excludeTainted: z.boolean().optional().describe('leave out what rests on quarantined observations'),
        task,
      })
      .strict(),
    run: async (s, i) => {
      const { entityType: t, entityId: id, ...opts } = i;
      const { state, notes } = await s.readEntity({ entityType: t, entityId: id }, opts);
      return compactState(state, notes);
    },
  }),
  define({
    name: 'trace_field',
    needs: 'traceField',
    description:
      "Where a field's current value came from: the winning observation and what it was derived from, with provenance.",
    input: z
      .object({
        entityType,
        entityId,
        field: z.string().min(1).max(200),
        maxDepth: z.number().int().min(0).max(20).optional(),
      })
      .strict(),
    run: async (s, i) => {
      const trace = await s.traceField!(
        { entityType: i.entityType, entityId: i.entityId },
        i.field,
        i.maxDepth === undefined ? {} : { maxDepth: i.maxDepth },
      );
      return trace === null ? { field: i.field, found: false } : compactTrace(trace);
    },
  }),
  define({
    name: 'append_observations',
    description:
      'Append observations (facts, inferences, decisions, corrections, retractions) about entities, validated against their registered type, all or nothing. Name claims in `fence` to write only while you still hold them.',
    input: z
      .object({
        items: z.array(appendItem).min(1).max(100),
        fence: z
          .array(
            z
              .object({ resource: z.string().min(1).max(512), token: z.number().int().min(1).optional() })
              .strict(),
          )
          .max(20)
          .optional()
          .describe('claims guarding this write (token defaults to the one you hold)'),
        requestId,
        task,
      })
      .strict(),
    run: async (s, i) =>
      s.append({ items: i.items, fences: i.fence ?? [], requestId: i.requestId, task: i.task }),
  }),
  define({
    name: 'send_context',
    description:
      'Send context to another role (of your task, or of `task`). The recipient reads it with read_inbox or in its next step.',
    input: z
      .object({ toRole: roleSchema, type: z.string().min(1).max(100), content: z.unknown(), task, requestId })
      .strict(),
    run: async (s, i) =>
      s.sendContext({
        toRole: i.toRole,
        type: i.type,
        content: jsonSchema.parse(i.content ?? null),
        task: i.task,
        requestId: i.requestId,
      }),
  }),
  define({
    name: 'read_inbox',
    description:
      'Read unread context messages sent to your role, oldest first; they are acknowledged unless ack is false.',
    input: z.object({ task, ack: z.boolean().optional() }).strict(),
    run: async (s, i) => ({ messages: await s.readInbox({ task: i.task, ack: i.ack ?? true }) }),
  }),
  define({
    name: 'claim',
    description:
      'Claim a resource exclusively for ttlMs: you get a fencing token, or who holds it and until when.',
    input: z.object({ resource: z.string().min(1).max(512), ttlMs }).strict(),
    run: async (s, i) => compactClaim(await s.claim(i.resource, i.ttlMs)),
  }),
  define({
    name: 'renew',
    needs: 'renew',
    description: 'Extend a claim you hold (same token).',
    input: z.object({ resource: z.string().min(1).max(512), ttlMs }).strict(),
    run: async (s, i) => {
      const r = await s.renew!(i.resource, i.ttlMs);
      return r.renewed
        ? { renewed: true, ...compactClaim(r.grant) }
        : { renewed: false, reason: r.reason, current: r.current };
    },
  }),
  define({
    name: 'release',
    description: 'Release a claim you hold.',
    input: z.object({ resource: z.string().min(1).max(512) }).strict(),
    run: async (s, i) => ({ resource: i.resource, released: await s.release(i.resource) }),
  }),
  define({
    name: 'next_free',
    description:
      'Claim the first free `<kind>/<id>` among candidate ids (or the oldest open work item of the kind); null when none is free.',
    input: z
      .object({
        kind: z.string().min(1).max(200),
        candidates: z.array(z.string().min(1).max(300)).max(1000).optional(),
        workItems: z.boolean().optional(),
        ttlMs,
      })
      .strict(),
    run: async (s, i) => {
      if ((i.candidates === undefined) === (i.workItems !== true))
        throw new RangeError('give candidates or workItems: true (one of them)');
      const grant = await s.nextFree(i.kind, i.candidates ?? { workItems: true }, i.ttlMs);
      return grant === null ? { granted: false, resource: null } : compactClaim(grant);
    },
  }),
  define({
    name: 'search_episodes',
    needs: 'searchEpisodes',
    description: 'Search past tasks (episodes) by goal text, tags, entity, outcome; newest first.',
    input: z
      .object({
        text: z.string().max(500).optional(),
        tags: z.array(z.string().max(100)).max(20).optional(),
        entityType: z.string().optional(),
        entityId: z.string().optional(),
        outcome: z.enum(['completed', 'failed', 'cancelled', 'mixed']).optional(),
        taskKey: taskKeySchema.optional(),
        limit: z.number().int().min(1).max(50).optional(),
      })
      .strict(),
    run: async (s, i) => {
      const { entityType: t, entityId: id, ...rest } = i;
      if ((t === undefined) !== (id === undefined))
        throw new RangeError('give entityType and entityId together');
      const found = await s.searchEpisodes!({
        ...rest,
        ...(t !== undefined && id !== undefined ? { entity: { entityType: t, entityId: id } } : {}),
      });
      return { episodes: found.map(compactEpisode) };
    },
  }),
  define({
    name: 'start_task',
    needs: 'startTask',
    description:
      'Start a multi-agent task (idempotent by taskKey): its goal and steps, each step a role with a title and input.',
    input: z
      .object({
        taskKey: taskKeySchema,
        goal: z.string().min(1).max(2000),
        steps: z.array(stepSpecSchema).min(1).max(50),
        scopes: z.array(z.string().max(300)).max(10).optional(),
      })
      .strict(),
    run: async (s, i) =>
      s.startTask!({
        taskKey: i.taskKey,
        goal: i.goal,
        steps: i.steps,
        ...(i.scopes ? { scopes: i.scopes } : {}),
      }),
  }),
  define({
    name: 'task_status',
    needs: 'taskStatus',
    description: "A task's progress: steps, pending messages and working memory.",
    input: z.object({ taskKey: taskKeySchema }).strict(),
    run: async (s, i) => s.taskStatus!(i.taskKey),
  }),
  define({
    name: 'task_result',
    needs: 'taskResult',
    description: "A finished task's result (waits up to waitMs; status running when not finished yet).",
    input: z
      .object({ taskKey: taskKeySchema, waitMs: z.number().int().min(0).max(60_000).optional() })
      .strict(),
    run: async (s, i) => s.taskResult!(i.taskKey, { waitMs: i.waitMs ?? 0 }),
  }),
  define({
    name: 'blast_radius',
    needs: 'blastRadius',
    description:
      'Everything downstream of an observation: what was derived from it, decided on reads of it, and the current fields resting on it.',
    input: z.object({ observationId: uuid, maxDepth: z.number().int().min(0).max(20).optional() }).strict(),
    run: async (s, i) =>
      compactBlast(
        await s.blastRadius!(
          i.observationId.toLowerCase(),
          i.maxDepth === undefined ? {} : { maxDepth: i.maxDepth },
        ),
      ),
  }),
];

/** The tools a session offers (those whose capability it has). */
export function toolsFor(session: CairnSession): CairnToolDefinition[] {
  return CAIRN_TOOLS.filter((t) => t.needs === undefined || typeof session[t.needs] === 'function');
}
