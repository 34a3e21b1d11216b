/**
 * The append path on a real database: provenance stored exactly, gapless versions, idempotent
 * replays, loud conflicts, compare-and-set, all-or-nothing batches, reference checks, type
 * registration.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { canonicalJson } from '../../src/shared/canonicalJson';
import {
  IdempotencyConflictError,
  ObservationValidationError,
  StaleVersionError,
} from '../../src/shared/errors';
import { defineObservationType, ObservationTypeRegistry } from '../../src/shared/observationTypes';
import { withTransaction } from '../../src/store/pool';
import { appendObservations, type AppendContext, type AppendItem } from '../../src/store/observations/append';
import { contentHash, provenanceHash } from '../../src/store/observations/hash';
import {
  ObservationTypeConflictError,
  registerObservationTypes,
} from '../../src/store/observations/registerTypes';
import { observationColumns, parseObservationRow } from '../../src/store/observations/rows';
import { testDatabase, type TestDatabase } from '../helpers/database';

const profile = defineObservationType({
  name: 'company.profile',
  version: 1,
  entity: 'company',
  fields: {
    name: z.string().min(1),
    employees: z.int().nonnegative().optional(),
    tags: z.array(z.string()).optional(),
  },
  policies: { tags: 'set-union' },
});
const ceo = defineObservationType({
  name: 'company.ceo',
  version: 1,
  entity: 'company',
  fields: { ceo: z.string() },
  policies: { ceo: 'reject-on-conflict' },
});
const registry = new ObservationTypeRegistry([profile, ceo]);

let db: TestDatabase;
let run = 0;

/** A fresh context (its own idempotency prefix) per call unless a prefix is given. */
function context(over: Partial<AppendContext['provenance']> = {}, prefix = `wf-${++run}:act`): AppendContext {
  return {
    provenance: {
      taskKey: 'task-7',
      workflowId: `wf-${run}`,
      runId: 'run-a',
      activityId: 'act',
      attempt: 1,
      agentId: 'agent-1',
      role: 'researcher',
      ...over,
    },
    idempotencyPrefix: prefix,
    observedAt: '2025-01-31T12:00:00.123Z',
  };
}

const acme = (id: string, fields: Record<string, unknown>, extra: Partial<AppendItem> = {}): AppendItem => ({
  entityType: 'company',
  entityId: id,
  type: 'company.profile',
  fields,
  ...extra,
});

async function count(): Promise<number> {
  return (await db.pool.query<{ n: number }>('select count(*)::int as n from cairn.observations')).rows[0]!.n;
}

async function stored(entityId: string) {
  const { rows } = await db.pool.query(
    `select ${observationColumns()} from cairn.observations o where entity_type = 'company' and entity_id = $1 order by entity_version`,
    [entityId],
  );
  return rows.map(parseObservationRow);
}

async function head(entityId: string) {
  return (
    await db.pool.query(
      `select version, chain_hash from cairn.entity_heads where entity_type = 'company' and entity_id = $1`,
      [entityId],
    )
  ).rows[0] as { version: number; chain_hash: string } | undefined;
}

beforeAll(async () => {
  db = await testDatabase();
  await registerObservationTypes(db.pool, registry);
});

afterAll(async () => {
  await db?.drop();
});

describe('appendObservations', () => {
  it('stores the content and provenance exactly as given', async () => {
    const ctx = context({
      attempt: 3,
      runId: 'run-xyz',
      agentId: 'agent-42',
      role: 'analyst',
      taskKey: 'due-diligence/acme',
    });
    // An entity keeps the scope of its first observation (migration 006), so both are in one team.
    const [src] = await appendObservations(
      db.pool,
      registry,
      [acme('prov', { name: 'Acme' }, { scope: 'team:research' })],
      ctx,
    );
    const item: AppendItem = acme(
      'prov',
      { name: 'Acme Corp', employees: 12, tags: ['b2b'] },
      {
        kind: 'inference',
        scope: 'team:research',
        derivedFrom: [src!.id.toUpperCase()],
        source: { kind: 'url', ref: 'https://example.com/acme', detail: 'about page' },
        observedAt: '2025-01-30T08:15:00+02:00',
        idempotencyKey: 'explicit-key-1',
      },
    );
    const [out] = await appendObservations(db.pool, registry, [item], ctx);
    expect(out).toMatchObject({
      index: 0,
      entityType: 'company',
      entityId: 'prov',
      entityVersion: 2,
      idempotencyKey: 'explicit-key-1',
      replayed: false,
    });

    const [, row] = await stored('prov');
    expect(row).toMatchObject({
      id: out!.id,
      entityType: 'company',
      entityId: 'prov',
      entityVersion: 2,
      type: 'company.profile',
      schemaVersion: 1,
      kind: 'inference',
      fields: { name: 'Acme Corp', employees: 12, tags: ['b2b'] },
      scope: 'team:research',
      provenance: {
        taskKey: 'due-diligence/acme',
        workflowId: ctx.provenance.workflowId,
        runId: 'run-xyz',
        activityId: 'act',
        attempt: 3,
        agentId: 'agent-42',
        role: 'analyst',
        derivedFrom: [src!.id],
        source: { kind: 'url', ref: 'https://example.com/acme', detail: 'about page' },
      },
      targetId: null,
      expectedVersion: null,
      idempotencyKey: 'explicit-key-1',
      contentHash: out!.contentHash,
      recordedAt: out!.recordedAt,
    });
    // Workflow time as given (another zone, same instant); database time separately, later.
    expect(new Date(row!.observedAt).getTime()).toBe(Date.parse('2025-01-30T08:15:00+02:00'));
    expect(row!.recordedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(Date.parse(row!.recordedAt)).toBeGreaterThan(Date.parse(row!.observedAt));
    // The content hash is the documented one, recomputable from the stored row.
    expect(row!.contentHash).toBe(
      contentHash({
        entityType: 'company',
        entityId: 'prov',
        type: 'company.profile',
        schemaVersion: 1,
        kind: 'inference',
        fields: row!.fields,
        scope: 'team:research',
        derivedFrom: row!.provenance.derivedFrom,
        source: row!.provenance.source ?? null,
        targetId: null,
        expectedVersion: null,
      }),
    );
  });

  it('numbers each entity 1..n without gaps across single and batched appends, and chains them', async () => {
    for (let i = 0; i < 3; i++)
      await appendObservations(db.pool, registry, [acme('gap-a', { name: `a${i}` })], context());
    await appendObservations(
      db.pool,
      registry,
      [
        acme('gap-b', { name: 'b0' }),
        acme('gap-a', { name: 'a3' }),
        acme('gap-b', { name: 'b1' }),
        acme('gap-a', { name: 'a4' }),
      ],
      context(),
    );
    await appendObservations(db.pool, registry, [acme('gap-b', { name: 'b2' })], context());
    for (const [id, n] of [
      ['gap-a', 5],
      ['gap-b', 3],
    ] as const) {
      const rows = await stored(id);
      expect(rows.map((r) => r.entityVersion)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      expect(rows.map((r) => r.fields.name)).toEqual(
        Array.from({ length: n }, (_, i) => `${id.slice(-1)}${i}`),
      );
      let prev = '';
      for (const r of rows) {
        expect(r.prevHash).toBe(prev);
        // Provenance is in the link too (migration 010).
        const provenance = provenanceHash({ ...r.provenance, idempotencyKey: r.idempotencyKey });
        expect(r.chainHash).toBe(
          createHash('sha256')
            .update(prev + r.contentHash + provenance)
            .digest('hex'),
        );
        prev = r.chainHash;
      }
      expect(await head(id)).toEqual({ version: n, chain_hash: prev });
    }
  });

  it('replays a retried append: same ids, flagged, nothing new written', async () => {
    const items = [
      acme('replay', { name: 'x' }),
      acme('replay', { name: 'y' }),
      acme('replay-2', { name: 'z' }),
    ];
    const first = await appendObservations(
      db.pool,
      registry,
      items,
      context({ attempt: 1 }, 'wf-replay:act-1'),
    );
    const before = await count();
    // A Temporal retry: another attempt (even another run) with the same deterministic keys.
    const again = await appendObservations(
      db.pool,
      registry,
      items,
      context({ attempt: 2, runId: 'run-b' }, 'wf-replay:act-1'),
    );
    expect(again).toEqual(first.map((o) => ({ ...o, replayed: true })));
    expect(await count()).toBe(before);
    // Single-item path too.
    const [one] = await appendObservations(
      db.pool,
      registry,
      [items[0]!],
      context({ attempt: 5 }, 'wf-replay:act-1'),
    );
    expect(one).toEqual({ ...first[0]!, replayed: true });
    expect(await count()).toBe(before);
    // The stored provenance is the first attempt's.
    expect((await stored('replay')).map((r) => r.provenance.attempt)).toEqual([1, 1]);
  });

  it('replays the stored part of a batch and appends the rest after it', async () => {
    const ctx = () => context({}, 'wf-partial:act');
    const first = await appendObservations(
      db.pool,
      registry,
      [acme('partial', { name: 'p0' }), acme('partial', { name: 'p1' })],
      ctx(),
    );
    const second = await appendObservations(
      db.pool,
      registry,
      [acme('partial', { name: 'p0' }), acme('partial', { name: 'p1' }), acme('partial', { name: 'p2' })],
      ctx(),
    );
    expect(second.map((o) => [o.replayed, o.entityVersion])).toEqual([
      [true, 1],
      [true, 2],
      [false, 3],
    ]);
    expect(second.slice(0, 2).map((o) => o.id)).toEqual(first.map((o) => o.id));
  });

  it('refuses the same key with different content, loudly, writing nothing', async () => {
    const prefix = 'wf-conflict:act';
    const [orig] = await appendObservations(
      db.pool,
      registry,
      [acme('conflict', { name: 'original' })],
      context({}, prefix),
    );
    const before = await count();
    const single = await appendObservations(
      db.pool,
      registry,
      [acme('conflict', { name: 'changed' })],
      context({}, prefix),
    ).catch((e: unknown) => e);
    expect(single).toBeInstanceOf(IdempotencyConflictError);
    expect(single).toMatchObject({
      idempotencyKey: `${prefix}:0`,
      existingObservationId: orig!.id,
      code: 'CairnIdempotencyConflict',
    });
    // In a batch: the valid new item before it is not written either.
    const batch = await appendObservations(
      db.pool,
      registry,
      [
        acme('conflict', { name: 'original' }, { idempotencyKey: 'fresh-key' }),
        acme('conflict', { name: 'changed' }, { idempotencyKey: `${prefix}:0` }),
      ],
      context({}, prefix),
    ).catch((e: unknown) => e);
    expect(batch).toBeInstanceOf(IdempotencyConflictError);
    expect(batch).toMatchObject({ idempotencyKey: `${prefix}:0`, existingObservationId: orig!.id });
    expect(await count()).toBe(before);
    expect(await head('conflict')).toMatchObject({ version: 1 });
  });

  it('enforces expectedVersion as the version just before each item', async () => {
    const set = (name: string, expectedVersion: number) => ({
      entityType: 'company',
      entityId: 'cas',
      type: 'company.ceo',
      fields: { ceo: name },
      expectedVersion,
    });
    await appendObservations(db.pool, registry, [set('Ann', 0)], context());
    // Sequential semantics inside a batch: 1 then 2.
    const ok = await appendObservations(db.pool, registry, [set('Bob', 1), set('Cy', 2)], context());
    expect(ok.map((o) => o.entityVersion)).toEqual([2, 3]);
    const before = await count();

    const stale = await appendObservations(db.pool, registry, [set('Dee', 1)], context()).catch(
      (e: unknown) => e,
    );
    expect(stale).toBeInstanceOf(StaleVersionError);
    expect(stale).toMatchObject({ entity: 'company/cas', expectedVersion: 1, currentVersion: 3 });
    expect((stale as Error).message).toBe('company/cas: expected version 1 but the current version is 3');

    const staleInBatch = await appendObservations(
      db.pool,
      registry,
      [set('Eve', 3), set('Fay', 3)],
      context(),
    ).catch((e: unknown) => e);
    expect(staleInBatch).toMatchObject({ name: 'StaleVersionError', expectedVersion: 3, currentVersion: 4 });
    expect(await count()).toBe(before);
    expect((await stored('cas')).map((r) => [r.entityVersion, r.expectedVersion])).toEqual([
      [1, 0],
      [2, 1],
      [3, 2],
    ]);
  });

  it('requires expectedVersion for a reject-on-conflict field', async () => {
    const err = await appendObservations(
      db.pool,
      registry,
      [{ entityType: 'company', entityId: 'cas-2', type: 'company.ceo', fields: { ceo: 'X' } }],
      context(),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ObservationValidationError);
    expect(err).toMatchObject({
      index: 0,
      path: 'expectedVersion',
      problem: 'required: field "ceo" of company.ceo@1 is reject-on-conflict',
    });
  });

  it('is all or nothing: one stale item among ten writes none of them', async () => {
    const before = await count();
    const items = Array.from({ length: 10 }, (_, i) => acme(`atomic-${i % 3}`, { name: `n${i}` }));
    items[7] = { ...items[7]!, expectedVersion: 41 };
    const err = await appendObservations(db.pool, registry, items, context()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StaleVersionError);
    expect(await count()).toBe(before);
    for (let i = 0; i < 3; i++) expect(await head(`atomic-${i}`)).toBeUndefined();
  });

  it('checks that a correction targets an observation of the same entity and that derivedFrom exists', async () => {
    const [a] = await appendObservations(db.pool, registry, [acme('ref-a', { name: 'A' })], context());
    const [b] = await appendObservations(db.pool, registry, [acme('ref-b', { name: 'B' })], context());
    const fix = await appendObservations(
      db.pool,
      registry,
      [acme('ref-a', { name: 'A!' }, { kind: 'correction', targetId: a!.id })],
      context(),
    );
    expect(fix[0]).toMatchObject({ entityVersion: 2 });
    const retract = await appendObservations(
      db.pool,
      registry,
      [acme('ref-a', {}, { kind: 'retraction', targetId: fix[0]!.id })],
      context(),
    );
    expect(retract[0]).toMatchObject({ entityVersion: 3 });
    const before = await count();

    const wrongEntity = await appendObservations(
      db.pool,
      registry,
      [acme('ref-a', { name: 'A?' }, { kind: 'correction', targetId: b!.id })],
      context(),
    ).catch((e: unknown) => e);
    expect(wrongEntity).toMatchObject({
      name: 'ObservationValidationError',
      index: 0,
      path: 'targetId',
      problem: `observation ${b!.id} is about company/ref-b, not this entity`,
    });
    const missing = '00000000-0000-4000-8000-000000000000';
    const dangling = await appendObservations(
      db.pool,
      registry,
      [acme('ref-a', { name: 'ok' }), acme('ref-a', { name: 'A?' }, { derivedFrom: [a!.id, missing] })],
      context(),
    ).catch((e: unknown) => e);
    expect(dangling).toMatchObject({
      name: 'ObservationValidationError',
      index: 1,
      path: 'derivedFrom[1]',
      problem: `no stored observation ${missing}`,
    });
    expect(await count()).toBe(before);
  });

  it('registers a type on first use through a pool, and says what to do through a client', async () => {
    const fresh = defineObservationType({
      name: 'company.funding',
      version: 1,
      entity: 'company',
      fields: { round: z.string() },
    });
    const reg = new ObservationTypeRegistry([profile, fresh]);
    const before = await count();
    const item: AppendItem = {
      entityType: 'company',
      entityId: 'fund',
      type: 'company.funding',
      fields: { round: 'A' },
    };

    const viaClient = await withTransaction(db.pool, (client) =>
      appendObservations(client, reg, [item], context()),
    ).catch((e: unknown) => e);
    expect((viaClient as Error).message).toBe(
      'observation type company.funding@1 is not registered in this database; call registerObservationTypes at startup',
    );
    const batchViaClient = await withTransaction(db.pool, (client) =>
      appendObservations(client, reg, [acme('fund', { name: 'F' }), item], context()),
    ).catch((e: unknown) => e);
    expect((batchViaClient as Error).message).toMatch(
      /^observation type company\.funding@1 is not registered/,
    );
    expect(await count()).toBe(before);

    const [out] = await appendObservations(db.pool, reg, [item], context());
    expect(out).toMatchObject({ entityVersion: 1, replayed: false });
    const types = await db.pool.query(
      `select entity, policies, json_schema->'required' as required from cairn.observation_types where name = 'company.funding'`,
    );
    expect(types.rows).toEqual([
      { entity: 'company', policies: { round: 'last-writer-wins' }, required: ['round'] },
    ]);
  });

  it('registers types idempotently and refuses a changed definition under the same version', async () => {
    expect(await registerObservationTypes(db.pool, registry)).toEqual({ registered: [] });
    const changed = defineObservationType({
      name: 'company.ceo',
      version: 1,
      entity: 'company',
      fields: { ceo: z.string() },
      policies: { ceo: 'last-writer-wins' },
    });
    const err = await registerObservationTypes(db.pool, [changed]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ObservationTypeConflictError);
    expect(err).toMatchObject({ typeKey: 'company.ceo@1', differences: ['policies'] });
    const v2 = defineObservationType({
      name: 'company.ceo',
      version: 2,
      entity: 'company',
      fields: { ceo: z.string() },
    });
    expect(await registerObservationTypes(db.pool, [v2])).toEqual({ registered: ['company.ceo@2'] });
  });

  it("joins the caller's transaction: a rollback leaves no trace", async () => {
    const before = await count();
    await expect(
      withTransaction(db.pool, async (client) => {
        await appendObservations(client, registry, [acme('tx', { name: 'gone' })], context());
        throw new Error('abort the transaction');
      }),
    ).rejects.toThrow('abort the transaction');
    expect(await count()).toBe(before);
    expect(await head('tx')).toBeUndefined();
    await withTransaction(db.pool, (client) =>
      appendObservations(client, registry, [acme('tx', { name: 'kept' })], context()),
    );
    expect((await stored('tx')).map((r) => r.fields)).toEqual([{ name: 'kept' }]);
  });

  it('accepts a batch of one at the array entry point too, and refuses ragged arrays', async () => {
    const call = (keys: string[], ids: string[]) =>
      db.pool.query(
        `select idx, entity_version, replayed from cairn.append_observations($1::text[], $2::text[], $3::text[],
           $4::int[], $5::text[], $6::jsonb[], $7::text[], $8::text[], $9::jsonb[], $10::uuid[], $11::int[], $12::text[],
           $13::text[], $14::timestamptz[], 't', 'w', 'r', 'a', 1, 'agent', 'role')`,
        [
          ids.map(() => 'company'),
          ids,
          ids.map(() => 'company.profile'),
          ids.map(() => 1),
          ids.map(() => 'assertion'),
          ids.map(() => '{"name":"direct"}'),
          ids.map(() => 'task'),
          ids.map(() => '{}'),
          ids.map(() => null),
          ids.map(() => null),
          ids.map(() => null),
          keys,
          ids.map(() => 'ab'.repeat(32)),
          ids.map(() => '2025-01-31T12:00:00Z'),
        ],
      );
    expect((await call(['direct-1'], ['direct'])).rows).toEqual([
      { idx: 0, entity_version: 1, replayed: false },
    ]);
    expect((await call(['direct-1'], ['direct'])).rows).toEqual([
      { idx: 0, entity_version: 1, replayed: true },
    ]);
    await expect(call(['direct-2', 'direct-3'], ['direct'])).rejects.toMatchObject({
      code: '22023',
      message: 'append_observations: the parameter arrays must all have 2 elements',
    });
  });

  it('returns [] for an empty batch without touching the database', async () => {
    expect(await appendObservations(db.pool, registry, [], context())).toEqual([]);
  });

  it('hashes canonically: key order of the fields does not matter', async () => {
    const prefix = 'wf-order:act';
    const [a] = await appendObservations(
      db.pool,
      registry,
      [acme('order', { name: 'N', employees: 3 })],
      context({}, prefix),
    );
    const [b] = await appendObservations(
      db.pool,
      registry,
      [acme('order', { employees: 3, name: 'N' })],
      context({}, prefix),
    );
    expect(b).toEqual({ ...a!, replayed: true });
    expect(canonicalJson({ employees: 3, name: 'N' })).toBe('{"employees":3,"name":"N"}');
  });
});
