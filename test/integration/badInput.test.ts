/**
 * Hostile and broken input. Every invalid item is refused before any SQL runs, with an error
 * naming the item's index and the field's path, and nothing is written; awkward but valid
 * content (SQL fragments, astral and combining characters) is stored and read back exactly.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { canonicalJson } from '../../src/shared/canonicalJson';
import {
  ObservationValidationError,
  PayloadTooLargeError,
  UnknownObservationTypeError,
} from '../../src/shared/errors';
import { defineObservationType, ObservationTypeRegistry } from '../../src/shared/observationTypes';
import {
  APPEND_LIMITS,
  appendObservations,
  type AppendContext,
  type AppendItem,
} from '../../src/store/observations/append';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { observationColumns, parseObservationRow } from '../../src/store/observations/rows';
import { testDatabase, type TestDatabase } from '../helpers/database';

const note = defineObservationType({
  name: 'doc.note',
  version: 1,
  entity: 'doc',
  fields: {
    title: z.string().min(1),
    pages: z.int().nonnegative().optional(),
    tags: z.array(z.string()).optional(),
    body: z.string().optional(),
    extra: z.unknown().optional(),
  },
});
const registry = new ObservationTypeRegistry([note]);

let db: TestDatabase;
let n = 0;
const ctx = (over: Partial<AppendContext['provenance']> = {}): AppendContext => ({
  provenance: {
    taskKey: 't',
    workflowId: 'wf',
    runId: 'r',
    activityId: 'a',
    attempt: 1,
    agentId: 'agent',
    role: 'writer',
    ...over,
  },
  idempotencyPrefix: `bad:${++n}`,
  observedAt: '2025-01-31T12:00:00Z',
});
const doc = (fields: Record<string, unknown>, extra: Partial<AppendItem> = {}): AppendItem => ({
  entityType: 'doc',
  entityId: 'd1',
  type: 'doc.note',
  fields,
  ...extra,
});

async function count(): Promise<number> {
  return (await db.pool.query<{ n: number }>('select count(*)::int as n from cairn.observations')).rows[0]!.n;
}

/** Appends `bad` as item [1] of a batch after a valid item, and returns the error. */
async function refusal(bad: unknown, context = ctx()): Promise<unknown> {
  const before = await count();
  const err = await appendObservations(
    db.pool,
    registry,
    [doc({ title: 'fine' }), bad as AppendItem],
    context,
  ).then(
    () => new Error('expected a refusal'),
    (e: unknown) => e,
  );
  expect(await count()).toBe(before);
  return err;
}

beforeAll(async () => {
  db = await testDatabase();
  await registerObservationTypes(db.pool, registry);
});

afterAll(async () => {
  await db?.drop();
});

describe('refused with index and path, nothing written', () => {
  it.each<[string, unknown, string, string | RegExp]>([
    [
      'a wrong type',
      doc({ title: 'x', pages: 'many' }),
      'fields.pages',
      'Invalid input: expected number, received string',
    ],
    [
      'a fraction for an int',
      doc({ title: 'x', pages: 1.5 }),
      'fields.pages',
      'Invalid input: expected int, received number',
    ],
    [
      'a missing required field',
      doc({ pages: 3 }),
      'fields.title',
      'Invalid input: expected string, received undefined',
    ],
    ['an undeclared field', doc({ title: 'x', author: 'me' }), 'fields.author', 'Unrecognized key: "author"'],
    [
      'a bad array element',
      doc({ title: 'x', tags: ['a', 7] }),
      'fields.tags[1]',
      'Invalid input: expected string, received number',
    ],
    [
      'fields that are not an object',
      doc([] as unknown as Record<string, unknown>),
      'fields',
      'Invalid input: expected record, received array',
    ],
    [
      'an unknown item property',
      { ...doc({ title: 'x' }), expected_version: 3 },
      'expected_version',
      'Unrecognized key: "expected_version"',
    ],
    [
      'an entity type of another type',
      doc({ title: 'x' }, { entityType: 'company' }),
      'entityType',
      'observation type doc.note@1 is about "doc" entities, not "company"',
    ],
    [
      'a malformed entity type',
      doc({ title: 'x' }, { entityType: 'Doc Type' }),
      'entityType',
      /^must be lower-case letters/,
    ],
    [
      'an empty entity id',
      doc({ title: 'x' }, { entityId: '' }),
      'entityId',
      'Too small: expected string to have >=1 characters',
    ],
    [
      'a control character in the entity id',
      doc({ title: 'x' }, { entityId: 'a\nb' }),
      'entityId',
      'must not contain control characters',
    ],
    [
      'a NUL in a field',
      doc({ title: 'nul\u0000here' }),
      'fields.title',
      'contains a NUL character (\\u0000), which Postgres cannot store',
    ],
    [
      'a bell in a nested string',
      doc({ title: 'x', tags: ['ok', 'ding\u0007'] }),
      'fields.tags[1]',
      /control character U\+0007/,
    ],
    [
      'an escape sequence in free-form JSON',
      doc({ title: 'x', extra: { deep: [{ s: '\u001b[31mred' }] } }),
      'fields.extra.deep[0].s',
      /control character U\+001B/,
    ],
    [
      'a control character in a property name',
      doc({ title: 'x', extra: { 'k\u0001': 1 } }),
      'fields.extra.k\u0001',
      /^property name contains the control character U\+0001/,
    ],
    [
      'an unpaired surrogate',
      doc({ title: 'broken \ud83d emoji' }),
      'fields.title',
      'contains an unpaired UTF-16 surrogate (malformed Unicode)',
    ],
    [
      'NaN in free-form JSON',
      doc({ title: 'x', extra: { v: NaN } }),
      'fields.extra.v',
      'NaN is not a JSON number',
    ],
    [
      'a Date in free-form JSON',
      doc({ title: 'x', extra: new Date(0) }),
      'fields.extra',
      'a Date is not a plain JSON object',
    ],
    [
      'a correction without a target',
      doc({ title: 'x' }, { kind: 'correction' }),
      'targetId',
      'a correction must name the observation it corrects',
    ],
    [
      'a target on an assertion',
      doc({ title: 'x' }, { targetId: '00000000-0000-4000-8000-000000000000' }),
      'targetId',
      'only corrections and retractions have a targetId, not a assertion',
    ],
    [
      'a malformed derivedFrom id',
      doc({ title: 'x' }, { derivedFrom: ['not-a-uuid'] }),
      'derivedFrom[0]',
      /Invalid GUID/i,
    ],
    ['a bad observedAt', doc({ title: 'x' }, { observedAt: 'yesterday' }), 'observedAt', /ISO 8601/],
    [
      'a NUL in the idempotency key',
      doc({ title: 'x' }, { idempotencyKey: 'k\u0000' }),
      'idempotencyKey',
      /NUL/,
    ],
    [
      'a negative expected version',
      doc({ title: 'x' }, { expectedVersion: -1 }),
      'expectedVersion',
      /expected number to be >=0/,
    ],
    ['not an object at all', 'garbage', '(item)', /expected object, received string/],
  ])('%s', async (_name, bad, path, problem) => {
    const err = await refusal(bad);
    expect(err).toBeInstanceOf(ObservationValidationError);
    const e = err as ObservationValidationError;
    expect({ index: e.index, path: e.path }).toEqual({ index: 1, path });
    if (typeof problem === 'string') expect(e.problem).toBe(problem);
    else expect(e.problem).toMatch(problem);
    expect(e.message).toBe(`observation [1] ${path}: ${e.problem}`);
  });

  it('an unknown type or version', async () => {
    expect(await refusal(doc({ title: 'x' }, { type: 'doc.unknown' }))).toMatchObject({
      name: 'UnknownObservationTypeError',
      index: 1,
      type: 'doc.unknown',
    });
    const err = await refusal(doc({ title: 'x' }, { schemaVersion: 2 }));
    expect(err).toBeInstanceOf(UnknownObservationTypeError);
    expect((err as Error).message).toBe('observation [1] type: unknown observation type "doc.note@2"');
  });

  it('an oversize payload', async () => {
    const chunk = 'x'.repeat(60_000);
    const err = await refusal(doc({ title: 'big', tags: [chunk, chunk, chunk, chunk, chunk] }));
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    expect(err).toMatchObject({ index: 1, limit: APPEND_LIMITS.maxFieldsBytes });
    expect((err as PayloadTooLargeError).bytes).toBeGreaterThan(APPEND_LIMITS.maxFieldsBytes);
  });

  it('a single string over the string limit', async () => {
    const err = await refusal(doc({ title: 'y'.repeat(APPEND_LIMITS.maxStringLength + 1) }));
    expect(err).toMatchObject({
      name: 'ObservationValidationError',
      index: 1,
      path: 'fields.title',
      problem: `string of ${APPEND_LIMITS.maxStringLength + 1} characters exceeds the limit of ${APPEND_LIMITS.maxStringLength}`,
    });
  });

  it('nesting deep enough to be a cycle', async () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const err = await refusal(doc({ title: 'x', extra: cyclic }));
    expect(err).toMatchObject({
      name: 'ObservationValidationError',
      index: 1,
      problem: `nested deeper than ${APPEND_LIMITS.maxDepth} levels (or cyclic)`,
    });
    expect((err as ObservationValidationError).path).toMatch(/^fields\.extra(\.self)+$/);
  });

  it('two items sharing an idempotency key', async () => {
    const before = await count();
    const err = await appendObservations(
      db.pool,
      registry,
      [doc({ title: 'a' }, { idempotencyKey: 'same' }), doc({ title: 'b' }, { idempotencyKey: 'same' })],
      ctx(),
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({
      name: 'ObservationValidationError',
      index: 1,
      path: 'idempotencyKey',
      problem: '"same" is also the key of observation [0]',
    });
    expect(await count()).toBe(before);
  });

  it('a batch over the size limit', async () => {
    const items = Array.from({ length: APPEND_LIMITS.maxBatch + 1 }, () => doc({ title: 'x' }));
    await expect(appendObservations(db.pool, registry, items, ctx())).rejects.toMatchObject({
      index: -1,
      path: 'items',
      problem: `a batch holds at most ${APPEND_LIMITS.maxBatch} observations, got ${APPEND_LIMITS.maxBatch + 1}`,
    });
  });

  it('bad provenance: a control character in the agent id, a fractional attempt', async () => {
    expect(await refusal(doc({ title: 'x' }), ctx({ agentId: 'agent\u0000' }))).toMatchObject({
      index: -1,
      path: 'context.provenance.agentId',
    });
    expect(await refusal(doc({ title: 'x' }), ctx({ attempt: 1.5 }))).toMatchObject({
      index: -1,
      path: 'context.provenance.attempt',
    });
  });
});

describe('awkward but valid content is stored exactly', () => {
  async function roundTrip(fields: Record<string, unknown>, entityId = 'd-valid') {
    const [out] = await appendObservations(db.pool, registry, [doc(fields, { entityId })], ctx());
    const { rows } = await db.pool.query(
      `select ${observationColumns()} from cairn.observations o where id = $1`,
      [out!.id],
    );
    return parseObservationRow(rows[0]);
  }

  it('SQL fragments are data, not code', async () => {
    const hostile = {
      title: `'); drop table cairn.observations; --`,
      body: `$$ language plpgsql $$; select pg_sleep(10); \\' \\\\ %s %I ${'${x}'}`,
      tags: [`" or 1=1 --`, `\\x00`, `{}`, `{"a":1}`, `NULL`, `'`],
    };
    const row = await roundTrip(hostile, `robert'); drop table students;--`);
    expect(row.fields).toEqual(hostile);
    expect(row.entityId).toBe(`robert'); drop table students;--`);
    expect(await db.pool.query(`select to_regclass('cairn.observations') is not null as ok`)).toMatchObject({
      rows: [{ ok: true }],
    });
  });

  it('astral characters, emoji sequences, combining marks, RTL and whitespace survive byte for byte', async () => {
    const text = {
      title: '𝕮𝖆𝖎𝖗𝖓 🧗‍♀️🏔️ 👩🏽‍💻 🇳🇿',
      body: 'e\u0301 vs \u00e9 — Ａ 한국어 עברית العربية\ttab\nnewline\r\n\u200b\u2028\u2029\ufeff',
      tags: ['\u{10FFFF}', '\u{1F600}'.repeat(1000), 'Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇'],
      extra: { '🔑': ['\ud83d\ude00'], 'e\u0301': 1, é: 2 },
    };
    const row = await roundTrip(text);
    expect(row.fields).toEqual(text);
    expect(canonicalJson(row.fields)).toBe(canonicalJson(text as never));
    // NFC and NFD spellings stayed distinct keys: nothing was normalized.
    expect(Object.keys(row.fields.extra as object).sort()).toEqual(['e\u0301', 'é', '🔑'].sort());
  });

  it('a payload just under the limit', async () => {
    const title = 'w'.repeat(APPEND_LIMITS.maxStringLength);
    const row = await roundTrip({
      title,
      tags: ['v'.repeat(60_000), 'u'.repeat(60_000), 't'.repeat(60_000)],
    });
    expect(row.fields.title).toBe(title);
  });

  it('law: whatever JSON is offered, it is either refused with nothing written or stored exactly', async () => {
    let stored = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.jsonValue({ maxDepth: 4 }),
        fc.string({ unit: 'binary', maxLength: 20 }),
        async (extra, title) => {
          const before = await count();
          try {
            const [out] = await appendObservations(
              db.pool,
              registry,
              [doc({ title, extra }, { entityId: 'd-law' })],
              ctx(),
            );
            const { rows } = await db.pool.query(`select fields from cairn.observations where id = $1`, [
              out!.id,
            ]);
            expect(canonicalJson(rows[0].fields)).toBe(canonicalJson({ title, extra } as never));
            stored++;
          } catch (err) {
            expect(err).toBeInstanceOf(ObservationValidationError);
            expect(await count()).toBe(before);
            refused++;
          }
        },
      ),
      { numRuns: 60 },
    );
    // Both outcomes happened (binary strings include control characters now and then).
    expect(stored).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });
});
