/**
 * Concurrency laws of the append, on a real database with several connections at once:
 * whatever the interleaving, each entity's versions are exactly 1..n, the hash chain links, an
 * append and its retry racing each other write each item once, and replaying everything is a
 * no-op that returns the same ids.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { defineObservationType, ObservationTypeRegistry } from '../../src/shared/observationTypes';
import {
  appendObservations,
  type AppendContext,
  type AppendedObservation,
  type AppendItem,
} from '../../src/store/observations/append';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { testDatabase, type TestDatabase } from '../helpers/database';

const reading = defineObservationType({
  name: 'sensor.reading',
  version: 1,
  entity: 'sensor',
  fields: { value: z.int() },
});
const registry = new ObservationTypeRegistry([reading]);
const ENTITIES = ['e0', 'e1', 'e2', 'e3'];

let db: TestDatabase;
let runs = 0;

beforeAll(async () => {
  db = await testDatabase();
  await registerObservationTypes(db.pool, registry);
});

afterAll(async () => {
  await db?.drop();
});

const ctx = (prefix: string, attempt: number): AppendContext => ({
  provenance: {
    taskKey: 'conc',
    workflowId: prefix,
    runId: 'r',
    activityId: prefix,
    attempt,
    agentId: `agent-${attempt}`,
    role: 'sensor',
  },
  idempotencyPrefix: prefix,
  observedAt: new Date().toISOString(),
});

/** Batches of 1–5 items over a few entities: a mix of the single-item and the batch path. */
const appendsArb = fc.array(
  fc.array(
    fc.record({ entity: fc.constantFrom(...ENTITIES), value: fc.integer({ min: -1000, max: 1000 }) }),
    { minLength: 1, maxLength: 5 },
  ),
  { minLength: 2, maxLength: 10 },
);

interface Row {
  id: string;
  entity_id: string;
  entity_version: number;
  idempotency_key: string;
  content_hash: string;
  prev_hash: string;
  chain_hash: string;
  /** In the link since migration 010. */
  provenance_hash: string | null;
}

async function rowsOf(prefix: string): Promise<Row[]> {
  const { rows } = await db.pool.query<Row>(
    `select id, entity_id, entity_version, idempotency_key, content_hash, prev_hash, chain_hash, provenance_hash
     from cairn.observations where entity_type = 'sensor' and entity_id like $1 || '-%'
     order by entity_id, entity_version`,
    [prefix],
  );
  return rows;
}

it('keeps versions gapless, chains intact and retries exactly-once under concurrent appends', async () => {
  await fc.assert(
    fc.asyncProperty(appendsArb, async (appends) => {
      const run = `run${++runs}`;
      const batches: AppendItem[][] = appends.map((items) =>
        items.map((i) => ({
          entityType: 'sensor',
          entityId: `${run}-${i.entity}`,
          type: 'sensor.reading',
          fields: { value: i.value },
        })),
      );
      const append = (j: number, attempt: number) =>
        appendObservations(db.pool, registry, batches[j]!, ctx(`${run}:a${j}`, attempt));

      // Every append races its own retry (attempt 2), all appends at once.
      const raced = await Promise.all(batches.map((_, j) => Promise.all([append(j, 1), append(j, 2)])));

      // Each item was written once: both calls agree on the id, exactly one of them wrote it.
      const results: AppendedObservation[][] = [];
      for (const [a, b] of raced) {
        expect(b.map((o) => o.id)).toEqual(a.map((o) => o.id));
        a.forEach((o, i) => expect([o.replayed, b[i]!.replayed].sort()).toEqual([false, true]));
        results.push(a);
      }

      const rows = await rowsOf(run);
      const total = batches.reduce((n, b) => n + b.length, 0);
      expect(rows).toHaveLength(total);

      // Per entity: versions exactly 1..n, and every link recomputes.
      const byEntity = new Map<string, Row[]>();
      for (const r of rows) byEntity.set(r.entity_id, [...(byEntity.get(r.entity_id) ?? []), r]);
      for (const [entityId, list] of byEntity) {
        expect(list.map((r) => r.entity_version)).toEqual(list.map((_, i) => i + 1));
        let prev = '';
        for (const r of list) {
          expect(r.prev_hash).toBe(prev);
          expect(r.chain_hash).toBe(
            createHash('sha256')
              .update(prev + r.content_hash + (r.provenance_hash ?? ''), 'utf8')
              .digest('hex'),
          );
          prev = r.chain_hash;
        }
        const head = await db.pool.query(
          `select version, chain_hash from cairn.entity_heads where entity_type = 'sensor' and entity_id = $1`,
          [entityId],
        );
        expect(head.rows).toEqual([{ version: list.length, chain_hash: prev }]);
      }

      // What the calls returned is what is stored, and within one append an entity's items
      // take consecutive versions in item order (the batch is atomic and sequential).
      const byId = new Map(rows.map((r) => [r.id, r]));
      for (const result of results) {
        for (const o of result)
          expect(byId.get(o.id)).toMatchObject({
            entity_version: o.entityVersion,
            idempotency_key: o.idempotencyKey,
          });
        const seen = new Map<string, number>();
        for (const o of result) {
          const last = seen.get(o.entityId);
          if (last !== undefined) expect(o.entityVersion).toBe(last + 1);
          seen.set(o.entityId, o.entityVersion);
        }
      }

      // Replaying everything, concurrently, from a later attempt: same ids, all flagged, no rows.
      const replayed = await Promise.all(batches.map((_, j) => append(j, 3)));
      replayed.forEach((r, j) => expect(r).toEqual(results[j]!.map((o) => ({ ...o, replayed: true }))));
      expect(await rowsOf(run)).toEqual(rows);
    }),
    { numRuns: 20 },
  );
});
