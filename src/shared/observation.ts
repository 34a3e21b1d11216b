/**
 * The observation model, shared by workflow code (sandbox-safe: no Node, no pg) and the store.
 *
 * Glossary
 * - entity: a thing agents learn about, named `<entityType>/<entityId>` (e.g. `company/acme`).
 * - observation: one immutable, schema-checked statement about one entity, with provenance.
 * - observation type: a named, versioned zod schema for an observation's fields plus a
 *   per-field write-ordering policy (see `FieldPolicy`).
 * - kind: what the observation is: an `assertion` (seen), an `inference` (derived), a `decision`,
 *   a `correction` (overrides a field whatever its policy) or a `retraction` (withdraws an earlier
 *   observation).
 * - entity version: a gapless 1,2,3… counter per entity, assigned by the database in the writing
 *   transaction. It is the total order the reducer folds by.
 * - provenance: who wrote it (agent, role), in which task, Temporal workflow/run/activity/attempt,
 *   from which earlier observations, from which outside source.
 * - idempotency key: a deterministic key per observation (default: workflow id + activity id +
 *   index), so an activity retry appends nothing new.
 */
import { z } from 'zod';

export const OBSERVATION_KINDS = ['assertion', 'inference', 'decision', 'correction', 'retraction'] as const;
export type ObservationKind = (typeof OBSERVATION_KINDS)[number];

/** Per-field write-ordering policies. A correction beats all of them; a retraction clears. */
export const FIELD_POLICIES = [
  'last-writer-wins',
  'first-writer-wins',
  'max',
  'min',
  'set-union',
  'reject-on-conflict',
] as const;
export type FieldPolicy = (typeof FIELD_POLICIES)[number];

/** A JSON value as stored in Postgres jsonb. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface EntityRef {
  entityType: string;
  entityId: string;
}

/** An outside source an observation came from. */
export interface ExternalSource {
  kind: 'url' | 'document' | 'tool-call' | 'human' | 'other';
  ref: string;
  detail?: string;
}

/** Who and what wrote an observation. Temporal ids are empty strings outside a workflow. */
export interface Provenance {
  taskKey: string;
  workflowId: string;
  runId: string;
  activityId: string;
  attempt: number;
  agentId: string;
  role: string;
  derivedFrom: string[];
  source?: ExternalSource | undefined;
}

/** An observation as stored: everything the log knows about one row. */
export interface StoredObservation extends EntityRef {
  id: string;
  /** Global append order (database sequence); useful for listing, not for reduction. */
  seq: number;
  entityVersion: number;
  type: string;
  schemaVersion: number;
  kind: ObservationKind;
  fields: Record<string, Json>;
  scope: string;
  provenance: Provenance;
  /** For corrections and retractions: the observation corrected or retracted. */
  targetId: string | null;
  expectedVersion: number | null;
  observedAt: string;
  recordedAt: string;
  idempotencyKey: string;
  contentHash: string;
  prevHash: string;
  chainHash: string;
}

/** What the reducer needs of an observation: the pure part, no database columns. */
export type ReducibleObservation = Pick<
  StoredObservation,
  'id' | 'entityVersion' | 'type' | 'schemaVersion' | 'kind' | 'fields' | 'targetId'
> & { provenance: Pick<Provenance, 'agentId' | 'role' | 'taskKey'> };

/** What an entity type may be (entityRefSchema; also checked by hand on the append path). */
export const ENTITY_TYPE_PATTERN = /^[a-z][a-z0-9_.-]{0,62}$/;
/** The longest entity id, in UTF-16 code units as zod's max counts. */
export const ENTITY_ID_MAX_LENGTH = 256;

export const entityRefSchema = z.object({
  entityType: z.string().regex(ENTITY_TYPE_PATTERN, 'must be lower-case letters, digits, _ . - (max 63)'),
  entityId: z
    .string()
    .min(1)
    .max(ENTITY_ID_MAX_LENGTH)
    .refine((s) => ![...s].some((c) => c.charCodeAt(0) < 0x20), 'must not contain control characters'),
});

/** Parse `type/id` as used on the command line. */
export function parseEntityRef(text: string): EntityRef {
  const slash = text.indexOf('/');
  if (slash <= 0 || slash === text.length - 1) {
    throw new Error(`entity must be written <type>/<id>, got "${text}"`);
  }
  return entityRefSchema.parse({ entityType: text.slice(0, slash), entityId: text.slice(slash + 1) });
}

export function formatEntityRef(ref: EntityRef): string {
  return `${ref.entityType}/${ref.entityId}`;
}
