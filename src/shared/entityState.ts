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

/** Why a written value is not the current one. */
export type ContestReason = FieldPolicy | 'corrected' | 'cleared' | 'pinned by correction';

/** A value that was written to a field but is not the current value, with who wrote it. */
export interface ContestedValue {
  value: Json;
  source: ObservationRef;
  /**
   * Why it lost: the policy that decided; `corrected` (a correction replaced it); `cleared` (an
   * explicit null replaced it); `pinned by correction` (written after a correction of the field).
   */
  reason: ContestReason;
}

/**
 * One element of a set-union field: who wrote it first and how many observations wrote it.
 * Bounded on purpose (a snapshot must not grow with history); every contributor is in the log
 * (`listContributors` in src/store/observations/read.ts lists them).
 */
export interface ElementSource {
  first: ObservationRef;
  count: number;
}

export interface FieldState {
  /**
   * Current value; `null` when an explicit null cleared the field (under every policy). The
   * reducer always sets it (a field nobody live wrote is absent from `fields`); optional only so
   * readers of hand-built states need not invent one.
   */
  value?: Json;
  policy: FieldPolicy;
  /**
   * The observation the current value comes from (set-union: the latest contributor; a cleared
   * field: the observation that wrote null).
   */
  winner: ObservationRef;
  /** For set-union fields: each element (canonical JSON) → its first contributor and count. */
  contributors?: Record<string, ElementSource>;
  /** True when the current value was set by a correction: the field is pinned to it. */
  corrected: boolean;
  /** Values that lost; bounded to the newest `MAX_CONTESTED`. */
  contested: ContestedValue[];
}

export interface EntityState {
  entityType: string;
  entityId: string;
  /** The entity version this state reflects (0 = no observations). */
  version: number;
  fields: Record<string, FieldState>;
  /** Observations withdrawn by a live retraction, with that retraction's id. */
  retracted: Record<string, string>;
}

export const MAX_CONTESTED = 20;

/**
 * Resolves the policy of a field for an observation of a given type and schema version;
 * `undefined` when the resolver does not know that type, version or field. The reducer never
 * guesses a policy (a guess would make state depend on which worker folded it).
 */
export type PolicyResolver = (type: string, schemaVersion: number, field: string) => FieldPolicy | undefined;
