/**
 * Entity state: what the reducer produces from an entity's observations. JSON-serializable so it
 * can be cached as a snapshot in Postgres and carried through Temporal payloads.
 */
import type { FieldPolicy, Json, ObservationKind } from './observation';

/** A pointer from a value to the observation that produced it. */
export interface ObservationRef {
  observationId: string;
  entityVersion: number;
  agentId: string;
  role: string;
  kind: ObservationKind;
}

/** A value that was written to a field but is not the current value, with who wrote it. */
export interface ContestedValue {
  value: Json;
  source: ObservationRef;
  /** Why it lost: the policy that decided, or `corrected` / `retracted`. */
  reason: FieldPolicy | 'corrected' | 'retracted';
}

export interface FieldState {
  /**
   * Current value. The property is absent (not present-but-undefined) when a retraction cleared
   * the field, so a state survives a JSON round trip (snapshot) unchanged.
   */
  value?: Json;
  policy: FieldPolicy;
  /** The observation the current value comes from (for set-union: the latest contributor). */
  winner: ObservationRef;
  /** For set-union fields: each element (JSON-encoded) → the observations that contributed it. */
  contributors?: Record<string, ObservationRef[]>;
  /** True when the current value was set by a correction. */
  corrected: boolean;
  /** Values that lost under the policy; bounded to the newest `MAX_CONTESTED`. */
  contested: ContestedValue[];
}

export interface EntityState {
  entityType: string;
  entityId: string;
  /** The entity version this state reflects (0 = no observations). */
  version: number;
  fields: Record<string, FieldState>;
  /** Observations withdrawn by a retraction, with the retraction's id. */
  retracted: Record<string, string>;
}

export const MAX_CONTESTED = 20;

/** Resolves the policy of a field for an observation of a given type and schema version. */
export type PolicyResolver = (type: string, schemaVersion: number, field: string) => FieldPolicy;
