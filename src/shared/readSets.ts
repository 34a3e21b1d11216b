/**
 * Read receipts (design invariant 8, "reads are evidence too"): the shapes shared by the agent
 * API, the store and the CLI. Sandbox-safe.
 *
 * Glossary
 * - read set: what one attempt of an agent step read through its memory view — per entity, the
 *   version it saw and the fields it looked at. Stored with the attempt, linked to every
 *   observation the attempt wrote.
 * - dependsOnReads: how an appended observation depends on its step's read set. `strict`: the
 *   step is refused (StaleReadError, retried by Temporal) when something it read has moved on
 *   in a field it looked at; `warn`: written, but flagged stale; `off`: no check.
 * - conflict: one read-set entry that moved on: entity, version read, current version, and the
 *   observations (and fields) that moved it.
 */
import type { ObservationKind } from './observation';

export const DEPENDS_ON_READS = ['strict', 'warn', 'off'] as const;
export type DependsOnReads = (typeof DEPENDS_ON_READS)[number];

/** One entity version an attempt read. `fields: null` = every field (enumerated, or unknown). */
export interface ReadSetEntry {
  entityType: string;
  entityId: string;
  version: number;
  fields: string[] | null;
}

export interface StaleConflict {
  entityType: string;
  entityId: string;
  versionRead: number;
  currentVersion: number;
  /** Fields the step read that later observations touched; null when it read every field. */
  fields: string[] | null;
  /** The observations above the version read that touched them (the first 10, in version order). */
  observationIds: string[];
}

/**
 * Per observation type name, the default for its observations (overriding the kind's default).
 * Declared on the agent (`defineAgent({ dependsOnReads: { 'deal.terms': 'warn' } })`).
 */
export type DependsOnReadsByType = Readonly<Record<string, DependsOnReads>>;

/** Options of the agent's `ctx.memory.entity(ref, opts)`. */
export interface TrackedReadOptions {
  /** Read-after-write: wait (up to waitMs) until the entity reaches this version. */
  minVersion?: number;
  waitMs?: number;
  /** Leave out what rests on quarantined (retracted) observations. */
  excludeTainted?: boolean;
  /** Only these fields: the state holds just them and the read set records exactly them. */
  fields?: readonly string[];
}

/**
 * A tracked read's `fields` (a Proxy recording what the agent looks at) answers this symbol
 * with the plain object behind it, so library code that must walk every field (dating a
 * freshness read) can do so without recording "every field" in the agent's read set.
 */
export const UNTRACKED_FIELDS: unique symbol = Symbol.for('cairn.untrackedFields');

/** The fields without read tracking (the object itself when it is not tracked). */
export function untrackedFields<T extends object>(fields: T): T {
  const raw = (fields as Record<symbol, unknown>)[UNTRACKED_FIELDS];
  return typeof raw === 'object' && raw !== null ? (raw as T) : fields;
}

/** The default by kind: a decision is only as good as what it read; facts stand on their own. */
export function defaultDependsOnReads(kind: ObservationKind | undefined): DependsOnReads {
  return kind === 'decision' ? 'strict' : 'off';
}

/** The mode of one item: its own option, else its type's default, else its kind's. */
export function resolveDependsOnReads(
  item: { kind?: ObservationKind | undefined; type: string; dependsOnReads?: DependsOnReads | undefined },
  byType: DependsOnReadsByType = {},
): DependsOnReads {
  const mode = item.dependsOnReads ?? (Object.hasOwn(byType, item.type) ? byType[item.type] : undefined);
  const resolved = mode ?? defaultDependsOnReads(item.kind);
  if (!(DEPENDS_ON_READS as readonly string[]).includes(resolved))
    throw new RangeError(
      `dependsOnReads must be one of ${DEPENDS_ON_READS.join(', ')}, got ${JSON.stringify(resolved)}`,
    );
  return resolved;
}

/** `company/acme read at v3, now v5 (risk changed by 1 observation)` */
export function describeConflict(c: StaleConflict): string {
  const changed = c.fields === null ? 'changed' : `${c.fields.join(', ')} changed`;
  const n = c.observationIds.length;
  return `${c.entityType}/${c.entityId} read at version ${c.versionRead}, now at version ${c.currentVersion} (${changed} by ${n}${n === 10 ? '+' : ''} observation${n === 1 ? '' : 's'})`;
}
