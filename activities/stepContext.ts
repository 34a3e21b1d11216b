/**
 * The AgentContext of one step attempt: the typed append / correct / retract and typed reads
 * of src/agent.ts turned into the store's shapes, buffered for the step's one transaction.
 * Built by the agent-step activity and by the /testing helper through the same runner
 * (activities/agentStep.ts), so what a unit test exercises is what a worker runs.
 */
import type { AgentContext, AppendOptions, TargetedOptions } from '../src/agent';
import { AgentValidationError, ObservationValidationError } from '../src/shared/errors';
import type { EntityState } from '../src/shared/entityState';
import type { EntityRef, Json, ObservationKind } from '../src/shared/observation';
import {
  isObservationType,
  type ObservationType,
  type ObservationTypeRegistry,
} from '../src/shared/observationTypes';
import type { TrackedReadOptions } from '../src/shared/readSets';
import type { ScopeGrant } from '../src/shared/scopes';
import type { AgentStepInput, ContextMessage, StepSpec } from '../src/shared/task';
import type { MemoryWrite } from '../src/shared/taskMessages';
import type { StepAppendItem } from '../src/store/staleness';
import type { StepClaims } from './claimContext';
import type { StepCoordination } from './coordination';

/** What a step buffers until its transaction. */
export interface StepBuffers {
  appends: StepAppendItem[];
  outgoing: ContextMessage[];
  proposals: StepSpec[];
  memoryWrites: MemoryWrite[];
}

export function emptyBuffers(): StepBuffers {
  return { appends: [], outgoing: [], proposals: [], memoryWrites: [] };
}

export interface StepContextParts {
  input: AgentStepInput;
  /** The step input as the handler sees it (parsed by the agent's input schema, if any). */
  stepInput: unknown;
  attempt: number;
  role: string;
  agentId: string;
  stepKey: string;
  scopes: ScopeGrant;
  /** The worker's observation types (ctx.types). */
  types: ObservationTypeRegistry;
  buffers: StepBuffers;
  claims: StepClaims;
  /** The step's tracked, scoped entity read (activities/readTracking.ts). */
  read: (ref: EntityRef, opts?: TrackedReadOptions) => Promise<EntityState>;
  coord: StepCoordination;
  registerWorkItems: (kind: string, ids: readonly string[]) => Promise<number>;
  signal: AbortSignal;
  heartbeat: (details?: unknown) => void;
}

export function buildStepContext(p: StepContextParts): AgentContext<unknown> {
  const { buffers, claims } = p;
  const push = (item: StepAppendItem, fence: AppendOptions['fence']) => {
    if (fence !== undefined) claims.addFence(claims.fence(fence));
    return buffers.appends.push(item) - 1;
  };
  const item = (
    type: ObservationType,
    entityId: string,
    kind: ObservationKind | undefined,
    fields: unknown,
    opts: TargetedOptions & { targetId?: string },
  ): StepAppendItem => {
    const index = buffers.appends.length;
    // Plain JavaScript callers get a clear error instead of a confusing one at commit.
    if (!isObservationType(type))
      throw new ObservationValidationError(
        index,
        'type',
        'must be an observation type handle (defineObservationType)',
      );
    if (typeof fields !== 'object' || fields === null || Array.isArray(fields))
      throw new ObservationValidationError(index, 'fields', 'must be an object');
    return {
      entityType: type.entity,
      entityId,
      type: type.name,
      schemaVersion: type.version,
      fields: fields as Record<string, unknown>,
      ...(kind !== undefined ? { kind } : {}),
      ...(opts.scope !== undefined ? { scope: opts.scope } : {}),
      ...(opts.derivedFrom !== undefined ? { derivedFrom: [...opts.derivedFrom] } : {}),
      ...(opts.source !== undefined ? { source: opts.source } : {}),
      ...(opts.targetId !== undefined ? { targetId: opts.targetId } : {}),
      ...(opts.expectedVersion !== undefined ? { expectedVersion: opts.expectedVersion } : {}),
      ...(opts.idempotencyKey !== undefined ? { idempotencyKey: opts.idempotencyKey } : {}),
      ...(opts.dependsOnReads !== undefined ? { dependsOnReads: opts.dependsOnReads } : {}),
    };
  };

  // `maxAgeMs` reads add freshness to the tracked read (src/store/freshness.ts).
  const read = p.coord.withFreshness(p.read) as (
    ref: EntityRef,
    opts?: TrackedReadOptions,
  ) => Promise<EntityState>;
  /** By handle(s) or, untyped, by reference; every handle must name the same entity type. */
  const entity = (what: unknown, idOrOpts?: unknown, maybeOpts?: unknown) => {
    if (typeof idOrOpts !== 'string')
      return read(what as EntityRef, idOrOpts as TrackedReadOptions | undefined);
    const types = Array.isArray(what) ? (what as unknown[]) : [what];
    const first = types[0];
    if (!isObservationType(first) || !types.every(isObservationType))
      throw new TypeError(
        'ctx.memory.entity: give an observation type handle (or several), then the entity id',
      );
    const others = types.filter((t) => t.entity !== first.entity);
    if (others.length > 0)
      throw new TypeError(
        `ctx.memory.entity: ${first.key} is about ${first.entity}, ${others[0]!.key} about ${others[0]!.entity}`,
      );
    return read(
      { entityType: first.entity, entityId: idOrOpts },
      maybeOpts as TrackedReadOptions | undefined,
    );
  };

  return {
    task: { taskKey: p.input.taskKey, goal: p.input.goal, scopes: p.input.scopes },
    step: {
      id: p.input.step.id,
      title: p.input.step.title,
      input: p.stepInput,
      attempt: p.attempt,
      upstream: p.input.upstream,
    },
    inbox: p.input.inbox,
    memory: {
      entity: entity as AgentContext['memory']['entity'],
      working: p.input.memory,
      episodes: p.coord.episodes,
    },
    scopes: p.scopes,
    types: p.types,
    agentId: p.agentId,
    role: p.role,
    append: (type, entityId, fields, opts = {}) =>
      push(item(type, entityId, opts.kind, fields, opts), opts.fence),
    correct: (type, entityId, targetId, fields, opts = {}) =>
      push(item(type, entityId, 'correction', fields, { ...opts, targetId }), opts.fence),
    retract: (type, entityId, targetId, opts = {}) =>
      push(item(type, entityId, 'retraction', {}, { ...opts, targetId }), opts.fence),
    claim: (resource, opts) => claims.claim(resource, opts.ttlMs),
    release: (resource) => claims.release(resource),
    nextFree: (kind, from, opts) => claims.nextFree(kind, from, opts.ttlMs),
    registerWorkItems: p.registerWorkItems,
    completeWorkItem: (resource) => claims.completeWorkItem(resource),
    send: (toRole, type, content, opts) => {
      buffers.outgoing.push({
        id: `${p.stepKey}:m${buffers.outgoing.length}`,
        fromRole: p.role,
        toRole,
        type,
        content,
        ...(opts?.toTask !== undefined ? { toTask: opts.toTask } : {}),
      });
    },
    proposeStep: (spec) => buffers.proposals.push(spec),
    setMemory: (key, value, expectedVersion) =>
      buffers.memoryWrites.push({ key, value, expectedVersion, writer: `${p.role}/${p.input.step.id}` }),
    signal: p.signal,
    heartbeat: p.heartbeat,
    ...p.coord.agent,
  };
}

/** Parses `value` with the agent's schema for `where`; a failure names the field, non-retryably. */
export function parseAgentValue(
  role: string,
  where: 'input' | 'output',
  schema:
    | {
        safeParse(v: unknown):
          | { success: true; data: unknown }
          | {
              success: false;
              error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] };
            };
      }
    | undefined,
  value: unknown,
): unknown {
  if (schema === undefined) return value;
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new AgentValidationError(role, where, formatPath(issue?.path ?? []), issue?.message ?? 'invalid');
}

/**
 * The output as it will travel (Temporal's JSON payloads): a value JSON cannot carry (a
 * BigInt, a cycle) fails the step for good rather than being mangled on the way.
 */
export function jsonOutput(role: string, value: unknown): Json {
  if (value === undefined) return null;
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new AgentValidationError(
      role,
      'output',
      '',
      `not JSON-serializable (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  return text === undefined ? null : (JSON.parse(text) as Json);
}

/** `company`, `items[2].id`. */
function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? String(segment) : `.${String(segment)}`;
  }
  return out;
}
