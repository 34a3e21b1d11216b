/**
 * The reduction laws (docs/observations.md) through the real append and read paths on a real
 * Postgres: each symptom of issue #11's "Reduction semantics" as a test.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ReadTracker } from '../../activities/readTracking';
import type { EntityState } from '../../src/shared/entityState';
import type { EntityRef } from '../../src/shared/observation';
import { ObservationTypeRegistry, defineObservationType } from '../../src/shared/observationTypes';
import { policyResolverFor, reduceEntity } from '../../src/shared/reducer';
import { annotateFreshness, withFreshness } from '../../src/store/freshness';
import { appendObservations, type AppendContext, type AppendItem } from '../../src/store/observations/append';
import {
  getEntityHistory,
  getEntityState,
  listContributors,
  type ReadStats,
} from '../../src/store/observations/read';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { SNAPSHOT_EVERY } from '../../src/store/observations/snapshots';
import { liftQuarantine, loadTaint, retract, withoutTainted } from '../../src/store/quarantine';
import { testDatabase, type TestDatabase } from '../helpers/database';

const profile = defineObservationType({
  name: 'company.profile',
  version: 1,
  entity: 'company',
  fields: {
    hq: z.string().nullable().optional(),
    employees: z.number().int().nullable().optional(),
    tags: z.array(z.string()).nullable().optional(),
  },
  policies: { employees: 'max', tags: 'set-union' },
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

let calls = 0;
function ctx(agentId = 'agent-1', observedAt = new Date()): AppendContext {
  calls++;
  return {
    provenance: {
      taskKey: 'laws',
      workflowId: 'wf',
      runId: 'run',
      activityId: `${calls}`,
      attempt: 1,
      agentId,
      role: 'researcher',
    },
    idempotencyPrefix: `laws:${calls}:${randomUUID()}`,
    observedAt: observedAt.toISOString(),
  };
}
const company = (id: string): EntityRef => ({
  entityType: 'company',
  entityId: `${id}-${randomUUID().slice(0, 8)}`,
});
async function write(
  ref: EntityRef,
  fields: Record<string, unknown>,
  extra: Partial<AppendItem> = {},
  agent = 'agent-1',
  observedAt?: Date,
): Promise<string> {
  const [a] = await appendObservations(
    db.pool,
    registry,
    [{ ...ref, type: 'company.profile', fields, ...extra }],
    ctx(agent, observedAt),
  );
  return a!.id;
}
const retraction = (ref: EntityRef, targetId: string) => write(ref, {}, { kind: 'retraction', targetId });
const read = (ref: EntityRef, opts: Parameters<typeof getEntityState>[3] = {}) =>
  getEntityState(db.pool, policyOf, ref, opts);
async function fullFold(ref: EntityRef): Promise<EntityState> {
  return reduceEntity(ref, await getEntityHistory(db.pool, ref, { limit: 10_000 }), policyOf);
}
const stats = (): ReadStats => ({ snapshotVersion: 0, folded: 0, snapshotsWritten: 0 });

describe('corrections pin', () => {
  it('a later ordinary write observed an hour before the correction does not undo it; retracting the correction refolds', async () => {
    const ref = company('pin');
    await write(ref, { hq: 'Alpha' });
    const fix = await write(
      ref,
      { hq: 'Gamma' },
      { kind: 'correction', targetId: await write(ref, { hq: 'Beta' }) },
      'human',
    );
    await write(ref, { hq: 'Delta' }, {}, 'agent-2', new Date(Date.now() - 3_600_000));
    const s = await read(ref);
    expect(s.fields.hq).toMatchObject({
      value: 'Gamma',
      corrected: true,
      winner: { observationId: fix, agentId: 'human' },
    });
    expect(s.fields.hq?.contested.at(-1)).toMatchObject({
      value: 'Delta',
      reason: 'pinned by correction',
      source: { agentId: 'agent-2' },
    });
    await retraction(ref, fix);
    expect((await read(ref)).fields.hq).toMatchObject({
      value: 'Delta',
      corrected: false,
      winner: { agentId: 'agent-2' },
    });
  });
});

describe('retraction is exclusion', () => {
  it('retracting the winner falls back to the previous winner with its own provenance; retracting the retraction restores it', async () => {
    const ref = company('fallback');
    const alpha = await write(ref, { hq: 'Alpha' }, {}, 'agent-a');
    const beta = await write(ref, { hq: 'Beta' }, {}, 'agent-b');
    const r1 = await retraction(ref, beta);
    const s = await read(ref);
    expect(s.fields.hq).toStrictEqual({
      value: 'Alpha',
      policy: 'last-writer-wins',
      winner: {
        observationId: alpha,
        entityVersion: 1,
        agentId: 'agent-a',
        role: 'researcher',
        kind: 'assertion',
      },
      corrected: false,
      contested: [],
    });
    expect(s.retracted).toStrictEqual({ [beta]: r1 });
    const r2 = await retraction(ref, r1);
    const back = await read(ref);
    expect(back.fields.hq).toMatchObject({ value: 'Beta', winner: { observationId: beta } });
    expect(back.retracted).toStrictEqual({ [r1]: r2 });
    expect(back).toStrictEqual(await fullFold(ref));
  });

  it('lifting a quarantine restores exactly the view before it, taint-excluding reads included', async () => {
    const ref = company('lift');
    await write(ref, { hq: 'Alpha', tags: ['a'] });
    const beta = await write(ref, { hq: 'Beta', tags: ['b'], employees: 9 });
    const before = await read(ref);
    const { quarantine } = await retract(db.pool, beta, { reason: 'bad source', by: 'auditor' });
    const during = await read(ref);
    expect(during.fields.hq?.value).toBe('Alpha');
    expect(during.fields.tags?.value).toStrictEqual(['a']);
    expect(during.fields.employees).toBeUndefined();
    expect((await withoutTainted(db.pool, policyOf, during, await loadTaint(db.pool))).fields).toStrictEqual(
      during.fields,
    );
    await liftQuarantine(db.pool, quarantine.id, { by: 'auditor', reason: 'source was fine' });
    const after = await read(ref);
    expect(after.fields).toStrictEqual(before.fields);
    expect((await withoutTainted(db.pool, policyOf, after, await loadTaint(db.pool))).fields).toStrictEqual(
      before.fields,
    );
  });
});

describe('explicit null clears under every policy', () => {
  it('max: null clears and a later 7 wins; set-union: null clears the set and is never an element', async () => {
    const ref = company('null');
    await write(ref, { employees: 9, tags: ['a', 'b'] });
    await write(ref, { employees: null, tags: null });
    const cleared = await read(ref);
    expect([cleared.fields.employees?.value, cleared.fields.tags?.value]).toStrictEqual([null, null]);
    await write(ref, { employees: 7, tags: ['c'] });
    const s = await read(ref);
    expect(s.fields.employees).toMatchObject({ value: 7 });
    expect(s.fields.tags?.value).toStrictEqual(['c']);
    expect(s).toStrictEqual(await fullFold(ref));
  });
});

describe('set-union state is bounded; retraction stays exact; snapshot reads equal full re-reduction', () => {
  it('1,200 contributions of one element keep one entry; retractions reaching below snapshots refold from before them', async () => {
    const ref = company('union');
    const n = 1200;
    const ids = (
      await appendObservations(
        db.pool,
        registry,
        Array.from({ length: n }, (_, i) => ({
          ...ref,
          type: 'company.profile',
          fields: { tags: ['x'], employees: i },
        })),
        ctx(),
      )
    ).map((a) => a.id);
    const cold = stats();
    const s = await read(ref, { stats: cold });
    expect(s.fields.tags?.contributors).toStrictEqual({
      '"x"': { first: expect.objectContaining({ observationId: ids[0] }) as unknown, count: n },
    });
    expect(cold.snapshotsWritten).toBe(Math.floor(n / SNAPSHOT_EVERY));
    const { rows } = await db.pool.query<{ bytes: number }>(
      'select max(pg_column_size(state)) as bytes from cairn.entity_snapshots where entity_type = $1 and entity_id = $2',
      [ref.entityType, ref.entityId],
    );
    expect(rows[0]!.bytes).toBeLessThan(4000);

    // Retract the first contribution (below both snapshots): the read starts from version 0,
    // stores the state at the retraction, and the next read starts there.
    const r = await retraction(ref, ids[0]!);
    const widened = stats();
    const after = await read(ref, { stats: widened });
    expect(after.fields.tags?.contributors?.['"x"']).toMatchObject({
      first: { observationId: ids[1] },
      count: n - 1,
    });
    expect(after).toStrictEqual(await fullFold(ref));
    // The full contributor list is in the log.
    const all = await listContributors(db.pool, policyOf, ref, 'tags');
    expect(all['"x"']?.map((c) => c.observationId)).toStrictEqual(ids.slice(1));
    expect(widened).toMatchObject({ snapshotVersion: 0, folded: n + 1, snapshotsWritten: 1 });
    const next = stats();
    expect(await read(ref, { stats: next })).toStrictEqual(after);
    expect(next).toStrictEqual({ snapshotVersion: n + 1, folded: 0, snapshotsWritten: 0 });

    // Historical reads are unaffected by the later retraction; the restore is exact too.
    expect(await read(ref, { asOfVersion: 700 })).toStrictEqual(
      reduceEntity(ref, await getEntityHistory(db.pool, ref, { limit: 10_000 }), policyOf, {
        upToVersion: 700,
      }),
    );
    await retraction(ref, r);
    const restored = await read(ref);
    expect(restored.fields).toStrictEqual(s.fields);
    expect(restored).toStrictEqual(await fullFold(ref));
  });
});

describe("reads never depend on a worker's knowledge", () => {
  it('a worker that does not know the type folds with the stored policies, and its snapshots are right', async () => {
    const ref = company('unknown');
    await appendObservations(
      db.pool,
      registry,
      Array.from({ length: SNAPSHOT_EVERY }, (_, i) => ({
        ...ref,
        type: 'company.profile',
        fields: { employees: (i * 37) % 100, tags: [`t${i % 3}`] },
      })),
      ctx(),
    );
    const ignorant = policyResolverFor(new ObservationTypeRegistry());
    const s = stats();
    const state = await getEntityState(db.pool, ignorant, ref, { stats: s });
    expect(state.fields.employees).toMatchObject({ value: 99, policy: 'max' });
    expect(state.fields.tags?.value).toStrictEqual(['t0', 't1', 't2']);
    expect(s.snapshotsWritten).toBe(1);
    expect(state).toStrictEqual(await fullFold(ref));
    expect(await read(ref)).toStrictEqual(state); // the snapshot it wrote, read by a knowing worker
  });
});

describe('freshness reads record only the fields used', () => {
  it('a maxAgeMs read that looks at one field records that field, not every field (flag and omit)', async () => {
    const ref = company('fresh');
    await write(ref, { hq: 'Alpha' }, {}, 'agent-1', new Date(Date.now() - 7_200_000));
    await write(ref, { employees: 5 });
    const tracker = new ReadTracker({
      policyOf,
      read: (r, o) => getEntityState(db.pool, policyOf, r, o),
      withDb: (fn) => fn(db.pool),
    });
    const reader = withFreshness(tracker.entity.bind(tracker), (state, o) =>
      annotateFreshness(db.pool, state, o),
    );
    const flagged = await reader(ref, { maxAgeMs: 3_600_000 });
    expect(flagged.freshness.stale).toStrictEqual(['hq']);
    expect(flagged.fields.employees?.value).toBe(5);
    expect(tracker.entries()).toStrictEqual([{ ...ref, version: 2, fields: ['employees'] }]);

    const omitting = new ReadTracker({
      policyOf,
      read: (r, o) => getEntityState(db.pool, policyOf, r, o),
      withDb: (fn) => fn(db.pool),
    });
    const omitted = await withFreshness(omitting.entity.bind(omitting), (state, o) =>
      annotateFreshness(db.pool, state, o),
    )(ref, { maxAgeMs: 3_600_000, stale: 'omit' });
    expect(omitted.fields.hq).toBeUndefined();
    expect(omitting.entries()).toStrictEqual([{ ...ref, version: 2, fields: ['hq'] }]);
    expect(Object.keys(omitted.fields)).toStrictEqual(['employees']);
    expect(omitting.entries()[0]?.fields).toBeNull(); // enumerating is reading every field
  });
});
