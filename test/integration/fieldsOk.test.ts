/**
 * Migration 018 compiles each registered type's field checks into cairn.fields_ok; rows it
 * passes skip cairn.fields_problem (009), the check that names problems. The law that makes the
 * shortcut safe: for every schema it compiles, the compiled expression is true exactly when
 * fields_problem finds no problem, whatever the fields and the kind. Checked here on generated
 * schemas (closed or open, required keys, type lists with "integer" and unknown names, enums)
 * and generated fields written as JSON text (so 2.0, 1e2 and -0 reach Postgres as written, and
 * nesting past the 32-level limit), and through real appends.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const KEYS = ['a', 'b', 'c', "d'q", 'e f', '$f$'];
const KINDS = ['assertion', 'inference', 'decision', 'correction', 'retraction'];
const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
const VALUES = [
  '1',
  '0',
  '-0',
  '1.5',
  '2.0',
  '1e2',
  '-3',
  '"s"',
  '"open"',
  '""',
  'true',
  'false',
  'null',
  '[]',
  '[1]',
  '{}',
  '{"x": 1}',
  '["open"]',
  deep(32), // 31 levels below the value, 32 below fields: refused
  deep(31), // allowed
  `{"x": ${deep(31)}}`,
];

const typeName = fc.constantFrom(
  'string',
  'number',
  'integer',
  'boolean',
  'null',
  'object',
  'array',
  'bogus',
);
const propSchema = fc.record(
  {
    type: fc.oneof(typeName, fc.uniqueArray(typeName, { maxLength: 3 })),
    enum: fc.uniqueArray(fc.constantFrom<unknown>(1, 2, 'open', 'new', null, true, [1], { x: 1 }), {
      maxLength: 3,
    }),
  },
  { requiredKeys: [] },
);
const schema = fc.record(
  {
    type: fc.constant('object'),
    properties: fc.dictionary(fc.constantFrom(...KEYS), propSchema, { maxKeys: 4 }),
    required: fc.uniqueArray(fc.constantFrom(...KEYS), { maxLength: 3 }),
    additionalProperties: fc.boolean(),
  },
  { requiredKeys: ['type'] },
);
const fieldsText = fc
  .uniqueArray(fc.tuple(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES)), {
    maxLength: 4,
    selector: (t) => t[0],
  })
  .map((entries) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}: ${v}`).join(', ')}}`);

async function verdicts(
  s: unknown,
  fields: string,
  kind: string,
): Promise<{ compiled: boolean | null; problem: string | null }> {
  const { rows } = await db.adminPool.query<{ expr: string | null; problem: string | null }>(
    'select cairn.fields_ok_expr($1::jsonb) as expr, cairn.fields_problem($2::jsonb, $3, $1::jsonb) as problem',
    [JSON.stringify(s), fields, kind],
  );
  const { expr, problem } = rows[0]!;
  if (expr === null) return { compiled: null, problem };
  const ok = await db.adminPool.query<{ ok: boolean }>(
    `select (${expr}) as ok from (select $1::jsonb as f, $2::text as p_kind) x`,
    [fields, kind],
  );
  return { compiled: ok.rows[0]!.ok, problem };
}

describe('compiled field checks (cairn.fields_ok, migration 018)', () => {
  it('are true exactly when fields_problem finds no problem', async () => {
    await fc.assert(
      fc.asyncProperty(schema, fieldsText, fc.constantFrom(...KINDS), async (s, fields, kind) => {
        const v = await verdicts(s, fields, kind);
        expect(v.compiled).not.toBeNull();
        expect(v.compiled).toBe(v.problem === null);
      }),
      { numRuns: 400 },
    );
  });

  it('leave schemas they do not compile to fields_problem', async () => {
    for (const s of [{ properties: ['a'] }, { required: ['a', 1] }, ['not an object'], { properties: 'a' }]) {
      const v = await verdicts(s, '{"a": 1}', 'assertion');
      expect(v.compiled).toBeNull();
    }
  });

  it('are regenerated at each registration, and an append refused by them names its problem as before', async () => {
    await db.pool.query(
      `insert into cairn.observation_types (name, version, entity, policies, json_schema)
       values ('fok.t', 1, 'fok', '{}', $1)`,
      [
        JSON.stringify({
          type: 'object',
          properties: { n: { type: 'integer' }, s: { enum: ['x', 'y'] } },
          required: ['n'],
          additionalProperties: false,
        }),
      ],
    );
    const ok = (fields: string, kind = 'assertion') =>
      db.adminPool
        .query<{ ok: boolean | null }>(`select cairn.fields_ok('fok.t', 1, $1::jsonb, $2) as ok`, [
          fields,
          kind,
        ])
        .then((r) => r.rows[0]!.ok);
    expect(await ok('{"n": 2.0, "s": "x"}')).toBe(true);
    expect(await ok('{"n": 2.5}')).toBe(false);
    expect(await ok('{"s": "z", "n": 1}')).toBe(false);
    expect(await ok('{"s": "x"}')).toBe(false);
    expect(await ok('{"s": "x"}', 'correction')).toBe(true);
    expect(await ok('{"n": 1, "other": 1}')).toBe(false);
    // Through an append: refused by the compiled check, named by fields_problem (CN006, as before).
    const appendOne = (fields: string, key: string) =>
      db.pool.query(
        `select * from cairn.append_observations(array['fok'], array['e1'], array['fok.t'], array[1], array['assertion'],
           array[$1::jsonb], array['global'], array['{}'], array[null::jsonb], array[null::uuid], array[null::int],
           array[$2], array[encode(sha256(convert_to($2, 'UTF8')), 'hex')], array[now()],
           't', 'wf', 'run', 'act', 1, 'agent', 'role')`,
        [fields, key],
      );
    await expect(appendOne('{"n": 2.5}', 'fok:1')).rejects.toMatchObject({
      code: 'CN006',
      message: 'fok/e1 version 1: fields.n: number is not of type "integer" (type fok.t@1)',
    });
    await expect(appendOne('{"n": 1, "zz": 1}', 'fok:2')).rejects.toMatchObject({
      code: 'CN006',
      message: 'fok/e1 version 1: fields.zz: not a field of this type (type fok.t@1)',
    });
    await appendOne('{"n": 3.0, "s": "y"}', 'fok:3');
    const stored = await db.adminPool.query<{ n: number }>(
      `select count(*)::int as n from cairn.observations where entity_type = 'fok'`,
    );
    expect(stored.rows[0]!.n).toBe(1);
    // Not registered: no compiled check (the generic one decides).
    const unknown = await db.adminPool.query<{ ok: boolean | null }>(
      `select cairn.fields_ok('fok.none', 1, '{}'::jsonb, 'assertion') as ok`,
    );
    expect(unknown.rows[0]!.ok).toBeNull();
  });

  it('concurrent registrations all end up compiled (registrations take turns regenerating)', async () => {
    const names = Array.from({ length: 6 }, (_, i) => `fok.c${i}`);
    await Promise.all(
      names.map((name) =>
        db.pool.query(
          `insert into cairn.observation_types (name, version, entity, policies, json_schema)
           values ($1, 1, 'fok', '{}', '{"type": "object", "properties": {"n": {"type": "integer"}}, "additionalProperties": false}')`,
          [name],
        ),
      ),
    );
    const { rows } = await db.adminPool.query<{ name: string; ok: boolean | null }>(
      `select n as name, cairn.fields_ok(n, 1, '{"n": 1.5}'::jsonb, 'assertion') as ok from unnest($1::text[]) n`,
      [names],
    );
    expect(rows.map((r) => r.ok)).toEqual(names.map(() => false));
  });
});
