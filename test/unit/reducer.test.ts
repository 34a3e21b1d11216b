import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { z } from 'zod';
import { canonicalJson, jsonEquals } from '../../src/shared/canonicalJson';
import { MAX_CONTESTED, type EntityState, type PolicyResolver } from '../../src/shared/entityState';
import type { FieldPolicy, Json, ObservationKind, ReducibleObservation } from '../../src/shared/observation';
import { ObservationTypeRegistry, defineObservationType } from '../../src/shared/observationTypes';
import {
  applyObservation,
  applyObservations,
  emptyEntityState,
  policyResolverFor,
  reduceEntity,
  RefoldRequiredError,
  UnknownFieldPolicyError,
} from '../../src/shared/reducer';

const REF = { entityType: 'company', entityId: 'acme' };
// Type `t` declares one field per policy; type `u` declares different policies for some of the
// same names (a later schema version, say), so random sequences also cross policy changes.
const T_POLICIES: Record<string, FieldPolicy> = {
  a: 'last-writer-wins',
  b: 'first-writer-wins',
  c: 'max',
  d: 'min',
  e: 'set-union',
  f: 'reject-on-conflict',
};
const U_POLICIES: Record<string, FieldPolicy> = {
  ...T_POLICIES,
  a: 'set-union',
  e: 'last-writer-wins',
  c: 'min',
  d: 'max',
};
const policyOf: PolicyResolver = (type, _v, field) => {
  const policies = type === 'u' ? U_POLICIES : T_POLICIES;
  return Object.hasOwn(policies, field) ? (policies[field] ?? 'last-writer-wins') : 'last-writer-wins';
};

interface ObsOpts {
  agent?: string;
  target?: string;
  type?: string;
}
function mk(
  version: number,
  kind: ObservationKind,
  fields: Record<string, Json>,
  o: ObsOpts = {},
): ReducibleObservation {
  const agentId = o.agent ?? 'agent-1';
  return {
    id: `obs-${version}`,
    entityVersion: version,
    type: o.type ?? 't',
    schemaVersion: 1,
    kind,
    fields,
    targetId: o.target ?? null,
    provenance: { agentId, role: 'researcher', taskKey: 'task-1' },
  };
}
/** Assertions writing one field, versions 1..n. */
const writes = (field: string, values: Json[]) =>
  values.map((v, i) => mk(i + 1, 'assertion', { [field]: v }, { agent: `agent-${i + 1}` }));
const reduce = (list: readonly ReducibleObservation[], upToVersion?: number) =>
  reduceEntity(REF, list, policyOf, upToVersion === undefined ? {} : { upToVersion });
const roundTrip = (s: EntityState): EntityState => JSON.parse(JSON.stringify(s)) as EntityState;
const ref = (version: number, agentId: string, kind: ObservationKind = 'assertion') => ({
  observationId: `obs-${version}`,
  entityVersion: version,
  agentId,
  role: 'researcher',
  kind,
});

describe('canonicalJson', () => {
  it('sorts keys at every depth, without whitespace, omitting undefined properties', () => {
    expect(canonicalJson({ b: [1, { y: 'é', x: null }], a: true })).toBe(
      '{"a":true,"b":[1,{"x":null,"y":"é"}]}',
    );
    expect(canonicalJson(JSON.parse('{"z":1,"a":{"d":2,"c":3}}'))).toBe(
      canonicalJson({ a: { c: 3, d: 2 }, z: 1 }),
    );
    expect(canonicalJson({ a: undefined, b: 1 } as unknown as Json)).toBe('{"b":1}');
    expect(jsonEquals({ p: 1, q: [2] }, { q: [2], p: 1 })).toBe(true);
  });

  it('rejects what JSON cannot store faithfully, naming the path', () => {
    expect(() => canonicalJson({ a: [1, NaN] })).toThrow(/\$\.a\[1\]/);
    for (const bad of [
      Infinity,
      undefined,
      10n,
      new Date(0),
      new Map(),
      new Array(2),
      [1, undefined],
      () => 1,
    ]) {
      expect(() => canonicalJson(bad as unknown as Json)).toThrow(TypeError);
    }
  });

  it('is independent of key order and stable under a JSON round trip', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const json = v as Json;
        const text = canonicalJson(json);
        expect(canonicalJson(JSON.parse(text))).toBe(text);
        expect(canonicalJson(JSON.parse(JSON.stringify(json)))).toBe(text);
      }),
    );
  });
});

describe('reducer: policies', () => {
  it('last-writer-wins replaces and contests the old value; an equal value credits the newer writer', () => {
    const s = reduce(writes('a', [1, 2, 2]));
    expect(s.version).toBe(3);
    expect(s.fields.a).toStrictEqual({
      value: 2,
      policy: 'last-writer-wins',
      winner: ref(3, 'agent-3'),
      corrected: false,
      contested: [{ value: 1, source: ref(1, 'agent-1'), reason: 'last-writer-wins' }],
    });
  });

  it('first-writer-wins keeps the first value and contests later different ones', () => {
    const s = reduce(writes('b', [1, 2, 1]));
    expect(s.fields.b?.value).toBe(1);
    expect(s.fields.b?.winner.observationId).toBe('obs-1');
    expect(s.fields.b?.contested).toStrictEqual([
      { value: 2, source: ref(2, 'agent-2'), reason: 'first-writer-wins' },
    ]);
  });

  it('max keeps the largest, contests losers and unorderable values; an equal value keeps the first winner', () => {
    const s = reduce(writes('c', [3, 5, 4, 'x', 5]));
    expect(s.fields.c?.value).toBe(5);
    expect(s.fields.c?.winner.observationId).toBe('obs-2');
    expect(s.fields.c?.contested.map((c) => [c.value, c.source.observationId, c.reason])).toStrictEqual([
      [3, 'obs-1', 'max'],
      [4, 'obs-3', 'max'],
      ['x', 'obs-4', 'max'],
    ]);
    expect(reduce(writes('c', ['apple', 'banana', 'avocado'])).fields.c?.value).toBe('banana');
  });

  it('min keeps the smallest', () => {
    const s = reduce(writes('d', [3, 1, 2]));
    expect(s.fields.d?.value).toBe(1);
    expect(s.fields.d?.contested.map((c) => c.value)).toStrictEqual([3, 2]);
  });

  it('set-union unites elements by canonical JSON, sorted, with first contributor and count, nothing contested', () => {
    const s = reduce(writes('e', [['y', 'x'], 'z', ['y'], [{ p: 1, q: 2 }], [{ q: 2, p: 1 }]]));
    expect(s.fields.e?.value).toStrictEqual(['x', 'y', 'z', { p: 1, q: 2 }]);
    expect(s.fields.e?.contributors).toStrictEqual({
      '"x"': { first: ref(1, 'agent-1'), count: 1 },
      '"y"': { first: ref(1, 'agent-1'), count: 2 },
      '"z"': { first: ref(2, 'agent-2'), count: 1 },
      '{"p":1,"q":2}': { first: ref(4, 'agent-4'), count: 2 },
    });
    expect(s.fields.e?.winner.observationId).toBe('obs-5');
    expect(s.fields.e?.contested).toStrictEqual([]);
  });

  it('reject-on-conflict folds like last-writer-wins with its own reason (the store refused stale writes)', () => {
    const s = reduce(writes('f', [1, 2]));
    expect(s.fields.f?.value).toBe(2);
    expect(s.fields.f?.contested).toStrictEqual([
      { value: 1, source: ref(1, 'agent-1'), reason: 'reject-on-conflict' },
    ]);
  });

  it('a change of policy between schema versions is folded deterministically', () => {
    const s = reduce([
      mk(1, 'assertion', { a: 3 }),
      mk(2, 'assertion', { a: ['p'] }, { type: 'u', agent: 'agent-2' }),
    ]);
    expect(s.fields.a?.value).toStrictEqual(['p', 3]);
    expect(s.fields.a?.contributors).toStrictEqual({
      '"p"': { first: ref(2, 'agent-2'), count: 1 },
      '3': { first: ref(1, 'agent-1'), count: 1 },
    });
  });

  it('bounds contested to the newest MAX_CONTESTED entries', () => {
    const values = Array.from({ length: 30 }, (_, i) => i + 1);
    const contested = reduce(writes('a', values)).fields.a?.contested ?? [];
    expect(contested).toHaveLength(MAX_CONTESTED);
    expect(contested.map((c) => c.value)).toStrictEqual(values.slice(29 - MAX_CONTESTED, 29));
  });

  it('treats field names as data (constructor, __proto__, toString) and ignores undefined values', () => {
    const fields = JSON.parse('{"__proto__": 1, "constructor": 2, "toString": 3}') as Record<string, Json>;
    const s = reduce([
      mk(1, 'assertion', fields),
      mk(2, 'assertion', { constructor: 4, b: undefined } as unknown as Record<string, Json>),
    ]);
    expect(Object.keys(s.fields).sort()).toStrictEqual(['__proto__', 'constructor', 'toString']);
    expect(Object.getPrototypeOf(s.fields)).toBe(Object.prototype);
    // toEqual, not toStrictEqual: the latter compares `.constructor`, which here is a field.
    expect(roundTrip(s)).toEqual(s);
    const constructorKey: string = 'constructor';
    expect(s.fields[constructorKey]?.value).toBe(4);
  });

  it('does not depend on the key order the observation fields come back in (jsonb reorders)', () => {
    const one = reduce([mk(1, 'assertion', { b: 1, a: 2, e: [{ y: 1, x: 2 }] })]);
    const two = reduce([mk(1, 'assertion', { e: [{ x: 2, y: 1 }], a: 2, b: 1 })]);
    expect(one).toStrictEqual(two);
    expect(Object.keys(one.fields)).toStrictEqual(Object.keys(two.fields));
    expect(canonicalJson(one as unknown as Json)).toBe(canonicalJson(two as unknown as Json));
  });

  it('uses a registry through policyResolverFor', () => {
    const t = defineObservationType({
      name: 'company.profile',
      version: 1,
      entity: 'company',
      fields: { tags: z.array(z.string()) },
      policies: { tags: 'set-union' },
    });
    const resolve = policyResolverFor(new ObservationTypeRegistry([t]));
    const obs = [1, 2].map((v) => ({ ...mk(v, 'assertion', { tags: [`t${v}`] }), type: 'company.profile' }));
    expect(reduceEntity(REF, obs, resolve).fields.tags?.value).toStrictEqual(['t1', 't2']);
  });
});

describe('reducer: corrections and retractions', () => {
  it('a correction beats any policy, is marked, and pins the field against later ordinary writes', () => {
    const s = reduce([
      mk(1, 'assertion', { a: 1, b: 1, c: 10 }),
      mk(2, 'correction', { a: 9, b: 2, c: 3 }, { target: 'obs-1' }),
    ]);
    for (const [name, value, old] of [
      ['a', 9, 1],
      ['b', 2, 1],
      ['c', 3, 10],
    ] as const) {
      expect(s.fields[name]).toMatchObject({
        value,
        corrected: true,
        winner: { observationId: 'obs-2', kind: 'correction' },
      });
      expect(s.fields[name]?.contested).toStrictEqual([
        { value: old, source: ref(1, 'agent-1'), reason: 'corrected' },
      ]);
    }
    const later = applyObservation(s, mk(3, 'assertion', { a: 4, b: 5, c: 4 }), policyOf);
    expect([later.fields.a?.value, later.fields.b?.value, later.fields.c?.value]).toStrictEqual([9, 2, 3]);
    expect(later.fields.a?.contested.at(-1)).toStrictEqual({
      value: 4,
      source: ref(3, 'agent-1'),
      reason: 'pinned by correction',
    });
    const again = applyObservation(later, mk(4, 'correction', { a: 7 }, { target: 'obs-2' }), policyOf);
    expect(again.fields.a).toMatchObject({ value: 7, corrected: true, winner: { observationId: 'obs-4' } });
  });

  it('a correction replaces a whole set, keeps the field policy, and pins it', () => {
    const s = reduce([
      mk(1, 'assertion', { e: ['x', 'y'] }),
      mk(2, 'correction', { e: ['z'] }, { type: 'u' }),
      mk(3, 'assertion', { e: 'w' }),
    ]);
    expect(s.fields.e?.policy).toBe('set-union');
    expect(s.fields.e?.value).toStrictEqual(['z']);
    expect(s.fields.e?.contributors).toStrictEqual({
      '"z"': { first: ref(2, 'agent-1', 'correction'), count: 1 },
    });
    expect(s.fields.e?.contested).toStrictEqual([
      { value: ['x', 'y'], source: ref(1, 'agent-1'), reason: 'corrected' },
      { value: 'w', source: ref(3, 'agent-1'), reason: 'pinned by correction' },
    ]);
  });

  it('retracting a winner falls back to the previous winner, with its own provenance', () => {
    const s = reduce([
      mk(1, 'assertion', { a: 1, b: 1 }),
      mk(2, 'assertion', { a: 2, b: 2 }, { agent: 'agent-2' }),
      mk(3, 'retraction', { reason: 'bad source' }, { target: 'obs-2' }),
    ]);
    expect(s.fields.a).toStrictEqual({
      value: 1,
      policy: 'last-writer-wins',
      winner: ref(1, 'agent-1'),
      corrected: false,
      contested: [],
    });
    expect(s.fields.b).toMatchObject({ value: 1, contested: [] });
    expect(s.retracted).toStrictEqual({ 'obs-2': 'obs-3' });
    expect(roundTrip(s)).toStrictEqual(s);
  });

  it('retracting a set contributor removes exactly its contribution', () => {
    const base = [
      mk(1, 'assertion', { e: ['x'] }),
      mk(2, 'assertion', { e: ['x', 'y'] }),
      mk(3, 'assertion', { e: ['z'] }),
    ];
    const s = reduce([...base, mk(4, 'retraction', {}, { target: 'obs-2' })]);
    expect(s.fields.e?.value).toStrictEqual(['x', 'z']);
    expect(s.fields.e?.contributors).toStrictEqual({
      '"x"': { first: ref(1, 'agent-1'), count: 1 },
      '"z"': { first: ref(3, 'agent-1'), count: 1 },
    });
    expect(s.fields.e?.winner.observationId).toBe('obs-3');
    const t = reduce([...base, mk(4, 'retraction', {}, { target: 'obs-1' })]);
    expect(t.fields.e?.contributors?.['"x"']).toStrictEqual({ first: ref(2, 'agent-1'), count: 1 });
  });

  it('retracting a retraction restores its target; a retraction without a target or of a ghost changes nothing', () => {
    const log = [
      mk(1, 'assertion', { a: 1 }),
      mk(2, 'assertion', { a: 2 }),
      mk(3, 'retraction', {}, { target: 'obs-2' }),
    ];
    const back = reduce([...log, mk(4, 'retraction', {}, { target: 'obs-3' })]);
    expect(back.fields).toStrictEqual(reduce(log.slice(0, 2)).fields);
    expect(back.retracted).toStrictEqual({ 'obs-3': 'obs-4' });
    const s = reduce(log);
    expect(reduce([...log, mk(4, 'retraction', {})])).toStrictEqual({ ...s, version: 4 });
    expect(reduce([...log, mk(4, 'retraction', {}, { target: 'ghost' })])).toStrictEqual({
      ...s,
      version: 4,
    });
    // A store bug could let a retraction name a later id: only earlier observations can be withdrawn.
    const early = reduce([mk(1, 'retraction', {}, { target: 'obs-2' }), mk(2, 'assertion', { a: 1 })]);
    expect(early.fields.a?.value).toBe(1);
  });

  it("continuing from a state below a retraction's target is refused (the read path refolds)", () => {
    const s = reduce([mk(1, 'assertion', { a: 1 }), mk(2, 'assertion', { a: 2 })]);
    expect(() => applyObservation(s, mk(3, 'retraction', {}, { target: 'obs-2' }), policyOf)).toThrow(
      RefoldRequiredError,
    );
  });
});

describe('reducer: broken input is loud', () => {
  it('detects gaps, duplicates, a wrong next version, and a bad upToVersion', () => {
    expect(() => reduce([mk(1, 'assertion', {}), mk(3, 'assertion', {})])).toThrow(
      /company\/acme: gap .* expected entity version 2, found 3/,
    );
    expect(() => reduce([mk(1, 'assertion', {}), mk(1, 'assertion', {})])).toThrow(/duplicate version/);
    expect(() => reduce([mk(2, 'assertion', {})])).toThrow(/expected entity version 1/);
    expect(() => reduce([mk(1, 'assertion', {}), { ...mk(2, 'assertion', {}), id: 'obs-1' }])).toThrow(
      /appears twice/,
    );
    expect(() => applyObservation(emptyEntityState(REF), mk(2, 'assertion', {}), policyOf)).toThrow(
      /expected 1 \(the fold must be gapless\)/,
    );
    expect(() => reduce([mk(1, 'assertion', {})], 2)).toThrow(/cannot reduce to version 2/);
    expect(() =>
      applyObservations(reduce([mk(1, 'assertion', {})]), [mk(1, 'assertion', {})], policyOf),
    ).toThrow(/expected entity version 2/);
  });

  it('rejects unknown kinds and a resolver that returns a non-policy', () => {
    expect(() => reduce([{ ...mk(1, 'assertion', {}), kind: 'rumour' as ObservationKind }])).toThrow(
      /unknown kind rumour/,
    );
    expect(() => reduceEntity(REF, [mk(1, 'assertion', { a: 1 })], () => 'newest' as FieldPolicy)).toThrow(
      /policy resolver returned newest/,
    );
    // Unknown type@version or field: a clear error, never a guessed last-writer-wins.
    expect(() => reduceEntity(REF, [mk(1, 'assertion', { a: 1 })], () => undefined)).toThrow(
      UnknownFieldPolicyError,
    );
    expect(() => reduceEntity(REF, [mk(1, 'assertion', { a: 1 })], () => undefined)).toThrow(
      /type t@1, whose policy for field "a" is not known/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Properties over random observation sequences.

interface Step {
  kind: ObservationKind;
  agent: number;
  type: 't' | 'u';
  fields: Record<string, Json>;
  target: number;
}
const anyValue: fc.Arbitrary<Json> = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom('x', 'y', 'z'),
  fc.array(fc.constantFrom<Json>('p', 'q', 'r', 1), { maxLength: 3 }),
  fc.constant(null),
  fc.boolean(),
  fc.record({ k: fc.integer({ min: 0, max: 1 }) }, { noNullPrototype: true }),
);
const small = fc.integer({ min: -20, max: 20 });
const typedFields = {
  a: fc.oneof(small, fc.constantFrom('x', 'y')),
  b: small,
  c: small,
  d: small,
  e: fc.oneof(fc.array(fc.constantFrom('p', 'q', 'r', 's'), { maxLength: 3 }), fc.constantFrom('p', 't')),
  f: small,
};
const anyFields = Object.fromEntries(Object.keys(typedFields).map((k) => [k, anyValue]));

function stepsArb(o: {
  typed: boolean;
  kinds: readonly ObservationKind[];
  types: readonly ('t' | 'u')[];
}): fc.Arbitrary<Step[]> {
  const fields = fc.record<Record<string, Json>>(o.typed ? typedFields : anyFields, { requiredKeys: [] });
  const step = fc.record({
    kind: fc.constantFrom(...o.kinds),
    agent: fc.integer({ min: 1, max: 3 }),
    type: fc.constantFrom(...o.types),
    fields,
    target: fc.nat(),
  });
  return fc.array(step, { maxLength: 40 });
}
const ALL_KINDS: ObservationKind[] = ['assertion', 'inference', 'decision', 'correction', 'retraction'];
const anySteps = stepsArb({ typed: false, kinds: ALL_KINDS, types: ['t', 'u'] });

function toObservations(steps: readonly Step[]): ReducibleObservation[] {
  return steps.map((s, i) => {
    // Retractions (and corrections) name an earlier observation; the very first names a ghost.
    const target = i === 0 ? 'ghost' : `obs-${(s.target % i) + 1}`;
    const fields = s.kind === 'retraction' ? { reason: 'withdrawn' } : s.fields;
    return {
      ...mk(i + 1, s.kind, fields, { agent: `agent-${s.agent}`, type: s.type }),
      targetId: s.kind === 'retraction' || s.kind === 'correction' ? target : null,
    };
  });
}

function deepFreeze<T>(value: T, seen = new Set<unknown>()): T {
  if (typeof value === 'object' && value !== null && !seen.has(value)) {
    seen.add(value);
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v, seen);
  }
  return value;
}

describe('reducer: properties', () => {
  it('(1) the result does not depend on input order', () => {
    const arb = anySteps
      .map(toObservations)
      .chain((list) =>
        fc.tuple(
          fc.constant(list),
          fc.shuffledSubarray(list, { minLength: list.length, maxLength: list.length }),
        ),
      );
    fc.assert(
      fc.property(arb, ([list, shuffled]) => {
        expect(reduce(shuffled)).toStrictEqual(reduce(list));
      }),
    );
  });

  it('(2) folding from a JSON round-tripped snapshot equals the full fold (refolding from below when a retraction reaches into it)', () => {
    fc.assert(
      fc.property(anySteps.map(toObservations), fc.nat(), (list, cut) => {
        const full = reduce(list);
        const k = cut % (list.length + 1);
        const snapshot = roundTrip(reduce(list.slice(0, k)));
        let s: EntityState;
        try {
          s = applyObservations(snapshot, list.slice(k), policyOf);
        } catch (err) {
          if (!(err instanceof RefoldRequiredError)) throw err;
          s = reduce(list);
        }
        expect(s).toStrictEqual(full);
      }),
    );
  });

  it('(3) state as of v is the fold of 1..v and does not change when observations are appended', () => {
    fc.assert(
      fc.property(anySteps.map(toObservations), fc.nat(), fc.nat(), (list, x, y) => {
        const k = x % (list.length + 1);
        const v = y % (k + 1);
        const prefix = reduce(list.slice(0, v));
        expect(prefix.version).toBe(v);
        expect(reduce(list.slice(0, k), v)).toStrictEqual(prefix);
        expect(reduce(list, v)).toStrictEqual(prefix);
      }),
    );
  });

  it('(4) a fold never mutates its input', () => {
    fc.assert(
      fc.property(anySteps.map(toObservations), fc.nat(), (list, cut) => {
        const frozen = deepFreeze(list.map((o) => ({ ...o })));
        const before = JSON.stringify(frozen);
        const k = cut % (frozen.length + 1);
        const prefix = deepFreeze(reduceEntity(REF, frozen.slice(0, k), policyOf));
        const prefixText = JSON.stringify(prefix);
        try {
          applyObservations(prefix, frozen.slice(k), policyOf);
        } catch (err) {
          if (!(err instanceof RefoldRequiredError)) throw err;
        }
        reduceEntity(REF, frozen, policyOf);
        expect(JSON.stringify(frozen)).toBe(before);
        expect(JSON.stringify(prefix)).toBe(prefixText);
      }),
    );
  });

  it('(7) structural invariants hold for every field', () => {
    fc.assert(
      fc.property(anySteps.map(toObservations), (list) => {
        for (const field of Object.values(reduce(list).fields)) {
          expect(field.contested.length).toBeLessThanOrEqual(MAX_CONTESTED);
          expect(field.corrected).toBe(field.winner.kind === 'correction');
          expect(field.value).not.toBeUndefined();
          if (field.policy !== 'set-union' || field.value === null) {
            expect(field.contributors).toBeUndefined();
            continue;
          }
          const keys = (field.value as Json[]).map((el) => canonicalJson(el));
          expect(keys).toStrictEqual([...new Set(keys)].sort());
          // Compared sorted: JS lists integer-like keys ("0", "1") first whatever the insertion order.
          expect(Object.keys(field.contributors ?? {}).sort()).toStrictEqual(keys);
          for (const source of Object.values(field.contributors ?? {}))
            expect(source.count).toBeGreaterThan(0);
        }
      }),
    );
  });
});
