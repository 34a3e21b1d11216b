/**
 * The append path's public shapes and limits (re-exported by append.ts).
 */
import type { ExternalSource, ObservationKind } from '../../shared/observation';

/** One observation to append. Defaults: kind `assertion`, scope `task`, the type's newest schema version. */
export interface AppendItem {
  entityType: string;
  entityId: string;
  type: string;
  schemaVersion?: number;
  kind?: ObservationKind;
  fields: Record<string, unknown>;
  scope?: string;
  derivedFrom?: string[];
  source?: ExternalSource;
  /** For corrections and retractions: the observation (of the same entity) corrected or retracted. */
  targetId?: string;
  /**
   * Compare-and-set: the entity version the writer expects just before *this item* is appended
   * (earlier items of the same batch for the same entity count). Stale → StaleVersionError.
   */
  expectedVersion?: number;
  /** Default: `${ctx.idempotencyPrefix}:${index}`. */
  idempotencyKey?: string;
  /** Default: `ctx.observedAt`. */
  observedAt?: string;
}

export interface AppendContext {
  provenance: {
    taskKey: string;
    workflowId: string;
    runId: string;
    activityId: string;
    attempt: number;
    agentId: string;
    role: string;
  };
  /** Default idempotency key = `${idempotencyPrefix}:${index}`; callers pass workflowId + ':' + activityId. */
  idempotencyPrefix: string;
  /** ISO timestamp: agent/workflow time, as opposed to the database's recorded_at. */
  observedAt: string;
}

export interface AppendedObservation {
  /** Position of the item in the batch. */
  index: number;
  id: string;
  entityType: string;
  entityId: string;
  entityVersion: number;
  idempotencyKey: string;
  contentHash: string;
  /** Database time, ISO 8601 UTC with microseconds. */
  recordedAt: string;
  /** True when the key was already stored with the same content: nothing new was written. */
  replayed: boolean;
}

export const APPEND_LIMITS = {
  /** Items per call. */
  maxBatch: 5000,
  /** One item's fields, as UTF-8 JSON. */
  maxFieldsBytes: 256 * 1024,
  /** All items' fields together, so one call stays a sane single statement. */
  maxBatchBytes: 32 * 1024 * 1024,
  /** Any one string in fields or source, in UTF-16 code units. */
  maxStringLength: 64 * 1024,
  /** Nesting depth of fields (also what stops cyclic objects). */
  maxDepth: 32,
  /** derivedFrom references per item. */
  maxDerivedFrom: 1000,
  /** Idempotency keys, scopes, provenance strings. */
  maxKeyLength: 512,
} as const;
