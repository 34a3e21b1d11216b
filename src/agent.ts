/**
 * Agents. An agent is a role plus a plain async handler. Cairn calls the handler once per step
 * (retried by Temporal), with the task, the step's input, a memory view limited to the task's
 * scopes, and the role's inbox of unread context. Whatever the handler appends, sends or
 * proposes is buffered and written in one transaction when it returns, so a retry either
 * replays the same writes (idempotently) or none of them happened.
 */
import type { EntityRef, Json } from './shared/observation';
import type { EntityState } from './shared/entityState';
import type { MemoryEntry } from './shared/taskMessages';
import type { ContextMessage, StepSpec } from './shared/task';
import type { DependsOnReadsByType, TrackedReadOptions } from './shared/readSets';
import type { StepAppendItem } from './store/staleness';
import type { ClaimResult, Fence, NextFreeSource, WorkGrant } from './store/claims';
import type { AgentCoordination, AgentEpisodicMemory } from './agentCoordination';
import type { FreshEntityState, FreshnessOptions } from './store/freshness';
import { roleSchema } from './shared/task';
import { checkScopePatterns, type ScopeDeclaration, type ScopeGrant } from './shared/scopes';

/** Also `episodes(query)`: past episodes (src/agentCoordination.ts). */
export interface AgentMemoryView extends AgentEpisodicMemory {
  /**
   * Entity state reduced from the log; `minVersion` demands read-after-write. What the step
   * reads (entity, version, the fields it looks at) is its read set: see activities/readTracking.ts.
   * `excludeTainted` leaves out what rests on quarantined observations; `fields` limits the
   * state (and the read set) to those fields.
   * With `maxAgeMs`: the same read, with each field dated by its winning observation and the
   * fields older than the limit flagged stale, with their age (src/store/freshness.ts).
   */
  entity(ref: EntityRef, opts: TrackedReadOptions & FreshnessOptions): Promise<FreshEntityState>;
  entity(ref: EntityRef, opts?: TrackedReadOptions): Promise<EntityState>;
  /** The task's working memory as of the step's start. */
  working: Readonly<Record<string, MemoryEntry>>;
}

/** Also propose / vote / awaitAgreement / once: see src/agentCoordination.ts. */
export interface AgentContext extends AgentCoordination {
  task: { taskKey: string; goal: string; scopes: readonly string[] };
  step: { id: string; title: string; input: Json; attempt: number; upstream: Readonly<Record<string, Json>> };
  /** Unread context for this role, oldest first. Acknowledged when the step completes. */
  inbox: readonly ContextMessage[];
  memory: AgentMemoryView;
  /**
   * What this step may read and write: its agent's declared scopes ∩ its task's, resolved.
   * Reads of an entity outside `read` fail with ScopeDeniedError; an append names its scope
   * with `scope` (`task`, the default, `team:<name>` or `global`) and must be in `write`.
   */
  scopes: ScopeGrant;
  agentId: string;
  role: string;
  /**
   * Buffers an observation; returns its index in this step's batch. With `fence` (a resource
   * this step claimed, or an explicit `{ resource, token }`) the step's whole write is refused
   * with FencingTokenStaleError (non-retryable) unless that claim is still current when the
   * step's transaction checks it.
   */
  append(item: StepAppendItem, opts?: { fence?: string | Fence }): number;
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

export interface AgentDefinition {
  role: string;
  description?: string;
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
  handle(ctx: AgentContext): Promise<Json | void>;
}

export function defineAgent(def: AgentDefinition): AgentDefinition {
  roleSchema.parse(def.role);
  if (typeof def.handle !== 'function') throw new Error(`agent ${def.role}: handle must be a function`);
  if (def.scopes?.read) checkScopePatterns(`agent ${def.role}: scopes.read`, def.scopes.read);
  if (def.scopes?.write) checkScopePatterns(`agent ${def.role}: scopes.write`, def.scopes.write);
  return def;
}
