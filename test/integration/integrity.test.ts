/**
 * What the database lets through (issue #11), probed against real Postgres as the application
 * role: forged snapshots, edited type definitions, schema-violating and absurdly deep fields
 * written with raw SQL, scope leaks through SECURITY DEFINER functions, releases without the
 * token, and deadlocks between callers creating the same new claim rows in opposite orders.
 */
import { randomUUID } from 'node:crypto';
import type { PoolClient } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { FencingTokenStaleError } from '../../src/shared/errors';
import type { EntityRef, Json } from '../../src/shared/observation';
import { ObservationTypeRegistry, defineObservationType } from '../../src/shared/observationTypes';
import { policyResolverFor } from '../../src/shared/reducer';
import { checkFences, claim, nextFree, registerWorkItems, release } from '../../src/store/claims';
import { appendObservations, type AppendContext, type AppendItem } from '../../src/store/observations/append';
import { contentHash } from '../../src/store/observations/hash';
import { getEntityState } from '../../src/store/observations/read';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { SNAPSHOT_EVERY, SNAPSHOT_FORMAT } from '../../src/store/observations/snapshots';
import { EntityNotFoundError, verifyLog } from '../../src/store/observations/verify';
import { withTransaction } from '../../src/store/pool';
import { testDatabase, type TestDatabase } from '../helpers/database';

const profile = defineObservationType({
  name: 'company.profile',
  version: 1,
  entity: 'company',
  fields: {
    name: z.string(),
    headquarters: z.string().optional(),
    employees: z.number().int().optional(),
    status: z.enum(['active', 'closed']).optional(),
    notes: z.record(z.string(), z.json()).optional(),
  },
});
const registry = new ObservationTypeRegistry([profile]);
const policyOf = policyResolverFor(registry);

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
  await registerObservationTypes(db.pool, registry);
});
afterAll(async () => {
  await db?.drop();
});

const run = randomUUID().slice(0, 8);
const company = (id: string): EntityRef => ({ entityType: 'company', entityId: `${id}-${run}` });
let calls = 0;
function ctx(taskKey = `t-${run}`): AppendContext {
  calls++;
  return {
    provenance: {
      taskKey,
      workflowId: 'wf',
      runId: 'run',
      activityId: `a${calls}`,
      attempt: 1,
      agentId: 'agent',
      role: 'r',
    },
    idempotencyPrefix: `integrity:${calls}:${randomUUID()}`,
    observedAt: new Date().toISOString(),
  };
}
const write = (ref: EntityRef, fields: Record<string, unknown>, scope?: string): AppendItem => ({
  ...ref,
  type: 'company.profile',
  fields,
  ...(scope ? { scope } : {}),
});

/** As cairn_app inside one transaction, with the given scope settings (text[] literals). */
function asApp<T>(
  settings: { read?: string; write?: string },
  fn: (c: PoolClient) => Promise<T>,
): Promise<T> {
  return withTransaction(db.adminPool, async (c) => {
    await c.query('set local role cairn_app');
    if (settings.read !== undefined)
      await c.query("select set_config('cairn.read_scopes', $1, true)", [settings.read]);
    if (settings.write !== undefined)
      await c.query("select set_config('cairn.write_scopes', $1, true)", [settings.write]);
    return fn(c);
  });
}

/** One observation through cairn.append_observation as raw SQL (what a caller bypassing the library sends). */
function rawAppend(c: PoolClient, ref: EntityRef, fields: string, kind = 'assertion') {
  return c.query(
    `select id from cairn.append_observation($1, $2, 'company.profile', 1, $4, $3::jsonb, 'global', '{}', null, null,
       null, $5, repeat('ab', 32), now(), 'raw', 'wf', 'run', 'act', 1, 'agent', 'r')`,
    [ref.entityType, ref.entityId, fields, kind, randomUUID()],
  );
}

const ALL = { read: '{*}', write: '{*}' };

describe('snapshots', () => {
  it('cannot be inserted by the application role; a forged one written through the function is caught by verify', async () => {
    const acme = company('acme');
    await appendObservations(
      db.pool,
      registry,
      Array.from({ length: SNAPSHOT_EVERY }, (_, i) =>
        write(acme, { name: 'Acme', headquarters: i ? 'Berlin' : 'Paris' }),
      ),
      ctx(),
    );
    const truth = await getEntityState(db.pool, policyOf, acme, { writeSnapshots: false });
    const forged = {
      ...truth,
      fields: { ...truth.fields, headquarters: { ...truth.fields.headquarters, value: 'Pyongyang' } },
    };
    const doc = JSON.stringify({ format: SNAPSHOT_FORMAT, state: forged });

    await expect(
      asApp(ALL, (c) =>
        c.query(
          `insert into cairn.entity_snapshots (entity_type, entity_id, version, state) values ($1, $2, $3, $4)`,
          [acme.entityType, acme.entityId, SNAPSHOT_EVERY, doc],
        ),
      ),
    ).rejects.toMatchObject({ code: '42501' });
    expect((await verifyLog(db.pool, { entity: acme })).problems).toEqual([]);

    // Through the definer function (the only way in): stored, bound, and caught by verify.
    await asApp(ALL, (c) =>
      c.query('select cairn.save_entity_snapshots($1, $2, $3::int[], $4::jsonb[])', [
        acme.entityType,
        acme.entityId,
        [SNAPSHOT_EVERY],
        [doc],
      ]),
    );
    const result = await verifyLog(db.pool, { entity: acme });
    expect(result.snapshots).toBe(1);
    expect(result.problems).toHaveLength(1);
    expect(result.problems[0]).toMatchObject({
      entity: `company/${acme.entityId}`,
      version: SNAPSHOT_EVERY,
      problem: expect.stringMatching(
        /snapshot at version 500 differs from the fold of versions 1\.\.500 \(fields: headquarters\)/,
      ),
    });
  });

  it('a snapshot not bound to its version’s chain hash is ignored by reads and named by verify', async () => {
    const ref = company('unbound');
    await appendObservations(
      db.pool,
      registry,
      Array.from({ length: SNAPSHOT_EVERY }, (_, i) => write(ref, { name: `n${i}` })),
      ctx(),
    );
    const truth = await getEntityState(db.pool, policyOf, ref, { writeSnapshots: false });
    const forged = { ...truth, fields: { ...truth.fields, name: { ...truth.fields.name, value: 'forged' } } };
    // The owner, with triggers off (session_replication_role), stores a row bound to another hash.
    await withTransaction(db.adminPool, async (c) => {
      await c.query('set local session_replication_role = replica');
      await c.query(
        `insert into cairn.entity_snapshots (entity_type, entity_id, version, state, chain_hash, scope)
         values ($1, $2, $3, $4, repeat('0', 64), 'global')`,
        [
          ref.entityType,
          ref.entityId,
          SNAPSHOT_EVERY,
          JSON.stringify({ format: SNAPSHOT_FORMAT, state: forged }),
        ],
      );
    });
    const stats = { snapshotVersion: -1, folded: -1, snapshotsWritten: -1 };
    const state = await getEntityState(db.pool, policyOf, ref, { stats, writeSnapshots: false });
    expect(state.fields.name?.value).toBe(`n${SNAPSHOT_EVERY - 1}`);
    expect(stats.snapshotVersion).toBe(0);
    const problems = (await verifyLog(db.pool, { entity: ref })).problems.map((p) => p.problem).join('\n');
    expect(problems).toMatch(
      /snapshot at version 500 is bound to chain hash 000000000000…, the log has .* \(reads ignore it\)/,
    );
    expect(problems).toMatch(/differs from the fold/);
  });

  it('are stored only for entities the caller may read', async () => {
    const ref = company('hidden');
    await appendObservations(db.pool, registry, [write(ref, { name: 'h' }, 'team:hidden')], ctx());
    await expect(
      asApp({ read: '{team:other}' }, (c) =>
        c.query('select cairn.save_entity_snapshots($1, $2, array[1], array[$3::jsonb])', [
          ref.entityType,
          ref.entityId,
          JSON.stringify({ format: SNAPSHOT_FORMAT, state: {} }),
        ]),
      ),
    ).rejects.toMatchObject({ code: 'CNS04' });
  });
});

describe('observation types', () => {
  it('refuse UPDATE, DELETE and TRUNCATE even for the owner; an edit with triggers off is named by verify', async () => {
    for (const sql of [
      `update cairn.observation_types set policies = '{"name":"max"}' where name = 'company.profile'`,
      `delete from cairn.observation_types where name = 'company.profile'`,
      `truncate cairn.observation_types cascade`,
    ])
      await expect(db.adminPool.query(sql)).rejects.toMatchObject({ code: 'CN003' });
    await expect(
      db.pool.query(`update cairn.observation_types set policies = '{}' where name = 'company.profile'`),
    ).rejects.toMatchObject({ code: '42501' });

    const before = await verifyLog(db.pool);
    expect(before.types).toBe(1);
    expect(before.problems.filter((p) => p.entity.startsWith('type '))).toEqual([]);
    await withTransaction(db.adminPool, async (c) => {
      await c.query('set local session_replication_role = replica');
      await c.query(`update cairn.observation_types set policies = '{"headquarters":"first-writer-wins"}'
                      where name = 'company.profile' and version = 1`);
    });
    try {
      const after = await verifyLog(db.pool);
      expect(after.problems.filter((p) => p.entity === 'type company.profile@1')).toEqual([
        expect.objectContaining({ problem: expect.stringMatching(/^definition changed after registration/) }),
      ]);
    } finally {
      await withTransaction(db.adminPool, async (c) => {
        await c.query('set local session_replication_role = replica');
        await c.query(
          `update cairn.observation_types set policies = '{}' where name = 'company.profile' and version = 1`,
        );
      });
    }
  });
});

describe('fields written with raw SQL', () => {
  const refused = async (fields: string, kind = 'assertion') => {
    const err = await asApp(ALL, (c) => rawAppend(c, company('raw'), fields, kind)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CN006' });
    return (err as Error).message;
  };

  it('are refused for their fields before their scope (one pass since migration 020, same order)', async () => {
    // Scope global outside the grant, and fields that break the type: the field problem wins.
    const teamOnly = { read: '{*}', write: '{team:x}' };
    const bad = await asApp(teamOnly, (c) =>
      rawAppend(c, company('raw-order'), '{"name":"x","evil":1}'),
    ).catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: 'CN006' });
    expect((bad as Error).message).toMatch(/fields\.evil: not a field of this type/);
    // The same row with good fields: the grant refuses it.
    const good = await asApp(teamOnly, (c) => rawAppend(c, company('raw-order'), '{"name":"x"}')).catch(
      (e: unknown) => e,
    );
    expect(good).toMatchObject({ code: 'CNS01' });

    // Two rows: the first outside the grant with good fields, the second inside it with bad
    // fields. Any field problem of the statement is reported before any scope problem.
    const batch = (fields2: string) =>
      asApp(teamOnly, (c) =>
        c.query(
          `select id from cairn.append_observations(
             array['company', 'company'], array[$1, $2], array['company.profile', 'company.profile'], array[1, 1],
             array['assertion', 'assertion'], array['{"name":"x"}', $3]::jsonb[], array['global', 'team:x'],
             array['{}', '{}'], array[null, null]::jsonb[], array[null, null]::uuid[], array[null, null]::int[],
             array[$4, $5], array[repeat('ab', 32), repeat('ab', 32)], array[now(), now()],
             'raw', 'wf', 'run', 'act', 1, 'agent', 'r')`,
          [
            company('raw-order-1').entityId,
            company('raw-order-2').entityId,
            fields2,
            randomUUID(),
            randomUUID(),
          ],
        ),
      ).catch((e: unknown) => e);
    expect(await batch('{"name":"x","evil":1}')).toMatchObject({ code: 'CN006' });
    expect(await batch('{"name":"x"}')).toMatchObject({ code: 'CNS01' });
  });

  it('are refused when they break the type’s keys, types, enums or nesting limit', async () => {
    expect(await refused('{"name":"x","employees":"lots","evil":{"a":1}}')).toMatch(
      /fields\.evil: not a field of this type/,
    );
    expect(await refused('{"name":"x","employees":"lots"}')).toMatch(
      /fields\.employees: string is not of type "integer"/,
    );
    expect(await refused('{"name":"x","employees":1.5}')).toMatch(/fields\.employees/);
    expect(await refused('{"name":"x","status":"bankrupt"}')).toMatch(/fields\.status: not one of/);
    expect(await refused('{"headquarters":"Paris"}')).toMatch(/fields\.name: required/);
    const deep = `{"name":"x","notes":{"d":${'['.repeat(10_000)}${']'.repeat(10_000)}}}`;
    expect(await refused(deep)).toMatch(/nested deeper than 32 levels/);
  });

  it('are accepted when the library would accept them (corrections may be partial; depth up to the limit)', async () => {
    const ref = company('raw-ok');
    // notes (1) + 30 arrays = a container 31 levels below the fields object: the library's limit.
    const nested = `${'['.repeat(30)}1${']'.repeat(30)}`;
    const fields = { name: 'x', employees: 3, status: 'active', notes: { d: JSON.parse(nested) as unknown } };
    const [stored] = await appendObservations(db.pool, registry, [write(ref, fields, 'global')], ctx());
    await asApp(ALL, async (c) => {
      await rawAppend(c, ref, JSON.stringify(fields));
      const target = stored!.id;
      await c.query(
        `select id from cairn.append_observation($1, $2, 'company.profile', 1, 'correction', '{"employees":4}', 'global',
           '{}', null, $3, null, $4, repeat('ab', 32), now(), 'raw', 'wf', 'run', 'act', 1, 'agent', 'r')`,
        [ref.entityType, ref.entityId, target, randomUUID()],
      );
    });
    const tooDeep = { ...fields, notes: { d: JSON.parse(`[${nested}]`) as unknown } };
    await expect(
      appendObservations(db.pool, registry, [write(ref, tooDeep, 'global')], ctx()),
    ).rejects.toThrow(/nested deeper than 32/);
    await expect(asApp(ALL, (c) => rawAppend(c, ref, JSON.stringify(tooDeep)))).rejects.toMatchObject({
      code: 'CN006',
    });
  });
});

describe('definer functions answer only for what the caller may read', () => {
  it('derived_children hides children in scopes the caller cannot read', async () => {
    const parent = company('parent');
    const [p] = await appendObservations(db.pool, registry, [write(parent, { name: 'p' }, 'global')], ctx());
    const open = company('child-open');
    const secret = company('child-secret');
    await appendObservations(
      db.pool,
      registry,
      [
        { ...write(open, { name: 'o' }, 'global'), derivedFrom: [p!.id] },
        { ...write(secret, { name: 's' }, 'team:secret'), derivedFrom: [p!.id] },
      ],
      ctx(),
    );
    const children = (read: string) =>
      asApp(
        { read },
        async (c) =>
          (await c.query<{ id: string }>('select cairn.derived_children($1) as id', [p!.id])).rows.length,
      );
    expect(await children('{global,team:secret}')).toBe(2);
    expect(await children('{global}')).toBe(1);
    await expect(
      db.adminPool.query(`select cairn.derived_children($1)`, [p!.id]).then((r) => r.rows.length),
    ).resolves.toBe(2);
  });

  it('record_read_set reports no conflicts of unreadable entities and creates no head rows', async () => {
    const secret = company('rs-secret');
    await appendObservations(db.pool, registry, [write(secret, { name: 'a' }, 'team:secret')], ctx());
    await appendObservations(db.pool, registry, [write(secret, { name: 'b' }, 'team:secret')], ctx());
    const ghost = company('rs-ghost');
    const record = (read: string) =>
      asApp({ read }, async (c) => {
        const { rows } = await c.query<{ refused: boolean; conflicts: unknown[] }>(
          `select refused, conflicts from cairn.record_read_set('wf-rs', 'run', $1, 1, 'rs', 'r', 'agent',
             array[$2, $2], array[$3, $4], array[1, 0], array[null, null]::text[], '{}', '{}',
             array[$5], array['strict'])`,
          [randomUUID(), secret.entityType, secret.entityId, ghost.entityId, randomUUID()],
        );
        return rows[0]!;
      });
    expect(await record('{global}')).toEqual({ refused: false, conflicts: [] });
    const seen = await record('{team:secret}');
    expect(seen.refused).toBe(true);
    expect(seen.conflicts).toEqual([
      expect.objectContaining({ entityId: secret.entityId, currentVersion: 2 }),
    ]);
    const heads = await db.adminPool.query('select 1 from cairn.entity_heads where entity_id = $1', [
      ghost.entityId,
    ]);
    expect(heads.rows).toEqual([]);
  });
});

describe('claims', () => {
  it('say whether a stale token was released or expired, not "held until"', async () => {
    const r = `doc/stale-${run}`;
    const a = await claim(db.pool, r, { holder: 'A', ttlMs: 60_000 });
    if (a.outcome !== 'granted') throw new Error('not granted');
    await release(db.pool, r, { holder: 'A', token: a.token });
    const released = await withTransaction(db.pool, (c) =>
      checkFences(c, [{ resource: r, token: a.token }]),
    ).catch((e: unknown) => e);
    expect(released).toBeInstanceOf(FencingTokenStaleError);
    expect((released as Error).message).toMatch(/stale \(released\); token \d+ of A was released at /);

    const e = `doc/expired-${run}`;
    const b = await claim(db.pool, e, { holder: 'B', ttlMs: 1 });
    if (b.outcome !== 'granted') throw new Error('not granted');
    await new Promise((done) => setTimeout(done, 20));
    const expired = await withTransaction(db.pool, (c) =>
      checkFences(c, [{ resource: e, token: b.token }]),
    ).catch((err: unknown) => err);
    expect((expired as Error).message).toMatch(/stale \(expired\); token \d+ of B expired at /);
    expect((expired as Error).message).not.toMatch(/held by/);
  });

  it('nextFree and registerWorkItems never deadlock when two callers pass new names in opposite orders', async () => {
    const errors: unknown[] = [];
    const rounds = 150;
    // Each round both callers start together on the same new names, in opposite orders.
    const call = async (i: number, who: string, reverse: boolean) => {
      const ids = Array.from({ length: 20 }, (_, k) => `r${i}-${k}`);
      const order = reverse ? [...ids].reverse() : ids;
      await Promise.all([
        nextFree(db.pool, `race-${run}`, order, { holder: who, ttlMs: 60_000 }).catch((err: unknown) =>
          errors.push(err),
        ),
        registerWorkItems(db.pool, `work-${run}`, order).catch((err: unknown) => errors.push(err)),
      ]);
    };
    for (let i = 0; i < rounds; i++) await Promise.all([call(i, 'A', false), call(i, 'B', true)]);
    expect(errors).toEqual([]);
    const { rows } = await db.pool.query<{ n: number }>(
      'select count(*)::int as n from cairn.work_items where kind = $1',
      [`work-${run}`],
    );
    expect(rows[0]!.n).toBe(rounds * 20);
  });
});

describe('verify', () => {
  it('an entity that does not exist is an error, not "log intact"', async () => {
    await expect(verifyLog(db.pool, { entity: company('nobody') })).rejects.toBeInstanceOf(
      EntityNotFoundError,
    );
  });

  it('blames the head row when only the head was edited', async () => {
    const ref = company('head-edit');
    await appendObservations(
      db.pool,
      registry,
      [write(ref, { name: 'a' }), write(ref, { name: 'b' })],
      ctx(),
    );
    await db.adminPool.query(
      `update cairn.entity_heads set chain_hash = repeat('f', 64) where entity_type = $1 and entity_id = $2`,
      [ref.entityType, ref.entityId],
    );
    const { problems } = await verifyLog(db.pool, { entity: ref });
    expect(problems).toEqual([
      expect.objectContaining({ entity: `company/${ref.entityId} (head)`, version: 2, observationId: '' }),
    ]);
  });

  it('a stored "__proto__" key in free-form data is not tampering', async () => {
    const ref = company('proto');
    // JSON.parse keeps "__proto__" as an own key, as the driver does reading the row back.
    const text = '{"name":"p","notes":{"__proto__":{"x":1},"y":2}}';
    const fields = JSON.parse(text) as Record<string, Json>;
    const hash = contentHash({
      ...ref,
      type: 'company.profile',
      schemaVersion: 1,
      kind: 'assertion',
      fields,
      scope: 'global',
      derivedFrom: [],
      source: null,
      targetId: null,
      expectedVersion: null,
    });
    await asApp(ALL, (c) =>
      c.query(
        `select id from cairn.append_observation($1, $2, 'company.profile', 1, 'assertion', $3::jsonb, 'global', '{}',
           null, null, null, $4, $5, now(), 'raw', 'wf', 'run', 'act', 1, 'agent', 'r')`,
        [ref.entityType, ref.entityId, text, randomUUID(), hash],
      ),
    );
    const stored = await db.pool.query(
      `select fields -> 'notes' ? '__proto__' as has from cairn.observations where entity_id = $1`,
      [ref.entityId],
    );
    expect(stored.rows[0]).toEqual({ has: true });
    expect((await verifyLog(db.pool, { entity: ref })).problems).toEqual([]);
  });

  it('a type with a field named "constructor" accepts appends that omit it, and they verify', async () => {
    const ctor = defineObservationType({
      name: 'company.ctor',
      version: 1,
      entity: 'company',
      fields: { name: z.string(), constructor: z.string().optional() },
    });
    const types = new ObservationTypeRegistry([ctor]);
    await registerObservationTypes(db.pool, types);
    const ref = company('ctor');
    await appendObservations(
      db.pool,
      types,
      [{ ...ref, type: 'company.ctor', fields: { name: 'c' } }],
      ctx(),
    );
    await appendObservations(
      db.pool,
      types,
      [{ ...ref, type: 'company.ctor', fields: { name: 'c', constructor: 'k' } }],
      ctx(),
    );
    expect((await verifyLog(db.pool, { entity: ref })).problems).toEqual([]);
  });
});

describe('provenance', () => {
  /**
   * Updates one observation row as the owner with the append-only triggers off and the
   * provenance CHECK dropped (it refuses such an edit outright), then restored NOT VALID.
   */
  async function edit(sql: string, params: unknown[]) {
    await withTransaction(db.adminPool, async (c) => {
      const { rows } = await c.query<{ def: string }>(
        `select pg_get_constraintdef(oid) as def from pg_constraint where conname = 'observations_provenance_hash'`,
      );
      await c.query('set local session_replication_role = replica');
      await c.query('alter table cairn.observations drop constraint observations_provenance_hash');
      await c.query(sql, params);
      await c.query(
        `alter table cairn.observations add constraint observations_provenance_hash ${rows[0]!.def} not valid`,
      );
    });
  }

  it('is inside the chain: edits of the agent or the idempotency key are named by verify', async () => {
    for (const column of ['agent_id', 'idempotency_key']) {
      const ref = company(`prov-${column}`);
      const [a] = await appendObservations(
        db.pool,
        registry,
        [write(ref, { name: 'x' }), write(ref, { name: 'y' })],
        ctx(),
      );
      expect((await verifyLog(db.pool, { entity: ref })).problems).toEqual([]);
      await edit(`update cairn.observations set ${column} = ${column} || '-forged' where id = $1`, [a!.id]);
      const { problems } = await verifyLog(db.pool, { entity: ref });
      expect(problems).toEqual([
        expect.objectContaining({
          version: 1,
          observationId: a!.id,
          problem: expect.stringMatching(/provenance changed after append/),
        }),
      ]);
    }
  });

  it('a replay of another scope’s idempotency key does not return its observation id', async () => {
    const ref = company('replay-secret');
    const key = `secret-key-${run}`;
    const [stored] = await appendObservations(
      db.pool,
      registry,
      [{ ...write(ref, { name: 's' }, 'team:secret'), idempotencyKey: key }],
      ctx(),
    );
    const replay = (read: string) =>
      asApp({ read, write: '{*}' }, (c) =>
        c.query<{ id: string }>(
          `select id from cairn.append_observation($1, $2, 'company.profile', 1, 'assertion', '{"name":"s"}', 'team:secret',
             '{}', null, null, null, $3, repeat('ab', 32), now(), 'raw', 'wf', 'run', 'act', 1, 'agent', 'r')`,
          [ref.entityType, ref.entityId, key],
        ),
      );
    const err = await replay('{global}').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CN001' });
    expect(JSON.stringify(err)).not.toContain(stored!.id);
    expect((err as Error).message).not.toContain(stored!.id);
  });

  it('must match the identity the worker bound to the transaction', async () => {
    const ref = company('bound');
    const err = await asApp(ALL, async (c) => {
      await c.query("select set_config('cairn.agent_id', 'agent-1', true)");
      return rawAppend(c, ref, '{"name":"x"}');
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'CNP01',
      message: expect.stringMatching(/agent_id: "agent" is not the agent_id bound/),
    });
  });
});
