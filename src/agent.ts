/**
 * Agents. An agent is a role plus a plain async handler. Cairn calls the handler once per step
 * (retried by Temporal), with the task, the step's input, a memory view limited to the task's
 * scopes, and the role's inbox of unread context. Whatever the handler appends, sends or
 * proposes is buffered and written in one transaction when it returns, so a retry either
 * replays the same writes (idempotently) or none of them happened.
 *
 * Typed end to end from zod: observation types are handles (`defineObservationType`), so
 * `ctx.append(companyProfile, 'acme', { headquarters: 'Berlin' })` checks field names and value
 * types at compile time and `ctx.memory.entity(companyProfile, 'acme')` returns typed fields;
 * `defineAgent({ input, output })` parses the step's input and checks the handler's output.
 * This module is types plus `defineAgent`: it imports nothing from the store.
 */
import type { z } from 'zod';
import type { AgentCoordination, AgentEpisodicMemory } from './agentCoordination';
import type {
  ClaimResult,
  Fence,
  FreshEntityState,
  FreshnessOptions,
  NextFreeSource,
  WorkGrant,
} from './shared/agentTypes';
import type { EntityState, FieldState } from './shared/entityState';
import type { EntityRef, ExternalSource, Json } from './shared/observation';
import type {
  FieldsInput,
  FieldsOutput,
  MergedFieldsOutput,
  ObservationType,
  ObservationTypeRegistry,
} from './shared/observationTypes';
import type { DependsOnReads, DependsOnReadsByType, TrackedReadOptions } from './shared/readSets';
import type { MemoryEntry } from './shared/taskMessages';
import type { ContextMessage, StepSpec } from './shared/task';
import { roleSchema } from './shared/task';
import { checkScopePatterns, type ScopeDeclaration, type ScopeGrant } from './shared/scopes';

/** Options of `ctx.append`. Every one is optional; the defaults suit a plain fact. */
export interface AppendOptions {
  /** `assertion` (default: seen), `inference` (derived) or `decision`. Corrections: `ctx.correct`. */
  kind?: 'assertion' | 'inference' | 'decision';
  /** `task` (default), `team:<name>` or `global`; must be in the step's write grant. */
  scope?: string;
  /** Observations this one was derived from (ids). */
  derivedFrom?: readonly string[];
  /** The outside source it came from. */
  source?: ExternalSource;
  /** Compare-and-set: the entity version expected just before this item (StaleVersionError). */
  expectedVersion?: number;
  /** Default: derived from the step (workflow id, activity id, index), so a retry replays. */
  idempotencyKey?: string;
  /** How it depends on the step's reads (default: the agent's per-type default, else by kind). */
  dependsOnReads?: DependsOnReads;
  /**
   * A resource this step claimed (or an explicit `{ resource, token }`): the step's whole write
   * is refused with FencingTokenStaleError (non-retryable) unless that claim is still current
   * when the step's transaction checks it.
   */
  fence?: string | Fence;
}

/** Options of `ctx.correct` and `ctx.retract` (the kind is theirs). */
export type TargetedOptions = Omit<AppendOptions, 'kind'>;

/** A field of a typed read: the reduced value with its provenance (winner, contested values…). */
export type TypedFieldState<V> = Omit<FieldState, 'value'> & {
  /** Absent when a retraction or an explicit null cleared the field. */
  value?: V;
};

/**
 * Entity state read by handle. The state is the entity's, whatever types wrote it: `fields` is
 * typed by the handles read with (fields of other types are there at run time, untyped), and
 * every field may be missing, as no observation may have set it yet.
 */
export type TypedEntityState<F> = Omit<EntityState, 'fields'> & {
  fields: { [K in keyof F]?: TypedFieldState<F[K]> };
};

/** One handle, or several of the same entity type (a read that looks at fields of each). */
export type ReadTypes = ObservationType | readonly [ObservationType, ...ObservationType[]];
/** The typed fields of a read by `S`. */
export type FieldsOf<S extends ReadTypes> = S extends ObservationType
  ? FieldsOutput<S>
  : S extends readonly ObservationType[]
    ? MergedFieldsOutput<S>
    : never;

/** Options of a typed read: `fields` names the fields to read (and record in the read set). */
export type EntityReadOptions<F> = Omit<TrackedReadOptions, 'fields'> & {
  fields?: readonly (keyof F & string)[];
};

/** Also `episodes(query)`: past episodes (src/agentCoordination.ts). */
export interface AgentMemoryView extends AgentEpisodicMemory {
  /**
   * The entity `<type's entity>/<entityId>` reduced from the log, typed by the handle(s):
   * `ctx.memory.entity(companyProfile, 'acme')` or `ctx.memory.entity([companyProfile,
   * riskAssessment], 'acme')`. `minVersion` demands read-after-write. What the step reads
   * (entity, version, the fields it looks at) is its read set: see activities/readTracking.ts.
   * `excludeTainted` leaves out what rests on quarantined observations; `fields` limits the
   * state (and the read set) to those fields.
   * With `maxAgeMs`: each field dated by its winning observation and the fields older than the
   * limit flagged stale, with their age (`freshness`).
   */
  entity<S extends ReadTypes>(
    types: S,
    entityId: string,
    opts: EntityReadOptions<FieldsOf<S>> & FreshnessOptions,
  ): Promise<TypedEntityState<FieldsOf<S>> & Pick<FreshEntityState, 'freshness'>>;
  entity<S extends ReadTypes>(
    types: S,
    entityId: string,
    opts?: EntityReadOptions<FieldsOf<S>>,
  ): Promise<TypedEntityState<FieldsOf<S>>>;
  /**
   * Untyped, by reference: for tools that know the entity only at run time (MCP, AI SDK
   * tools). Agent code reads by handle.
   */
  entity(ref: EntityRef, opts: TrackedReadOptions & FreshnessOptions): Promise<FreshEntityState>;
  entity(ref: EntityRef, opts?: TrackedReadOptions): Promise<EntityState>;
  /** The task's working memory as of the step's start. */
  working: Readonly<Record<string, MemoryEntry>>;
}

/**
 * What a handler gets. `I` is the step input's type: the output of the agent's `input` schema,
 * or `Json` without one. Also propose / vote / awaitAgreement / once: src/agentCoordination.ts.
 */
export interface AgentContext<I = Json> extends AgentCoordination {
  task: { taskKey: string; goal: string; scopes: readonly string[] };
  step: { id: string; title: string; input: I; attempt: number; upstream: Readonly<Record<string, Json>> };
  /** Unread context for this role, oldest first. Acknowledged when the step completes. */
  inbox: readonly ContextMessage[];
  memory: AgentMemoryView;
  /**
   * What this step may read and write: its agent's declared scopes ∩ its task's, resolved.
   * Reads of an entity outside `read` fail with ScopeDeniedError; an append names its scope
   * with `scope` (`task`, the default, `team:<name>` or `global`) and must be in `write`.
   */
  scopes: ScopeGrant;
  /**
   * The worker's observation types, for code that knows a type only by name at run time (tools
   * a model calls): `ctx.append(ctx.types.get('company.profile')!, 'acme', fields)`.
   */
  types: ObservationTypeRegistry;
  agentId: string;
  role: string;
  /**
   * Buffers an observation of `type` about `<type.entity>/<entityId>`, written with the step's
   * other writes when the handler returns; returns its index in the step's batch. `fields` are
   * the schema's input: a misspelt field or a wrong type does not compile.
   */
  append<T extends ObservationType>(
    type: T,
    entityId: string,
    fields: NoInfer<FieldsInput<T>>,
    opts?: AppendOptions,
  ): number;
  /**
   * Buffers a correction of observation `targetId` (of the same entity): the fields it names
   * override the current values whatever their policy, until a later correction.
   */
  correct<T extends ObservationType>(
    type: T,
    entityId: string,
    targetId: string,
    fields: NoInfer<Partial<FieldsInput<T>>>,
    opts?: TargetedOptions,
  ): number;
  /** Buffers a retraction of observation `targetId` (of the same entity): the state is as if it had never been written. */
  retract(type: ObservationType, entityId: string, targetId: string, opts?: TargetedOptions): number;
  /**
   * Claims `resource` for this step (holder `<workflow id>/<activity id>#<attempt>`): a grant
   * with its fencing token, or who holds it and until when. Grants are renewed on the step's
   * heartbeat and released when the step ends, whatever its outcome. `ttlMs` must cover two
   * heartbeats; a crashed step's claim lapses after it.
   */
  claim(resource: string, opts: { ttlMs: number }): Promise<ClaimResult>;
  /** Releases one of this step's claims now; false if the step did not hold it. */
  release(resource: string): Promise<boolean>;
  /**
   * Claims the first free `<kind>/<id>` among candidate ids, or with `{ workItems: true }` the
   * kind's oldest registered work item that is not done; null when none is free.
   */
  nextFree(kind: string, from: NextFreeSource, opts: { ttlMs: number }): Promise<WorkGrant | null>;
  /**
   * Registers units of work `<kind>/<id>` for nextFree (idempotent: a retry registers nothing
   * new); returns how many were new. Immediate, like claims: a later nextFree of the same step
   * sees them. Runs in the step's scope.
   */
  registerWorkItems(kind: string, ids: readonly string[]): Promise<number>;
  /** Marks a claimed work item done, in the step's transaction and fenced by its claim. */
  completeWorkItem(resource: string): void;
  /** Buffers a context message to a role (of this task, or of `toTask`). */
  send(toRole: string, type: string, content: Json, opts?: { toTask?: string }): void;
  /** Proposes a follow-up step; the task accepts a bounded number. */
  proposeStep(spec: StepSpec): void;
  /** Compare-and-set on working memory, applied by the task when the step completes. */
  setMemory(key: string, value: Json, expectedVersion: number): void;
  /** Cancelled when the task is cancelled or the step timed out. */
  signal: AbortSignal;
  heartbeat(details?: unknown): void;
}

/**
 * What `defineAgent` takes. `I` is inferred from the `input` schema (its output: defaults
 * applied), `O` from the `output` schema (its input) and the handler's return value.
 */
export interface AgentSpec<I, O> {
  /** Lower-case role name; the agent's task queue is named after it. */
  role: string;
  description?: string;
  /**
   * The step input's schema: the handler gets `ctx.step.input` parsed (defaults applied). Input
   * that fails it fails the step for good, naming the field (`step input.company: …`).
   * Without one, `ctx.step.input` is the step's JSON as given.
   */
  input?: z.ZodType<I>;
  /**
   * The output's schema: checked before anything is committed; a handler output that fails it
   * fails the step for good, naming the field, and nothing the step buffered is written.
   * Without one, the handler may return any JSON-serializable value (checked at run time) or nothing.
   */
  output?: z.ZodType & { _zod: { input: O } };
  /**
   * Per observation type, how this agent's appends depend on its reads (`strict`, `warn`,
   * `off`); an item's own `dependsOnReads` wins. Default: `strict` for decisions, else `off`.
   */
  dependsOnReads?: DependsOnReadsByType;
  /**
   * Scope patterns this role may read and write (`task`, `team:<name>`, `global`), further
   * narrowed by each task. Default: read `task` and `global`, write `task`.
   */
  scopes?: ScopeDeclaration;
  handle(ctx: AgentContext<I>): Promise<O>;
}

/**
 * A defined agent, as workers and the /testing helpers take it; `I` and `O` are its handler's
 * input and output types. Agents of different types go in one `AgentDefinition[]`.
 */
export interface AgentDefinition<I = unknown, O = unknown> {
  readonly role: string;
  readonly description?: string;
  readonly input?: z.ZodType;
  readonly output?: z.ZodType;
  readonly dependsOnReads?: DependsOnReadsByType;
  readonly scopes?: ScopeDeclaration;
  handle(ctx: AgentContext<I>): Promise<O>;
}

export function defineAgent<I = Json, O = unknown>(spec: AgentSpec<I, O>): AgentDefinition<I, O> {
  roleSchema.parse(spec.role);
  if (typeof spec.handle !== 'function') throw new Error(`agent ${spec.role}: handle must be a function`);
  if (spec.scopes?.read) checkScopePatterns(`agent ${spec.role}: scopes.read`, spec.scopes.read);
  if (spec.scopes?.write) checkScopePatterns(`agent ${spec.role}: scopes.write`, spec.scopes.write);
  for (const side of ['input', 'output'] as const) {
    const schema: unknown = spec[side];
    if (schema !== undefined && typeof (schema as { safeParse?: unknown }).safeParse !== 'function')
      throw new Error(`agent ${spec.role}: ${side} must be a zod schema`);
  }
  return spec;
}
