/**
 * The agent's memory view, recording what it reads (its read set). One tracker per step
 * attempt: every `entity()` call records the entity and the version it returned; the fields
 * the agent looks at are recorded as it looks at them, through a Proxy on the state's `fields`:
 *  - reading `state.fields.x` or `'x' in state.fields` records `x` (also when x is absent: a
 *    decision may rest on a field not being there);
 *  - enumerating them (Object.keys/values/entries, spread, JSON.stringify, for…in) records
 *    "every field";
 *  - `opts.fields` declares the fields up front: the state holds only those, nothing is proxied.
 * `excludeTainted` reads the entity as if its tainted observations (active quarantines) had
 * never been written; the taint is loaded once per attempt.
 */
import type { EntityState, FieldState, PolicyResolver } from '../src/shared/entityState';
import { formatEntityRef, type EntityRef } from '../src/shared/observation';
import { UNTRACKED_FIELDS, type ReadSetEntry, type TrackedReadOptions } from '../src/shared/readSets';
import { loadTaint, withoutTainted, type Taint } from '../src/store/quarantine';
import type { Queryable } from '../src/store/pool';

export interface ReadTrackerDeps {
  policyOf: PolicyResolver;
  /** The entity read itself (the step's scoped read). */
  read: (ref: EntityRef, opts: { minVersion?: number; waitMs?: number }) => Promise<EntityState>;
  /** Runs queries the way the step may (its scope), for the taint of excludeTainted reads. */
  withDb: <T>(fn: (db: Queryable) => Promise<T>) => Promise<T>;
}

interface Recorded {
  entry: ReadSetEntry;
  all: boolean;
  fields: Set<string>;
}

/** Names a JSON walk or a Promise check asks for without meaning a field. */
const NOT_FIELDS = new Set(['toJSON', 'then']);

export class ReadTracker {
  private readonly recorded = new Map<string, Recorded>();
  private taint: Promise<Taint> | undefined;

  constructor(private readonly deps: ReadTrackerDeps) {}

  async entity(ref: EntityRef, opts: TrackedReadOptions = {}): Promise<EntityState> {
    const { excludeTainted, fields, ...readOpts } = opts;
    let state = await this.deps.read(ref, readOpts);
    if (excludeTainted) {
      const taint = await this.loadTaint();
      const seen = state;
      state = await this.deps.withDb((db) => withoutTainted(db, this.deps.policyOf, seen, taint));
    }
    const rec = this.entryFor(state);
    if (fields !== undefined) {
      const only: Record<string, FieldState> = {};
      for (const name of fields) {
        rec.fields.add(name);
        if (Object.hasOwn(state.fields, name)) only[name] = state.fields[name]!;
      }
      return { ...state, fields: only };
    }
    return { ...state, fields: trackFields(state.fields, rec) };
  }

  /** The read set so far: one entry per entity version read. */
  entries(): ReadSetEntry[] {
    return [...this.recorded.values()].map((r) => ({
      ...r.entry,
      fields: r.all ? null : [...r.fields].sort(),
    }));
  }

  private entryFor(state: EntityState): Recorded {
    const key = `${formatEntityRef(state)}@${state.version}`;
    let rec = this.recorded.get(key);
    if (!rec) {
      rec = {
        entry: { entityType: state.entityType, entityId: state.entityId, version: state.version, fields: [] },
        all: false,
        fields: new Set(),
      };
      this.recorded.set(key, rec);
    }
    return rec;
  }

  private loadTaint(): Promise<Taint> {
    this.taint ??= this.deps.withDb((db) => loadTaint(db));
    return this.taint;
  }
}

function trackFields(fields: Record<string, FieldState>, rec: Recorded): Record<string, FieldState> {
  const note = (prop: string | symbol) => {
    if (typeof prop !== 'string') return;
    if (Object.hasOwn(fields, prop) || (!NOT_FIELDS.has(prop) && !(prop in Object.prototype)))
      rec.fields.add(prop);
  };
  return new Proxy(fields, {
    get(target, prop, receiver) {
      if (prop === UNTRACKED_FIELDS) return target; // library walks (freshness) are not the agent's reads
      note(prop);
      return Reflect.get(target, prop, receiver) as unknown;
    },
    has(target, prop) {
      note(prop);
      return Reflect.has(target, prop);
    },
    getOwnPropertyDescriptor(target, prop) {
      note(prop);
      return Reflect.getOwnPropertyDescriptor(target, prop);
    },
    ownKeys(target) {
      rec.all = true;
      return Reflect.ownKeys(target);
    },
  });
}
