/**
 * Snapshots are a cache: a read that starts from any snapshot must equal the full fold
 * (reduceEntity over the whole history) at every version, and a long history must be read by
 * folding only the tail after the newest snapshot.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { EntityState } from '../../src/shared/entityState';
import type { EntityRef, ObservationKind } from '../../src/shared/observation';
import { ObservationTypeRegistry, defineObservationType } from '../../src/shared/observationTypes';
import { policyResolverFor, reduceEntity, withdrawalsIn } from '../../src/shared/reducer';
import { appendObservations, type AppendContext, type AppendItem } from '../../src/store/observations/append';
import {
  foldLatest,
  getEntityHistory,
  getEntityState,
  latestQuery,
  latestStatement,
  type LatestRow,
  type ReadStats,
} from '../../src/store/observations/read';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { SNAPSHOT_EVERY, SNAPSHOT_FORMAT, saveSnapshots } from '../../src/store/observations/snapshots';
import { queryInline, withTransaction } from '../../src/store/pool';
import { readEntityInScope } from '../../src/store/scope';
import { testDatabase, type TestDatabase } from '../helpers/database';

const fields = {
  name: z.string().optional(),
  employees: z.number().int().optional(),
  low: z.number().int().optional(),
  tags: z.array(z.string()).optional(),
  founded: z.number().int().optional(),
  status: z.string().optional(),
};
// Two types declaring different policies for the same field names, so sequences cross policies.
const profile = defineObservationType({
  name: 'company.profile',
  version: 1,
  entity: 'company',
  fields,
  policies: {
    employees: 'max',
    low: 'min',
    tags: 'set-union',
    founded: 'first-writer-wins',
    status: 'reject-on-conflict',
  },
});
const alt = defineObservationType({
  name: 'company.alt',
  version: 1,
  entity: 'company',
  fields,
  policies: {
    name: 'first-writer-wins',
    employees: 'min',
    low: 'max',
    tags: 'last-writer-wins',
    status: 'reject-on-conflict',
  },
});
const registry = new ObservationTypeRegistry([profile, alt]);
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
function context(): AppendContext {
  calls++;
  return {
    provenance: {
      taskKey: 'snap',
      workflowId: 'wf',
      runId: 'run',
      activityId: `${calls}`,
      attempt: 1,
      agentId: `agent-${calls % 3}`,
      role: 'r',
    },
    idempotencyPrefix: `snap:${calls}:${randomUUID()}`,
    observedAt: new Date().toISOString(),
  };
}

const company = (id: string): EntityRef => ({
  entityType: 'company',
  entityId: `${id}-${randomUUID().slice(0, 8)}`,
});

async function fullHistory(ref: EntityRef) {
  const all = [];
  for (let from = 1; ;) {
    const page = await getEntityHistory(db.pool, ref, { fromVersion: from, limit: 10_000 });
    all.push(...page);
    if (page.length < 10_000) return all;
    from = page[page.length - 1]!.entityVersion + 1;
  }
}

const stats = (): ReadStats => ({ snapshotVersion: -1, folded: -1, snapshotsWritten: -1 });

type Op =
  | { op: 'write'; type: string; kind: ObservationKind; fields: Record<string, unknown> }
  | { op: 'correct'; target: number; fields: Record<string, unknown> }
  | { op: 'retract'; target: number };

const fieldsArb = fc.record(
  {
    name: fc.constantFrom('a', 'b', 'c'),
    employees: fc.integer({ min: 0, max: 9 }),
    low: fc.integer({ min: 0, max: 9 }),
    tags: fc.array(fc.constantFrom('x', 'y', 'z'), { maxLength: 2 }),
    founded: fc.integer({ min: 1900, max: 1903 }),
    status: fc.constantFrom('open', 'closed'),
  },
  { requiredKeys: [] },
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant('write' as const),
      type: fc.constantFrom('company.profile', 'company.alt'),
      kind: fc.constantFrom<ObservationKind>('assertion', 'inference', 'decision'),
      fields: fieldsArb,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('correct' as const), target: fc.nat(), fields: fieldsArb }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('retract' as const), target: fc.nat() }) },
);

/** Appends the ops in batches; corrections and retractions target rows of earlier batches. */
async function appendOps(ref: EntityRef, steps: { op: Op; newBatch: boolean }[]): Promise<number> {
  const stored: string[] = [];
  let version = 0;
  let batch: AppendItem[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const appended = await appendObservations(db.pool, registry, batch, context());
    stored.push(...appended.map((a) => a.id));
    version += appended.length;
    batch = [];
  };
  for (const { op, newBatch } of steps) {
    if (newBatch) await flush();
    const expectedVersion = version + batch.length;
    if (op.op !== 'write' && stored.length > 0) {
      const targetId = stored[op.target % stored.length]!;
      batch.push(
        op.op === 'correct'
          ? { ...ref, type: 'company.profile', kind: 'correction', targetId, fields: op.fields }
          : { ...ref, type: 'company.profile', kind: 'retraction', targetId, fields: {} },
      );
    } else {
      const w =
        op.op === 'write'
          ? op
          : {
              type: 'company.profile',
              kind: 'assertion' as const,
              fields: op.op === 'correct' ? op.fields : { name: 'seed' },
            };
      // reject-on-conflict fields need the compare-and-set version.
      batch.push({
        ...ref,
        type: w.type,
        kind: w.kind,
        fields: w.fields,
        ...('status' in w.fields ? { expectedVersion } : {}),
      });
    }
  }
  await flush();
  return version;
}

describe('snapshot-accelerated reads', () => {
  it('equal the full fold at every version, whatever snapshots exist (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ op: opArb, newBatch: fc.boolean() }), { minLength: 1, maxLength: 25 }),
        fc.uniqueArray(fc.nat(), { maxLength: 4 }),
        async (steps, snapshotPicks) => {
          const ref = company('prop');
          const n = await appendOps(ref, steps);
          const history = await fullHistory(ref);
          expect(history).toHaveLength(n);
          const snapshotVersions = [...new Set(snapshotPicks.map((p) => 1 + (p % n)))].sort((a, b) => a - b);
          await saveSnapshots(
            db.pool,
            ref,
            snapshotVersions.map((v) => ({
              version: v,
              state: reduceEntity(ref, history, policyOf, { upToVersion: v }),
            })),
          );

          const versionOf = new Map(history.map((o) => [o.id, o.entityVersion]));
          const links = history
            .filter((o) => o.kind === 'retraction')
            .map((o) => ({ ...o, targetVersion: versionOf.get(o.targetId ?? '') ?? null }));
          for (let v = 0; v <= n; v++) {
            const s = stats();
            const read = await getEntityState(db.pool, policyOf, ref, {
              asOfVersion: v,
              stats: s,
              writeSnapshots: false,
            });
            expect(read).toStrictEqual(reduceEntity(ref, history, policyOf, { upToVersion: v }));
            // The newest snapshot at or below v, unless a retraction after it reaches into it
            // (a withdrawn observation counts as never written): then one below its target.
            let from = Math.max(0, ...snapshotVersions.filter((sv) => sv <= v));
            for (;;) {
              const start = from;
              const reach = withdrawalsIn(
                links.filter((l) => l.entityVersion > start && l.entityVersion <= v),
                start,
              ).reachesBelow;
              if (reach === undefined) break;
              from = Math.max(0, ...snapshotVersions.filter((sv) => sv < reach));
            }
            expect(s).toEqual({ snapshotVersion: from, folded: v - from, snapshotsWritten: 0 });
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  it('the current state in one statement equals the full fold, whatever snapshots exist (property)', async () => {
    // getEntityState without asOf* folds latestQuery's row (foldLatest) or falls back to the
    // general path; either way the state must be the full fold of the whole history. Sent on
    // the pool (one message with its setup, queryInline), on a client in a transaction, and
    // scoped (readEntityInScope). A snapshot at the head (atHead) is returned as stored.
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ op: opArb, newBatch: fc.boolean() }), { minLength: 1, maxLength: 25 }),
        fc.uniqueArray(fc.nat(), { maxLength: 4 }),
        fc.boolean(),
        fc.boolean(),
        async (steps, snapshotPicks, writeSnapshots, atHead) => {
          const ref = company('latest');
          const n = await appendOps(ref, steps);
          const history = await fullHistory(ref);
          const snapshotVersions = [
            ...new Set([...snapshotPicks.map((p) => 1 + (p % n)), ...(atHead ? [n] : [])]),
          ];
          await saveSnapshots(
            db.pool,
            ref,
            snapshotVersions.map((v) => ({
              version: v,
              state: reduceEntity(ref, history, policyOf, { upToVersion: v }),
            })),
          );
          const full = reduceEntity(ref, history, policyOf);
          const s = stats();
          expect(await getEntityState(db.pool, policyOf, ref, { writeSnapshots, stats: s })).toStrictEqual(
            full,
          );
          expect(s.folded).toBe(n - s.snapshotVersion);
          // Twice: the first read may have stored a checkpoint the second starts from.
          expect(await getEntityState(db.pool, policyOf, ref, { minVersion: n })).toStrictEqual(full);
          expect(
            await withTransaction(db.pool, (c) =>
              getEntityState(c, policyOf, ref, { writeSnapshots: false }),
            ),
          ).toStrictEqual(full);
          expect(
            await readEntityInScope(db.pool, { read: ['task:snap'], write: [] }, 'test', policyOf, ref),
          ).toStrictEqual(full);
          const [row] = (await db.pool.query<LatestRow>(latestQuery(ref))).rows;
          const [inline] = (await queryInline<LatestRow>(db.pool, latestStatement(ref))).rows;
          expect(inline).toStrictEqual(row);
          expect(row?.head).toBe(n);
          const fast = await foldLatest(db.pool, policyOf, ref, row, { writeSnapshots: false });
          // Without retractions in its window the statement always answers alone.
          const window = history.filter((o) => o.entityVersion > (row?.snapshot_version ?? 0));
          if (!window.some((o) => o.kind === 'retraction')) expect(fast).toBeDefined();
          if (fast) expect(fast).toStrictEqual(full);
          if (atHead) {
            // The snapshot at the head, and nothing to fold: the statement fetched no rows.
            expect(row).toMatchObject({ snapshot_version: n, rows: [] });
            const at = stats();
            expect(await getEntityState(db.pool, policyOf, ref, { stats: at })).toStrictEqual(full);
            expect(at).toEqual({ snapshotVersion: n, folded: 0, snapshotsWritten: 0 });
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  it('ignore snapshots of another format and malformed ones', async () => {
    const ref = company('formats');
    const n = await appendOps(
      ref,
      [1, 2, 3, 4, 5, 6].map((i) => ({
        op: {
          op: 'write',
          type: 'company.profile',
          kind: 'assertion',
          fields: { employees: i, name: `n${i}` },
        },
        newBatch: false,
      })),
    );
    const history = await fullHistory(ref);
    const bogus = { ...ref, version: 4, fields: { name: { value: 'bogus' } }, retracted: {} };
    // As the owner: the application role cannot insert snapshots (migration 009).
    await db.adminPool.query(
      `insert into cairn.entity_snapshots (entity_type, entity_id, version, state)
       values ($1, $2, 4, $3), ($1, $2, 5, $4), ($1, $2, 2, $5), ($1, $2, 6, $6)`,
      [
        ref.entityType,
        ref.entityId,
        JSON.stringify({ format: SNAPSHOT_FORMAT + 1, state: bogus }),
        // Current format, but the state inside is of another version: not trusted.
        JSON.stringify({ format: SNAPSHOT_FORMAT, state: { ...bogus, version: 3 } }),
        JSON.stringify({
          format: SNAPSHOT_FORMAT,
          state: reduceEntity(ref, history, policyOf, { upToVersion: 2 }),
        }),
        // At the head, of another format: the one-statement read returns it, and must not use it.
        JSON.stringify({ format: SNAPSHOT_FORMAT + 1, state: { ...bogus, version: 6 } }),
      ],
    );
    const s = stats();
    expect(await getEntityState(db.pool, policyOf, ref, { stats: s })).toStrictEqual(
      reduceEntity(ref, history, policyOf),
    );
    expect(s).toEqual({ snapshotVersion: 2, folded: n - 2, snapshotsWritten: 0 });
  });

  it('fold only the tail of a long history, writing checkpoints as they pass them', async () => {
    const ref = company('long');
    const total = 20_000;
    const batchSize = 1000;
    let previous: string[] = [];
    for (let start = 0; start < total; start += batchSize) {
      const items: AppendItem[] = [];
      for (let i = start; i < start + batchSize; i++) {
        const k = i - start;
        if (previous.length > 0 && k === 10)
          items.push({
            ...ref,
            type: 'company.profile',
            kind: 'correction',
            targetId: previous[k]!,
            fields: { employees: i },
          });
        else if (k === 20)
          // Retracts item 5 of this batch (its id is known once the first part is appended):
          // a retraction reaching back across a checkpoint would make the fold start below it.
          items.push({ ...ref, type: 'company.profile', kind: 'retraction', targetId: '', fields: {} });
        else {
          // set-union contributors grow with every writer, so tags are written rarely.
          const tags = i % 100 === 0 ? { tags: [`t${i % 7}`] } : {};
          items.push({
            ...ref,
            type: i % 3 === 0 ? 'company.alt' : 'company.profile',
            fields: {
              name: `n${i % 11}`,
              employees: (i * 37) % 1000,
              low: (i * 13) % 500,
              founded: 1900 + (i % 5),
              ...tags,
            },
          });
        }
      }
      const head = (await appendObservations(db.pool, registry, items.slice(0, 20), context())).map(
        (a) => a.id,
      );
      items[20] = { ...items[20]!, targetId: head[5]! };
      const rest = (await appendObservations(db.pool, registry, items.slice(20), context())).map((a) => a.id);
      previous = [...head, ...rest];
    }
    let history = await fullHistory(ref);
    expect(history).toHaveLength(total);

    // Cold: folds everything once, leaving a checkpoint every SNAPSHOT_EVERY versions.
    const cold = stats();
    const state = await getEntityState(db.pool, policyOf, ref, { stats: cold });
    expect(cold).toEqual({ snapshotVersion: 0, folded: total, snapshotsWritten: total / SNAPSHOT_EVERY });
    expect(state).toStrictEqual(reduceEntity(ref, history, policyOf));

    // Warm: nothing to fold at the head, less than SNAPSHOT_EVERY anywhere in the past.
    const warm = stats();
    expect(await getEntityState(db.pool, policyOf, ref, { stats: warm })).toStrictEqual(state);
    expect(warm).toEqual({ snapshotVersion: total, folded: 0, snapshotsWritten: 0 });
    const past = stats();
    expect(await getEntityState(db.pool, policyOf, ref, { asOfVersion: 12_345, stats: past })).toStrictEqual(
      reduceEntity(ref, history, policyOf, { upToVersion: 12_345 }),
    );
    expect(past).toEqual({ snapshotVersion: 12_000, folded: 345, snapshotsWritten: 0 });

    // New appends: only they are folded.
    await appendObservations(
      db.pool,
      registry,
      Array.from({ length: 300 }, (_, i) => ({
        ...ref,
        type: 'company.profile',
        fields: { employees: 5000 + i },
      })),
      context(),
    );
    history = await fullHistory(ref);
    const tail = stats();
    expect(await getEntityState(db.pool, policyOf, ref, { stats: tail })).toStrictEqual(
      reduceEntity(ref, history, policyOf),
    );
    expect(tail).toEqual({ snapshotVersion: total, folded: 300, snapshotsWritten: 0 });

    // A checkpoint of an older reduction format is passed over and replaced.
    await db.adminPool.query(
      `update cairn.entity_snapshots set state = jsonb_build_object('format', 0, 'state', '{}'::jsonb) where entity_type = $1 and entity_id = $2 and version = $3`,
      [ref.entityType, ref.entityId, total],
    );
    const stale = stats();
    expect(await getEntityState(db.pool, policyOf, ref, { stats: stale })).toStrictEqual(
      reduceEntity(ref, history, policyOf),
    );
    expect(stale).toEqual({
      snapshotVersion: total - SNAPSHOT_EVERY,
      folded: SNAPSHOT_EVERY + 300,
      snapshotsWritten: 1,
    });
    const stored = await db.pool.query<{ format: number }>(
      `select (state->>'format')::int as format from cairn.entity_snapshots where entity_type = $1 and entity_id = $2 and version = $3`,
      [ref.entityType, ref.entityId, total],
    );
    expect(stored.rows).toEqual([{ format: SNAPSHOT_FORMAT }]);

    // Snapshots are only a cache: without them the read is the same, just slower.
    await db.pool.query('delete from cairn.entity_snapshots where entity_type = $1 and entity_id = $2', [
      ref.entityType,
      ref.entityId,
    ]);
    const none = stats();
    const uncached: EntityState = await getEntityState(db.pool, policyOf, ref, {
      asOfVersion: 999,
      writeSnapshots: false,
      stats: none,
    });
    expect(uncached).toStrictEqual(reduceEntity(ref, history, policyOf, { upToVersion: 999 }));
    expect(none).toEqual({ snapshotVersion: 0, folded: 999, snapshotsWritten: 0 });
  }, 60_000);
});
