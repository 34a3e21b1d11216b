/**
 * The append path's hand-written fast paths (src/store/observations/validate.ts, append.ts)
 * against what they stand in for, as properties: the context and entity-reference checks never
 * accept what the zod schemas refuse (and accept the common valid input, so the fast path is
 * taken), the batch's array literals are byte for byte what pg makes of the arrays, and zod
 * answers the same for the fields' shielded copy as for a null-prototype copy.
 */
import fc from 'fast-check';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { entityRefSchema } from '../../src/shared/observation';
import { arrayLiteral, textArrayLiteral } from '../../src/store/arrayLiteral';
import { APPEND_LIMITS } from '../../src/store/observations/types';
import {
  contextSchema,
  isPlainValidContext,
  isValidEntityRef,
  shieldedCopy,
} from '../../src/store/observations/validate';

/** pg's own conversion of a parameter (not in its type declarations). */
const prepareValue = (pg as unknown as { utils: { prepareValue: (v: unknown) => unknown } }).utils
  .prepareValue;

const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({
    unit: fc.constantFrom('"', '\\', ',', '{', '}', ' ', 'a', '\n', 'é', '\u0000', '\u001f'),
    maxLength: 12,
  }),
  fc.constantFrom(
    '',
    'NULL',
    'null',
    '"',
    '\\',
    '\\"',
    '{}',
    'a,b',
    'x'.repeat(APPEND_LIMITS.maxKeyLength + 1),
  ),
);

const isoTimes = fc.oneof(
  fc
    .date({ min: new Date('1900-01-01'), max: new Date('2400-01-01'), noInvalidDate: true })
    .map((d) => d.toISOString()),
  fc
    .tuple(
      fc.integer({ min: 0, max: 9999 }),
      fc.integer({ min: 0, max: 13 }),
      fc.integer({ min: 0, max: 32 }),
      fc.integer({ min: 0, max: 25 }),
      fc.integer({ min: 0, max: 61 }),
      fc.constantFrom('', '.5', '.123456', '.', 'Z'),
      fc.constantFrom('Z', '+02:00', '-23:59', '+24:00', '', 'z', '+0200'),
    )
    .map(([y, mo, d, h, mi, frac, zone]) => {
      const p = (n: number, w = 2) => String(n).padStart(w, '0');
      return `${p(y, 4)}-${p(mo)}-${p(d)}T${p(h)}:${p(mi)}:${p(mi)}${frac}${zone}`;
    }),
  anyText,
);

const provenanceFields = {
  taskKey: anyText,
  workflowId: anyText,
  runId: anyText,
  activityId: anyText,
  attempt: fc.oneof(
    fc.integer({ min: -2, max: 5 }),
    fc.constantFrom(2_147_483_647, 2_147_483_648, 1.5, NaN, '1'),
  ),
  agentId: anyText,
  role: anyText,
};
/** Every key (mostly accepted) or any subset plus an unknown key (refused). */
const provenance = fc.oneof(
  { weight: 4, arbitrary: fc.record(provenanceFields) },
  fc.record({ ...provenanceFields, extra: fc.constant('x') }, { requiredKeys: [] }),
);

/** An object literal's copy (fast-check's records have no prototype). */
const plain = (v: unknown): unknown =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === null
    ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]))
    : v;

const contexts = fc.oneof(
  { weight: 4, arbitrary: fc.record({ provenance, idempotencyPrefix: anyText, observedAt: isoTimes }) },
  fc.record({ provenance, idempotencyPrefix: anyText, observedAt: isoTimes }, { requiredKeys: [] }),
  fc.record({ provenance, idempotencyPrefix: anyText, observedAt: isoTimes, more: fc.constant(1) }),
  fc.anything(),
);

const validContext = fc.record({
  provenance: fc.record({
    taskKey: fc.string({ maxLength: 20 }),
    workflowId: fc.string({ maxLength: 20 }),
    runId: fc.string({ maxLength: 20 }),
    activityId: fc.string({ maxLength: 20 }),
    attempt: fc.integer({ min: 0, max: 2_147_483_647 }),
    agentId: fc.string({ maxLength: 20 }),
    role: fc.string({ maxLength: 20 }),
  }),
  idempotencyPrefix: fc.string({ minLength: 1, maxLength: 40 }),
  observedAt: fc
    .date({ min: new Date('1970-01-01'), max: new Date('2200-01-01'), noInvalidDate: true })
    .map((d) => d.toISOString()),
});

describe('append validation fast paths', () => {
  it('isPlainValidContext accepts only contexts contextSchema accepts unchanged', () => {
    let taken = 0;
    fc.assert(
      fc.property(contexts.map(plain), (ctx) => {
        if (!isPlainValidContext(ctx)) return;
        taken++;
        const parsed = contextSchema.safeParse(ctx);
        expect(parsed.success).toBe(true);
        expect(parsed.data).toStrictEqual(ctx);
      }),
      { numRuns: 3000 },
    );
    expect(taken).toBeGreaterThan(20);
  });

  it('isPlainValidContext accepts ordinary valid contexts (the fast path is taken)', () => {
    fc.assert(
      // fast-check's records have no prototype; a caller's object literal has Object.prototype.
      fc.property(
        validContext.map((c) => ({ ...c, provenance: { ...c.provenance } })),
        (ctx) => {
          expect(contextSchema.safeParse(ctx).success).toBe(true);
          expect(isPlainValidContext(ctx)).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('isPlainValidContext and contextSchema agree on the observedAt timestamp', () => {
    const base = {
      provenance: {
        taskKey: '',
        workflowId: 'w',
        runId: '',
        activityId: 'a',
        attempt: 1,
        agentId: 'x',
        role: 'r',
      },
      idempotencyPrefix: 'p',
    };
    fc.assert(
      fc.property(isoTimes, (observedAt) => {
        const ctx = { ...base, observedAt };
        expect(isPlainValidContext(ctx)).toBe(contextSchema.safeParse(ctx).success);
      }),
      { numRuns: 3000 },
    );
  });

  it('isValidEntityRef answers what entityRefSchema answers (ids of up to 256 UTF-16 units)', () => {
    const types = fc.oneof(
      anyText,
      fc.stringMatching(/^[a-z][a-z0-9_.-]{0,70}$/),
      fc.constantFrom('doc', 'Doc', 'a'.repeat(63), 'a'.repeat(64), '1doc', 'doc type'),
    );
    const ids = fc.oneof(
      anyText,
      fc.string({ unit: 'binary', minLength: 250, maxLength: 260 }),
      fc.constantFrom('a'.repeat(256), 'a'.repeat(257), '\u{1F600}'.repeat(128), 'a\tb', '\u007f'),
    );
    fc.assert(
      fc.property(types, ids, (entityType, entityId) => {
        const accepted = entityRefSchema.safeParse({ entityType, entityId }).success;
        // zod counts a long string's length in code points; the fast check counts UTF-16 units
        // (never fewer), so it may only send more ids through the schema, never fewer.
        if (entityId.length <= 256) expect(isValidEntityRef(entityType, entityId)).toBe(accepted);
        else if (isValidEntityRef(entityType, entityId)) expect(accepted).toBe(true);
      }),
      { numRuns: 5000 },
    );
  });

  it('arrayLiteral and textArrayLiteral are byte for byte the literal pg makes of the array', () => {
    const element = fc.oneof(
      anyText,
      fc.string({ unit: 'grapheme', maxLength: 20 }),
      fc.integer(),
      fc.constant(null),
      fc.constantFrom('{"a":"b\\\\c"}', '{}', 'task'),
    );
    fc.assert(
      fc.property(fc.array(element, { maxLength: 30 }), (values) => {
        expect(arrayLiteral(values, (v) => v)).toBe(prepareValue(values));
      }),
      { numRuns: 3000 },
    );
    // Runs of equal values (a batch's type, kind, scope) reuse the escaped text.
    const runs = fc.array(fc.tuple(element, fc.integer({ min: 1, max: 5 })), { maxLength: 10 });
    fc.assert(
      fc.property(runs, (r) => {
        const values = r.flatMap(([v, n]) => Array<typeof v>(n).fill(v));
        expect(arrayLiteral(values, (v) => v)).toBe(prepareValue(values));
      }),
      { numRuns: 1000 },
    );
    // The text[] form (read-set field lists, nextFree's candidates) is the same literal.
    fc.assert(
      fc.property(fc.array(anyText, { maxLength: 30 }), (values) => {
        expect(textArrayLiteral(values)).toBe(prepareValue(values));
      }),
      { numRuns: 1000 },
    );
  });

  it('zod answers the same for the shielded copy as for a null-prototype copy of the fields', () => {
    // Declared keys that Object.prototype also answers, with and without a value.
    const schema = z
      .object({
        constructor: z.string().optional(),
        toString: z.number(),
        label: z.string(),
        valueOf: z.array(z.string()).optional(),
        __proto__: z.string().optional(),
      })
      .strict();
    const partial = schema.partial();
    const key = fc.constantFrom(
      'constructor',
      'toString',
      'label',
      'valueOf',
      'hasOwnProperty',
      'x',
      '__proto__',
    );
    const value = fc.oneof(
      fc.string({ maxLength: 3 }),
      fc.integer(),
      fc.array(fc.string({ maxLength: 2 }), { maxLength: 2 }),
      fc.constant(undefined),
    );
    const fields = fc.array(fc.tuple(key, value), { maxLength: 6 }).map((entries) => {
      const o: Record<string, unknown> = {};
      for (const [k, v] of entries)
        Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
      return o;
    });
    fc.assert(
      fc.property(fields, (raw) => {
        for (const s of [schema, partial]) {
          const shielded = s.safeParse(shieldedCopy(raw));
          const nullProto = s.safeParse(Object.assign(Object.create(null) as Record<string, unknown>, raw));
          expect(shielded.success).toBe(nullProto.success);
          if (nullProto.success) expect(shielded.data).toStrictEqual(nullProto.data);
          else expect(shielded.error?.issues).toStrictEqual(nullProto.error.issues);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
