/**
 * Max-age reads of semantic memory. Entity state outlives tasks (it is the log), so a value
 * may be old news: a read with `maxAgeMs` dates every field by the observation that won it
 * and flags the fields older than the limit, with their age, instead of serving them as fresh.
 * It wraps any state read (the plain one, or a step's scoped and tracked one) without changing
 * what that read does.
 *
 * Age is measured from the winning observation's `observed_at` (when the writer saw it: the
 * default) or `recorded_at` (when the log stored it). For set-union fields the winner is the
 * latest contributor, so the set is as old as its newest element.
 */
import type { EntityState, FieldState, PolicyResolver } from '../shared/entityState';
import { UNTRACKED_FIELDS, untrackedFields } from '../shared/readSets';
import type { EntityRef } from '../shared/observation';
import { getEntityState, type EntityStateOptions } from './observations/read';
import { isoUtc } from './observations/rows';
import type { Queryable } from './pool';

import type { FieldAge, FreshEntityState, FreshnessOptions } from '../shared/agentTypes';
export type { FieldAge, FreshEntityState, Freshness, FreshnessOptions } from '../shared/agentTypes';

const FRESHNESS_KEYS = ['maxAgeMs', 'ageFrom', 'stale', 'now'] as const;

export function isFreshnessRead(opts: object | undefined): opts is FreshnessOptions {
  return opts !== undefined && (opts as Partial<FreshnessOptions>).maxAgeMs !== undefined;
}

/** The read options without the freshness ones, for the wrapped read. */
export function withoutFreshness<O extends object>(opts: O): O {
  const rest = { ...opts } as Record<string, unknown>;
  for (const k of FRESHNESS_KEYS) delete rest[k];
  return rest as O;
}

/** Dates every field of `state` and flags the stale ones. */
export async function annotateFreshness(
  db: Queryable,
  state: EntityState,
  opts: FreshnessOptions,
): Promise<FreshEntityState> {
  if (!Number.isFinite(opts.maxAgeMs) || opts.maxAgeMs < 0)
    throw new RangeError(`maxAgeMs must be a number >= 0, got ${opts.maxAgeMs}`);
  const ageFrom = opts.ageFrom ?? 'observed';
  const now = opts.now ?? new Date();
  // Dated from the plain fields: walking a tracked read's fields would record every field in
  // the agent's read set, and strict decisions would then be refused over fields never used.
  const all = untrackedFields(state.fields);
  const ids = [...new Set(Object.values(all).map((f) => f.winner.observationId))];
  const times = new Map<string, { observedAt: string; recordedAt: string }>();
  if (ids.length > 0) {
    const { rows } = await db.query<{ id: string; observed_at: string; recorded_at: string }>(
      `select id, ${isoUtc('observed_at')} as observed_at, ${isoUtc('recorded_at')} as recorded_at
         from cairn.observations where id = any($1::uuid[])`,
      [ids],
    );
    for (const r of rows) times.set(r.id, { observedAt: r.observed_at, recordedAt: r.recorded_at });
  }
  const fields: Record<string, FieldAge> = {};
  const stale: string[] = [];
  for (const [name, field] of Object.entries(all)) {
    const t = times.get(field.winner.observationId);
    // A winner the reader cannot see (another scope) cannot vouch for freshness: stale.
    const at = t
      ? Date.parse(ageFrom === 'observed' ? t.observedAt : t.recordedAt)
      : Number.NEGATIVE_INFINITY;
    const ageMs = Math.max(0, now.getTime() - at);
    const isStale = !(ageMs <= opts.maxAgeMs);
    fields[name] = {
      ageMs: Number.isFinite(ageMs) ? ageMs : Number.MAX_SAFE_INTEGER,
      stale: isStale,
      observationId: field.winner.observationId,
      observedAt: t?.observedAt ?? '',
      recordedAt: t?.recordedAt ?? '',
    };
    if (isStale) stale.push(name);
  }
  stale.sort();
  const kept = opts.stale === 'omit' ? hideFields(state.fields, new Set(stale)) : state.fields;
  return {
    ...state,
    fields: kept,
    freshness: {
      maxAgeMs: opts.maxAgeMs,
      ageFrom,
      measuredAt: now.toISOString(),
      fields,
      stale,
      fresh: stale.length === 0,
    },
  };
}

/**
 * `fields` without the `hidden` names, as a view over the original object, so a tracked read
 * still records what the agent looks at (an omitted field is recorded when asked for, like any
 * absent field; enumerating records every field).
 */
function hideFields(
  fields: Record<string, FieldState>,
  hidden: ReadonlySet<string>,
): Record<string, FieldState> {
  if (hidden.size === 0) return fields;
  const isHidden = (prop: string | symbol) => typeof prop === 'string' && hidden.has(prop);
  return new Proxy(fields, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (prop === UNTRACKED_FIELDS && typeof value === 'object' && value !== null)
        return hideFields(value as Record<string, FieldState>, hidden);
      return isHidden(prop) ? undefined : value;
    },
    has(target, prop) {
      const present = Reflect.has(target, prop);
      return isHidden(prop) ? false : present;
    },
    getOwnPropertyDescriptor(target, prop) {
      const d = Reflect.getOwnPropertyDescriptor(target, prop);
      return isHidden(prop) ? undefined : d;
    },
    ownKeys(target) {
      return Reflect.ownKeys(target).filter((k) => !isHidden(k));
    },
  });
}

/** getEntityState plus freshness: the plain (unscoped, untracked) max-age read. */
export async function getFreshEntityState(
  db: Queryable,
  policyOf: PolicyResolver,
  ref: EntityRef,
  opts: EntityStateOptions & FreshnessOptions,
): Promise<FreshEntityState> {
  const state = await getEntityState(db, policyOf, ref, withoutFreshness(opts));
  return annotateFreshness(db, state, opts);
}

export interface FreshnessReader<O extends object> {
  (ref: EntityRef, opts: O & FreshnessOptions): Promise<FreshEntityState>;
  (ref: EntityRef, opts?: O): Promise<EntityState>;
}

/**
 * Wraps a state read so that `maxAgeMs` in its options adds freshness; without it the read is
 * passed through untouched. `annotate` runs the dating query (e.g. in the reader's scope).
 */
export function withFreshness<O extends object>(
  read: (ref: EntityRef, opts?: O) => Promise<EntityState>,
  annotate: (state: EntityState, opts: FreshnessOptions) => Promise<FreshEntityState>,
): FreshnessReader<O> {
  const wrapped = async (ref: EntityRef, opts?: O | (O & FreshnessOptions)): Promise<EntityState> => {
    if (!isFreshnessRead(opts)) return read(ref, opts);
    const state = await read(ref, withoutFreshness(opts));
    return annotate(state, opts);
  };
  return wrapped as FreshnessReader<O>;
}
