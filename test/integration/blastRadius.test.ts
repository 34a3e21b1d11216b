/**
 * Blast radius on random derivation graphs: the recursive query equals a brute-force closure
 * computed here from the same graph (edges: derived_from, and read-set entries at or above an
 * observation's version on a field it wrote), depth limits included. Then retraction taints
 * exactly that closure, and lifting the quarantine restores the view from before.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ReadSetEntry } from '../../src/shared/readSets';
import { blastRadius } from '../../src/store/blastRadius';
import { getEntityState } from '../../src/store/observations/read';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { verifyLog } from '../../src/store/observations/verify';
import { liftQuarantine, loadTaint, retract, withoutTainted } from '../../src/store/quarantine';
import { testDatabase, type TestDatabase } from '../helpers/database';
import { commitStep, deal, receiptPolicies, receiptTypes } from '../helpers/readReceipts';

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
  await registerObservationTypes(db.pool, receiptTypes);
});
afterAll(async () => {
  await db?.drop();
});

const FIELDS = ['price', 'status', 'risk'] as const;

/** One step of the random graph: what it read (by entity index, version choice, fields) and wrote. */
const stepArb = fc.record({
  reads: fc.array(
    fc.record({
      entity: fc.nat(3),
      /** Which of the versions so far it read, in percent (0: before any). */
      at: fc.integer({ min: 0, max: 100 }),
      fields: fc.option(fc.subarray([...FIELDS], { minLength: 1 }), { nil: null }),
    }),
    { maxLength: 3 },
  ),
  writes: fc.array(
    fc.record({
      entity: fc.nat(3),
      fields: fc.subarray([...FIELDS], { minLength: 1 }),
      /** Indexes (mod the count so far) of earlier observations it derives from. */
      derivedFrom: fc.array(fc.nat(), { maxLength: 2 }),
    }),
    { minLength: 1, maxLength: 2 },
  ),
});

interface Node {
  id: string;
  entity: number;
  version: number;
  fields: string[];
  derivedFrom: string[];
  reads: ReadSetEntry[];
}

/** Shortest hop count from root to every reachable node, within maxDepth. */
function bruteForce(
  nodes: Node[],
  root: string,
  maxDepth: number,
  ent: (i: number) => string,
): Map<string, number> {
  const edges = (p: Node) =>
    nodes.filter(
      (x) =>
        x.id !== p.id &&
        (x.derivedFrom.includes(p.id) ||
          x.reads.some(
            (e) =>
              e.entityId === ent(p.entity) &&
              e.version >= p.version &&
              (e.fields === null || e.fields.some((f) => p.fields.includes(f))),
          )),
    );
  const depth = new Map([[root, 0]]);
  let frontier = [nodes.find((n) => n.id === root)!];
  for (let d = 1; d <= maxDepth && frontier.length > 0; d++) {
    const next: Node[] = [];
    for (const p of frontier)
      for (const x of edges(p))
        if (!depth.has(x.id)) {
          depth.set(x.id, d);
          next.push(x);
        }
    frontier = next;
  }
  return depth;
}

let graphs = 0;
/** How often the generated graphs exercised each kind of edge (so the property is not vacuous). */
const seen = { derived: 0, read: 0, deep: 0 };

it('equals a brute-force closure on random graphs; retraction taints exactly it and lifting restores the view', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(stepArb, { minLength: 2, maxLength: 12 }),
      fc.nat(),
      fc.integer({ min: 0, max: 6 }),
      async (steps, rootPick, maxDepth) => {
        const g = `g${graphs++}`;
        const ent = (i: number) => `${g}-${i}`;
        const versions = [0, 0, 0, 0];
        const nodes: Node[] = [];
        for (const [s, step] of steps.entries()) {
          const reads: ReadSetEntry[] = step.reads.map((r) => ({
            entityType: 'deal',
            entityId: ent(r.entity),
            version: Math.round((r.at / 100) * versions[r.entity]!),
            fields: r.fields,
          }));
          const items = step.writes.map((w) => ({
            entityType: 'deal',
            entityId: ent(w.entity),
            type: 'deal.facts',
            fields: Object.fromEntries(w.fields.map((f) => [f, f === 'price' ? s : `${g}:${s}`])),
            derivedFrom:
              nodes.length === 0 ? [] : [...new Set(w.derivedFrom.map((i) => nodes[i % nodes.length]!.id))],
          }));
          const { appended } = await commitStep(db.pool, `${g}-s${s}`, dedupe(reads), items);
          appended.forEach((o, i) => {
            const w = step.writes[i]!;
            versions[w.entity] = o.entityVersion;
            nodes.push({
              id: o.id,
              entity: w.entity,
              version: o.entityVersion,
              fields: w.fields,
              derivedFrom: items[i]!.derivedFrom,
              reads: dedupe(reads),
            });
          });
        }
        const root = nodes[rootPick % nodes.length]!.id;
        const expected = bruteForce(nodes, root, maxDepth, ent);

        const blast = await blastRadius(db.pool, root, { maxDepth, policyOf: receiptPolicies });
        expect(new Map(blast.nodes.map((n) => [n.observationId, n.depth]))).toEqual(expected);
        expect(blast.count).toBe(expected.size);
        expect(blast.truncated).toBe(false);
        for (const n of blast.nodes) if (n.via !== 'root') seen[n.via]++;
        if (blast.nodes.some((n) => n.depth >= 2)) seen.deep++;

        // Retraction: the taint is exactly the closure (at the default depth, which covers these graphs).
        const full = await blastRadius(db.pool, root, { policyOf: receiptPolicies });
        const before = await Promise.all(
          [0, 1, 2, 3].map((i) => getEntityState(db.pool, receiptPolicies, deal(ent(i)))),
        );
        const { quarantine } = await retract(db.pool, root, { reason: 'property test', by: 'tester' });
        const taint = await loadTaint(db.pool);
        expect(new Set(taint.marks.keys())).toEqual(new Set(full.nodes.map((n) => n.observationId)));
        await liftQuarantine(db.pool, quarantine.id, { by: 'tester', reason: 'done' });
        const after = await loadTaint(db.pool);
        expect(after.marks.size).toBe(0);
        // Lifted: nothing is excluded any more; entities other than the root's read as before.
        const rootEntity = nodes.find((n) => n.id === root)!.entity;
        for (const i of [0, 1, 2, 3]) {
          const now = await getEntityState(db.pool, receiptPolicies, deal(ent(i)));
          expect(await withoutTainted(db.pool, receiptPolicies, now, after)).toEqual(now);
          if (i !== rootEntity) expect(now).toEqual(before[i]);
        }
      },
    ),
    { numRuns: 30 },
  );
  expect(seen.derived).toBeGreaterThan(0);
  expect(seen.read).toBeGreaterThan(0);
  expect(seen.deep).toBeGreaterThan(0);
  expect((await verifyLog(db.pool)).problems).toEqual([]);
});

/** A step's read set holds each entity version once (fields united). */
function dedupe(entries: ReadSetEntry[]): ReadSetEntry[] {
  const out = new Map<string, ReadSetEntry>();
  for (const e of entries) {
    const key = `${e.entityId}@${e.version}`;
    const prev = out.get(key);
    if (!prev) out.set(key, e);
    else
      out.set(key, {
        ...e,
        fields:
          prev.fields === null || e.fields === null
            ? null
            : [...new Set([...prev.fields, ...e.fields])].sort(),
      });
  }
  return [...out.values()];
}

it('is cycle-safe and depth-limited even on read sets that claim impossible (future) versions', async () => {
  // A's read set claims it read cy-b at version 5 before B existed: A → B and B → A.
  const [a] = (
    await commitStep(
      db.pool,
      'cy-a',
      [{ entityType: 'deal', entityId: 'cy-b', version: 5, fields: null }],
      [{ entityType: 'deal', entityId: 'cy-a', type: 'deal.facts', fields: { price: 1 } }],
    )
  ).appended;
  const [b] = (
    await commitStep(
      db.pool,
      'cy-b',
      [{ entityType: 'deal', entityId: 'cy-a', version: 1, fields: ['price'] }],
      [{ entityType: 'deal', entityId: 'cy-b', type: 'deal.facts', fields: { price: 2 } }],
    )
  ).appended;
  const blast = await blastRadius(db.pool, a!.id, { maxDepth: 100, includeFields: false });
  expect(blast.nodes.map((n) => [n.observationId, n.depth])).toEqual([
    [a!.id, 0],
    [b!.id, 1],
  ]);
  expect((await blastRadius(db.pool, a!.id, { maxDepth: 0 })).count).toBe(1);
  const capped = await blastRadius(db.pool, a!.id, { limit: 1, includeFields: false });
  expect(capped).toMatchObject({ count: 1, truncated: true });
});
