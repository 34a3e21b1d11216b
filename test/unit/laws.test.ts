/**
 * The reduction laws of docs/observations.md, as properties over random logs: the reducer
 * against a brute-force model written straight from the laws (no fold, no shared code), and
 * metamorphic laws (a log with X retracted against the same log without X) over logs that also
 * change policies between schema versions, retract retractions and clear with null.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { canonicalJson } from '../../src/shared/canonicalJson';
import type { EntityState, FieldState, PolicyResolver } from '../../src/shared/entityState';
import type { FieldPolicy, Json, ObservationKind, ReducibleObservation } from '../../src/shared/observation';
import {
  applyObservations,
  emptyEntityState,
  reduceEntity,
  withdrawalsIn,
  type RetractionLink,
} from '../../src/shared/reducer';

const REF = { entityType: 'company', entityId: 'acme' };
const T: Record<string, FieldPolicy> = {
  a: 'last-writer-wins',
  b: 'first-writer-wins',
  c: 'max',
  d: 'min',
  e: 'set-union',
  f: 'reject-on-conflict',
};
const U: Record<string, FieldPolicy> = { ...T, a: 'set-union', e: 'last-writer-wins', c: 'min', d: 'max' };
const policyOf: PolicyResolver = (type, _v, field) => (type === 'u' ? U : T)[field];

interface Step {
  kind: ObservationKind;
  agent: number;
  type: 't' | 'u';
  fields: Record<string, Json>;
  target: number;
}
const num = fc.oneof(fc.integer({ min: -5, max: 5 }), fc.constant(null));
const typedFields = {
  a: fc.oneof(fc.constantFrom<Json>('Alpha', 'Beta', 'Gamma'), fc.constant(null)),
  b: num,
  c: num,
  d: num,
  e: fc.oneof(
    fc.array(fc.constantFrom<Json>('p', 'q', 'r', null), { maxLength: 3 }),
    fc.constantFrom<Json>('p', 's', null),
  ),
  f: num,
};
const anyValue: fc.Arbitrary<Json> = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom('x', 'y'),
  fc.array(fc.constantFrom<Json>('p', 1, null), { maxLength: 2 }),
  fc.constant(null),
  fc.boolean(),
);
const anyFields = Object.fromEntries(Object.keys(typedFields).map((k) => [k, anyValue]));
const KINDS: ObservationKind[] = ['assertion', 'inference', 'decision', 'correction', 'retraction'];

function logArb(o: {
  typed: boolean;
  types: readonly ('t' | 'u')[];
  kinds?: readonly ObservationKind[];
  maxLength?: number;
}): fc.Arbitrary<ReducibleObservation[]> {
  const fields = fc.record<Record<string, Json>>(o.typed ? typedFields : anyFields, { requiredKeys: [] });
  const step = fc.record({
    kind: fc.constantFrom(...(o.kinds ?? KINDS)),
    agent: fc.integer({ min: 1, max: 3 }),
    type: fc.constantFrom(...o.types),
    fields,
    target: fc.nat(),
  });
  return fc.array(step, { maxLength: o.maxLength ?? 30 }).map(toLog);
}

function obs(
  version: number,
  kind: ObservationKind,
  fields: Record<string, Json>,
  type = 't',
  target: string | null = null,
  agent = 'agent-1',
  id = `obs-${version}`,
): ReducibleObservation {
  return {
    id,
    entityVersion: version,
    type,
    schemaVersion: 1,
    kind,
    fields,
    targetId: target,
    provenance: { agentId: agent, role: 'r', taskKey: 'k' },
  };
}

function toLog(steps: readonly Step[]): ReducibleObservation[] {
  return steps.map((s, i) => {
    const target = i === 0 ? 'ghost' : `obs-${(s.target % i) + 1}`;
    return obs(
      i + 1,
      s.kind,
      s.kind === 'retraction' ? {} : s.fields,
      s.type,
      s.kind === 'retraction' || s.kind === 'correction' ? target : null,
      `agent-${s.agent}`,
    );
  });
}

const reduce = (log: readonly ReducibleObservation[], without?: ReadonlySet<string>) =>
  reduceEntity(REF, log, policyOf, without ? { without } : {});
/** The same log with one observation turned into a no-op (an empty assertion): "the log without X", numbering kept. */
const withoutObs = (log: readonly ReducibleObservation[], id: string) =>
  log.map((o) => (o.id === id ? { ...o, kind: 'assertion' as const, fields: {}, targetId: null } : o));
const retractionOf = (log: readonly ReducibleObservation[], target: string, agent = 'cairn') =>
  obs(log.length + 1, 'retraction', {}, 't', target, agent);
const roundTrip = (s: EntityState): EntityState => JSON.parse(JSON.stringify(s)) as EntityState;

// ---------------------------------------------------------------------------------------------
// The brute-force model, from the laws (single type `t`: one policy per field).

function withdrawnModel(
  log: readonly ReducibleObservation[],
  without: ReadonlySet<string> = new Set(),
): Set<string> {
  const byId = new Map(log.map((o) => [o.id, o]));
  const memo = new Map<string, boolean>();
  // X is withdrawn when some later, live retraction names it (the definition, recursively).
  const withdrawn = (o: ReducibleObservation): boolean => {
    if (without.has(o.id)) return true;
    const known = memo.get(o.id);
    if (known !== undefined) return known;
    const result = log.some(
      (r) =>
        r.kind === 'retraction' && r.targetId === o.id && r.entityVersion > o.entityVersion && !withdrawn(r),
    );
    memo.set(o.id, result);
    return result;
  };
  return new Set([...byId.values()].filter(withdrawn).map((o) => o.id));
}

interface ModelField {
  value: Json;
  winner: string;
  corrected: boolean;
  elements?: Record<string, { first: string; count: number }>;
}

function modelFields(
  log: readonly ReducibleObservation[],
  without?: ReadonlySet<string>,
): Record<string, ModelField> {
  const dead = withdrawnModel(log, without);
  const live = log.filter((o) => o.kind !== 'retraction' && !dead.has(o.id));
  const out: Record<string, ModelField> = {};
  for (const field of Object.keys(T)) {
    const writes = live.filter((o) => o.fields[field] !== undefined);
    if (writes.length === 0) continue;
    const policy = T[field]!;
    const c = writes.map((o) => o.kind).lastIndexOf('correction');
    // Corrections pin: the last correction is the value, whatever came after it.
    if (c >= 0) {
      out[field] = { ...asPolicy(policy, [writes[c]!], field), corrected: true };
      continue;
    }
    // Explicit null clears: only what came after the last null counts.
    const n = writes.map((o) => o.fields[field]).lastIndexOf(null);
    const since = writes.slice(n + 1);
    out[field] =
      since.length === 0
        ? { value: null, winner: writes[n]!.id, corrected: false }
        : { ...asPolicy(policy, since, field), corrected: false };
  }
  return out;
}

function asPolicy(
  policy: FieldPolicy,
  writes: readonly ReducibleObservation[],
  field: string,
): Omit<ModelField, 'corrected'> {
  const values = writes.map((o) => o.fields[field] as Json);
  switch (policy) {
    case 'last-writer-wins':
    case 'reject-on-conflict':
      return { value: values.at(-1)!, winner: writes.at(-1)!.id };
    case 'first-writer-wins':
      return { value: values[0]!, winner: writes[0]!.id };
    case 'max':
    case 'min': {
      if (values[0] === null) return { value: null, winner: writes[0]!.id }; // a correction to null
      const nums = values as number[];
      const best = policy === 'max' ? Math.max(...nums) : Math.min(...nums);
      return { value: best, winner: writes[nums.indexOf(best)]!.id };
    }
    case 'set-union': {
      if (values.length === 1 && values[0] === null) return { value: null, winner: writes[0]!.id };
      const elements: Record<string, { first: string; count: number; el: Json }> = {};
      writes.forEach((o, i) => {
        const v = values[i]!;
        const els = new Map(
          (Array.isArray(v) ? v : [v]).filter((el) => el !== null).map((el) => [canonicalJson(el), el]),
        );
        for (const [key, el] of els)
          elements[key] = { first: elements[key]?.first ?? o.id, count: (elements[key]?.count ?? 0) + 1, el };
      });
      const keys = Object.keys(elements).sort();
      return {
        value: keys.map((k) => elements[k]!.el),
        winner: writes.at(-1)!.id,
        elements: Object.fromEntries(
          keys.map((k) => [k, { first: elements[k]!.first, count: elements[k]!.count }]),
        ),
      };
    }
  }
}

function projected(state: EntityState): Record<string, ModelField> {
  const out: Record<string, ModelField> = {};
  for (const [name, f] of Object.entries<FieldState>(state.fields)) {
    const m: ModelField = { value: f.value as Json, winner: f.winner.observationId, corrected: f.corrected };
    out[name] = m;
    if (f.contributors)
      m.elements = Object.fromEntries(
        Object.entries(f.contributors).map(([k, s]) => [k, { first: s.first.observationId, count: s.count }]),
      );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

const typedLog = logArb({ typed: true, types: ['t'] });
const mixedLog = logArb({ typed: false, types: ['t', 'u'] });
const RUNS = { numRuns: 300 };

describe('laws: the reducer equals the brute-force model', () => {
  it('value, winner, pin and set elements of every field, over logs with retractions of retractions, corrections and nulls', () => {
    fc.assert(
      fc.property(typedLog, (log) => {
        expect(projected(reduce(log))).toStrictEqual(modelFields(log));
      }),
      RUNS,
    );
  });

  it('at every version (state as of v is the fold of 1..v)', () => {
    fc.assert(
      fc.property(typedLog, (log) => {
        for (let v = 0; v <= log.length; v++)
          expect(projected(reduceEntity(REF, log, policyOf, { upToVersion: v }))).toStrictEqual(
            modelFields(log.slice(0, v)),
          );
      }),
      { numRuns: 100 },
    );
  });

  it('with observations excluded by the caller (taint-excluding reads)', () => {
    fc.assert(
      fc.property(typedLog, fc.array(fc.nat()), (log, picks) => {
        const without = new Set(picks.filter(() => log.length > 0).map((p) => log[p % log.length]!.id));
        expect(projected(reduce(log, without))).toStrictEqual(modelFields(log, without));
      }),
      RUNS,
    );
  });
});

describe('laws: retraction is exclusion', () => {
  const logAndPick = (arb: fc.Arbitrary<ReducibleObservation[]>) =>
    arb
      .filter((l) => l.length > 0)
      .chain((log) => fc.tuple(fc.constant(log), fc.nat({ max: log.length - 1 })));

  it('the state with X retracted equals the state without X (fields, winners with their own provenance, contested), under every policy', () => {
    fc.assert(
      fc.property(logAndPick(mixedLog), ([log, i]) => {
        const x = log[i]!;
        const retracted = reduce([...log, retractionOf(log, x.id)]);
        const withoutX = reduce(withoutObs(log, x.id));
        expect(retracted.fields).toStrictEqual(withoutX.fields);
      }),
      RUNS,
    );
  });

  it('retracting the retraction restores X (the lift of a quarantine), and every view before it', () => {
    fc.assert(
      fc.property(logAndPick(mixedLog), ([log, i]) => {
        const r1 = retractionOf(log, log[i]!.id);
        const r2 = retractionOf([...log, r1], r1.id);
        expect(reduce([...log, r1, r2]).fields).toStrictEqual(reduce(log).fields);
      }),
      RUNS,
    );
  });

  it('excluding observations equals turning them into no-ops', () => {
    fc.assert(
      fc.property(logAndPick(mixedLog), ([log, i]) => {
        const id = log[i]!.id;
        expect(reduce(log, new Set([id])).fields).toStrictEqual(reduce(withoutObs(log, id)).fields);
      }),
      RUNS,
    );
  });

  it('a retracted observation leaves no trace in any field, contested values included', () => {
    fc.assert(
      fc.property(mixedLog, (log) => {
        const s = reduce(log);
        const dead = withdrawnModel(log);
        for (const f of Object.values(s.fields)) {
          expect(dead.has(f.winner.observationId)).toBe(false);
          for (const c of f.contested) expect(dead.has(c.source.observationId)).toBe(false);
          for (const e of Object.values(f.contributors ?? {}))
            expect(dead.has(e.first.observationId)).toBe(false);
        }
        expect(new Set(Object.keys(s.retracted))).toStrictEqual(dead);
      }),
      RUNS,
    );
  });
});

describe('laws: corrections pin; explicit null clears; a missing key takes no part', () => {
  it('a correction followed by an earlier-observed ordinary write keeps the correction; the write is contested', () => {
    const s = reduce([
      obs(1, 'assertion', { a: 'Alpha' }),
      obs(2, 'correction', { a: 'Gamma' }, 't', 'obs-1'),
      obs(3, 'assertion', { a: 'Delta' }),
    ]);
    expect(s.fields.a).toMatchObject({ value: 'Gamma', corrected: true, winner: { observationId: 'obs-2' } });
    expect(s.fields.a?.contested.at(-1)).toMatchObject({ value: 'Delta', reason: 'pinned by correction' });
  });

  it('retracting the correction refolds the field from the other writes', () => {
    const log = [
      obs(1, 'assertion', { a: 'Alpha', c: 3 }),
      obs(2, 'correction', { a: 'Gamma', c: 1 }, 't', 'obs-1'),
      obs(3, 'assertion', { a: 'Delta', c: 7 }),
    ];
    const s = reduce([...log, retractionOf(log, 'obs-2')]);
    expect([s.fields.a?.value, s.fields.a?.winner.observationId, s.fields.c?.value]).toStrictEqual([
      'Delta',
      'obs-3',
      7,
    ]);
  });

  it('max/min: null clears and a later value wins; set-union: null clears the set and is never an element', () => {
    expect(
      reduce([obs(1, 'assertion', { c: 9 }), obs(2, 'assertion', { c: null }), obs(3, 'assertion', { c: 7 })])
        .fields.c,
    ).toMatchObject({ value: 7, winner: { observationId: 'obs-3' } });
    expect(reduce([obs(1, 'assertion', { d: 1 }), obs(2, 'assertion', { d: null })]).fields.d).toMatchObject({
      value: null,
      winner: { observationId: 'obs-2' },
    });
    const set = reduce([obs(1, 'assertion', { e: ['a', 'b'] }), obs(2, 'assertion', { e: null })]);
    expect(set.fields.e?.value).toBeNull();
    expect(set.fields.e?.contributors).toBeUndefined();
    expect(
      reduce([
        obs(1, 'assertion', { e: ['a', 'b'] }),
        obs(2, 'assertion', { e: null }),
        obs(3, 'assertion', { e: ['c', null] }),
      ]).fields.e?.value,
    ).toStrictEqual(['c']);
  });

  it('a key that is absent (or undefined) takes no part under any policy', () => {
    fc.assert(
      fc.property(mixedLog, fc.nat(), (log, n) => {
        if (log.length === 0) return;
        const i = n % log.length;
        const o = log[i]!;
        const padded = log.map((x, j) =>
          j === i ? { ...o, fields: { ...o.fields, zz: undefined } as unknown as Record<string, Json> } : x,
        );
        const s = reduce(padded);
        expect(s).toStrictEqual(reduce(log));
        expect(Object.hasOwn(s.fields, 'zz')).toBe(false);
      }),
      RUNS,
    );
  });
});

describe('laws: order independence where the policy commutes', () => {
  it('max, min and set-union values (and element counts) do not depend on the order of the writes', () => {
    const writes = fc.array(
      fc.record(
        {
          c: fc.integer({ min: -9, max: 9 }),
          d: fc.integer({ min: -9, max: 9 }),
          e: fc.array(fc.constantFrom('p', 'q', 'r'), { maxLength: 3 }),
        },
        { requiredKeys: [] },
      ),
      { maxLength: 20 },
    );
    fc.assert(
      fc.property(
        writes.chain((w) =>
          fc.tuple(fc.constant(w), fc.shuffledSubarray(w, { minLength: w.length, maxLength: w.length })),
        ),
        ([w, shuffled]) => {
          const asLog = (list: typeof w) =>
            list.map((f, i) => obs(i + 1, 'assertion', f as Record<string, Json>));
          const one = reduce(asLog(w));
          const two = reduce(asLog(shuffled));
          for (const f of ['c', 'd', 'e']) expect(two.fields[f]?.value).toStrictEqual(one.fields[f]?.value);
          const counts = (s: EntityState) =>
            Object.fromEntries(Object.entries(s.fields.e?.contributors ?? {}).map(([k, v]) => [k, v.count]));
          expect(counts(two)).toStrictEqual(counts(one));
        },
      ),
      RUNS,
    );
  });
});

/** The read path's choice of a start, over a pure log (src/store/observations/read.ts does the same with SQL). */
function readWithSnapshots(
  log: readonly ReducibleObservation[],
  snapshots: ReadonlyMap<number, EntityState>,
  v: number,
): EntityState {
  const versionOf = new Map(log.map((o) => [o.id, o.entityVersion]));
  const links: RetractionLink[] = log
    .filter((o) => o.kind === 'retraction')
    .map((o) => ({
      id: o.id,
      entityVersion: o.entityVersion,
      targetId: o.targetId,
      targetVersion: o.targetId === null ? null : (versionOf.get(o.targetId) ?? null),
    }));
  const below = (max: number) => [...snapshots.keys()].filter((k) => k <= max).sort((a, b) => b - a)[0];
  let start = below(v);
  for (;;) {
    const base = start === undefined ? emptyEntityState(REF) : roundTrip(snapshots.get(start)!);
    const window = links.filter((l) => l.entityVersion > base.version && l.entityVersion <= v);
    const withdrawals = withdrawalsIn(window, base.version);
    if (withdrawals.reachesBelow === undefined)
      return applyObservations(base, log.slice(base.version, v), policyOf, { withdrawals });
    start = below(withdrawals.reachesBelow - 1);
  }
}

describe('laws: snapshot-based reads equal full re-reduction at every version', () => {
  it('whatever snapshots exist, including ones a later retraction reaches into', () => {
    fc.assert(
      fc.property(mixedLog, fc.array(fc.nat()), (log, picks) => {
        const snapshots = new Map<number, EntityState>();
        for (const p of picks) {
          const k = p % (log.length + 1);
          if (k > 0) snapshots.set(k, reduceEntity(REF, log, policyOf, { upToVersion: k }));
        }
        for (let v = 0; v <= log.length; v++)
          expect(readWithSnapshots(log, snapshots, v)).toStrictEqual(
            reduceEntity(REF, log, policyOf, { upToVersion: v }),
          );
      }),
      { numRuns: 150 },
    );
  });
});

describe('laws: set-union state is bounded, retraction stays exact', () => {
  const contributions = (n: number) =>
    Array.from({ length: n }, (_, i) =>
      obs(
        i + 1,
        'assertion',
        { e: ['p', 'q'] },
        't',
        null,
        'agent-1',
        `obs-${String(i + 1).padStart(6, '0')}`,
      ),
    );

  it('the state does not grow with the number of contributions of the same elements', () => {
    const size = (n: number) => JSON.stringify(reduce(contributions(n))).length;
    // Only numbers' digits grow (counts, the winner's version): a list of contributors would add ~200 bytes each.
    expect(size(2000) - size(10)).toBeLessThanOrEqual(10);
  });

  it('retracting one contribution decrements its elements; retracting the first moves `first` to the next', () => {
    const log = contributions(50);
    const one = reduce([...log, retractionOf(log, 'obs-000007')]);
    expect(one.fields.e?.contributors?.['"p"']?.count).toBe(49);
    const first = reduce([...log, retractionOf(log, 'obs-000001')]);
    expect(first.fields.e?.contributors?.['"q"']).toMatchObject({
      first: { observationId: 'obs-000002' },
      count: 49,
    });
  });
});
