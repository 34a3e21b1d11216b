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
import type { AppendItem } from './store/observations/append';
import { roleSchema } from './shared/task';

export interface AgentMemoryView {
  /** Entity state reduced from the log; `minVersion` demands read-after-write. */
  entity(ref: EntityRef, opts?: { minVersion?: number; waitMs?: number }): Promise<EntityState>;
  /** The task's working memory as of the step's start. */
  working: Readonly<Record<string, MemoryEntry>>;
}

export interface AgentContext {
  task: { taskKey: string; goal: string; scopes: readonly string[] };
  step: { id: string; title: string; input: Json; attempt: number; upstream: Readonly<Record<string, Json>> };
  /** Unread context for this role, oldest first. Acknowledged when the step completes. */
  inbox: readonly ContextMessage[];
  memory: AgentMemoryView;
  agentId: string;
  role: string;
  /** Buffers an observation; returns its index in this step's batch. */
  append(item: AppendItem): number;
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
  handle(ctx: AgentContext): Promise<Json | void>;
}

export function defineAgent(def: AgentDefinition): AgentDefinition {
  roleSchema.parse(def.role);
  if (typeof def.handle !== 'function') throw new Error(`agent ${def.role}: handle must be a function`);
  return def;
}
