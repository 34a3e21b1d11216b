/**
 * The port every Cairn tool talks to: one agent's bound session. The identity (agent, role,
 * scopes, task) is the session's, fixed by whoever built it (the MCP server from a credential,
 * an agent step from its task), never by tool input. Two implementations: src/tools/storeSession.ts
 * (MCP: acts on the store at once) and src/ai/stepSession.ts (inside an agent step: reads
 * through the step's view, buffers writes into the step's one transaction).
 *
 * Optional members are capabilities: a session without one simply does not offer that tool.
 */
import type { EntityState } from '../shared/entityState';
import type { EntityRef, ExternalSource, Json, ObservationKind } from '../shared/observation';
import type { ClaimResult, RenewResult, WorkGrant } from '../store/claims';
import type { FoundEpisode, EpisodeQuery } from '../store/episodeSearch';
import type { FieldTrace } from '../store/observations/trace';
import type { BlastRadius } from '../store/blastRadius';
import type { TaskInput, TaskResult } from '../shared/task';
import type { TaskStatusView, WorkingMemory } from '../shared/taskMessages';

export interface SessionIdentity {
  agentId: string;
  role: string;
  /** The task this session works in, when bound to one (an agent step always is). */
  task?: string | undefined;
  /** Concrete scopes (a `task` pattern already resolved), as the session may read and write them. */
  read: readonly string[];
  write: readonly string[];
}

export interface ReadOptions {
  /** Read as a participant of this task (its scope), when the session's grant has `task`. */
  task?: string | undefined;
  asOfVersion?: number;
  asOfTime?: string;
  minVersion?: number;
  waitMs?: number;
  fields?: readonly string[];
  excludeTainted?: boolean;
}

/** What a read tool returns besides the state: what the reader should know about it. */
export interface ReadNotes {
  /** Fields whose value rests on a quarantined (retracted) observation. */
  tainted: { field: string; observationId: string; quarantineId: string }[];
  /** Fields whose winning observation was written on moved-on reads (dependsOnReads 'warn'). */
  writtenStale: string[];
}

export interface ToolAppendItem {
  entityType: string;
  entityId: string;
  type: string;
  kind?: ObservationKind;
  fields: Record<string, unknown>;
  scope?: string;
  derivedFrom?: string[];
  targetId?: string;
  expectedVersion?: number;
  source?: ExternalSource;
}

export interface AppendRequest {
  items: ToolAppendItem[];
  /** Claims the write is fenced by: a resource this session holds, or an explicit token. */
  fences: { resource: string; token?: number | undefined }[];
  /** Makes a retried call write nothing twice (the keys derive from it). */
  requestId?: string | undefined;
  /** The task the write belongs to (provenance); the session's own when it has one. */
  task?: string | undefined;
  /** Filled in by the AI SDK adapter: the model call that produced these observations. */
  source?: ExternalSource | undefined;
}

export type AppendOutcome =
  | {
      written: true;
      observations: { id: string; entity: string; entityVersion: number; replayed: boolean }[];
    }
  | { written: false; buffered: number[]; note: string };

export interface SendRequest {
  toRole: string;
  type: string;
  content: Json;
  task?: string | undefined;
  requestId?: string | undefined;
}

export interface InboxMessage {
  id: string;
  task: string;
  fromRole: string;
  type: string;
  content: Json;
  sentAt: string | null;
}

export interface TypeInfo {
  name: string;
  version: number;
  entity: string;
  description: string;
  policies: Record<string, string>;
  jsonSchema: Json;
}

export interface CairnSession {
  readonly identity: SessionIdentity;
  listTypes?(): TypeInfo[] | Promise<TypeInfo[]>;
  readEntity(ref: EntityRef, opts: ReadOptions): Promise<{ state: EntityState; notes: ReadNotes }>;
  append(req: AppendRequest): Promise<AppendOutcome>;
  sendContext(
    req: SendRequest,
  ): Promise<{ id: string; toRole: string; task: string; delivered: 'now' | 'when-step-completes' }>;
  readInbox(opts: { task?: string | undefined; ack: boolean }): Promise<InboxMessage[]>;
  claim(resource: string, ttlMs: number): Promise<ClaimResult>;
  renew?(resource: string, ttlMs: number): Promise<RenewResult>;
  release(resource: string): Promise<boolean>;
  nextFree(
    kind: string,
    from: readonly string[] | { workItems: true },
    ttlMs: number,
  ): Promise<WorkGrant | null>;
  traceField?(ref: EntityRef, field: string, opts: { maxDepth?: number }): Promise<FieldTrace | null>;
  searchEpisodes?(query: EpisodeQuery): Promise<FoundEpisode[]>;
  blastRadius?(observationId: string, opts: { maxDepth?: number }): Promise<BlastRadius>;
  startTask?(
    input: TaskInput,
  ): Promise<{ taskKey: string; workflowId: string; runId: string; uiUrl: string }>;
  taskStatus?(
    taskKey: string,
  ): Promise<
    | { taskKey: string; running: true; status: TaskStatusView; memory: WorkingMemory }
    | { taskKey: string; running: false; status: string }
  >;
  taskResult?(
    taskKey: string,
    opts: { waitMs: number },
  ): Promise<TaskResult | { taskKey: string; status: 'running' }>;
}
