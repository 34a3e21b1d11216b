/**
 * Retraction and quarantine on a concrete story: a wrong fact, two steps that build on it (one by
 * reading it, one by deriving from that), one that read something else. Retracting the fact
 * taints exactly the first three; reads show which fields rest on tainted sources and can leave
 * them out; building on tainted state later is tainted too; lifting restores the view; the log
 * is never rewritten.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { blastRadius } from '../../src/store/blastRadius';
import { getEntityState } from '../../src/store/observations/read';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { verifyLog } from '../../src/store/observations/verify';
import {
  liftQuarantine,
  listQuarantines,
  loadTaint,
  retract,
  taintedFields,
  taintPath,
} from '../../src/store/quarantine';
import { testDatabase, type TestDatabase } from '../helpers/database';
import { commitStep, deal, fact, receiptPolicies, receiptTypes, tracker } from '../helpers/readReceipts';

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
  await registerObservationTypes(db.pool, receiptTypes);
});
afterAll(async () => {
  await db?.drop();
});

const state = (id: string) => getEntityState(db.pool, receiptPolicies, deal(id));

it('taints exactly the blast radius, shows it in reads, and lifting restores the view', async () => {
  await fact(db.pool, 'q2', { risk: 'low' });
  const wrong = await fact(db.pool, 'q1', { price: 100, status: 'open' });

  // A reads q1.price and decides on q2; B derives from A's decision; V reads q1.risk, a field
  // the wrong fact did not write.
  const a = tracker(db.pool);
  void (await a.entity(deal('q1'))).fields.price;
  const [decision] = (
    await commitStep(db.pool, 'qa', a.entries(), [
      {
        entityType: 'deal',
        entityId: 'q2',
        type: 'deal.decision',
        kind: 'decision',
        fields: { verdict: 'buy' },
      },
    ])
  ).appended;
  const [derived] = (
    await commitStep(
      db.pool,
      'qb',
      [],
      [
        {
          entityType: 'deal',
          entityId: 'q3',
          type: 'deal.facts',
          fields: { risk: 'high' },
          derivedFrom: [decision!.id],
        },
      ],
    )
  ).appended;
  const v = tracker(db.pool);
  void (await v.entity(deal('q1'))).fields.risk;
  const [unrelated] = (
    await commitStep(db.pool, 'qv', v.entries(), [
      { entityType: 'deal', entityId: 'q4', type: 'deal.facts', fields: { status: 'fine' } },
    ])
  ).appended;

  const before = { q2: await state('q2'), q3: await state('q3'), q4: await state('q4') };
  const q1Before = await state('q1');
  const blast = await blastRadius(db.pool, wrong, { policyOf: receiptPolicies });
  expect(blast.nodes.map((n) => [n.observationId, n.via, n.depth])).toEqual([
    [wrong, 'root', 0],
    [decision!.id, 'read', 1],
    [derived!.id, 'derived', 2],
  ]);
  expect(blast.fields.map((f) => `${f.entityId}.${f.field}`)).toEqual([
    'q1.price',
    'q1.status',
    'q2.verdict',
    'q3.risk',
  ]);
  expect(blast.taskKeys).toEqual(['receipts']);

  const { retraction, quarantine } = await retract(db.pool, wrong, {
    reason: 'misquoted price',
    by: 'auditor',
  });
  expect((await retract(db.pool, wrong, { reason: 'again', by: 'auditor' })).alreadyQuarantined).toBe(true);
  const taint = await loadTaint(db.pool);
  expect(new Set(taint.marks.keys())).toEqual(new Set([wrong, decision!.id, derived!.id]));
  expect(taint.marks.has(unrelated!.id)).toBe(false);
  expect(taintPath(taint, derived!.id).map((m) => m.observationId)).toEqual([
    wrong,
    decision!.id,
    derived!.id,
  ]);

  // Reads: which fields rest on tainted sources, and a view without them.
  expect(taintedFields(await state('q2'), taint).map((f) => f.field)).toEqual(['verdict']);
  const clean = tracker(db.pool);
  const q2 = await clean.entity(deal('q2'), { excludeTainted: true });
  expect(q2.fields.verdict).toBeUndefined();
  expect(q2.fields.risk?.value).toBe('low');
  expect(q2.version).toBe(before.q2.version);
  expect((await clean.entity(deal('q3'), { excludeTainted: true })).fields.risk).toBeUndefined();
  // The retracted fact itself is gone from q1's state (the reducer's part).
  expect((await state('q1')).retracted[wrong]).toBe(retraction.id);

  // Reading tainted state after the retraction taints the new write too; reading the
  // retracted entity after the retraction does not (it saw the state without the fact).
  const late = tracker(db.pool);
  void (await late.entity(deal('q2'))).fields.verdict;
  const [onTainted] = (
    await commitStep(db.pool, 'ql', late.entries(), [
      { entityType: 'deal', entityId: 'q5', type: 'deal.facts', fields: { status: 'copied' } },
    ])
  ).appended;
  const fresh = tracker(db.pool);
  void (await fresh.entity(deal('q1'))).fields.price;
  const [onClean] = (
    await commitStep(db.pool, 'qf', fresh.entries(), [
      { entityType: 'deal', entityId: 'q6', type: 'deal.facts', fields: { status: 'fresh' } },
    ])
  ).appended;
  const taintNow = await loadTaint(db.pool);
  expect(taintNow.marks.has(onTainted!.id)).toBe(true);
  expect(taintNow.marks.has(onClean!.id)).toBe(false);

  // Lifting: a row, not a delete; the view is back to what it was before the retraction.
  const lifted = await liftQuarantine(db.pool, quarantine.id, {
    by: 'auditor',
    reason: 'price was right after all',
  });
  expect(lifted.lifted).toMatchObject({ by: 'auditor' });
  await expect(liftQuarantine(db.pool, quarantine.id, { by: 'x', reason: 'y' })).rejects.toThrow(
    /already lifted/,
  );
  expect((await loadTaint(db.pool)).marks.size).toBe(0);
  const restored = tracker(db.pool);
  for (const id of ['q2', 'q3', 'q4'] as const) {
    expect(await restored.entity(deal(id), { excludeTainted: true })).toEqual(before[id]);
  }
  expect(await listQuarantines(db.pool, { active: false })).toHaveLength(1);

  // ...the retracted entity included: the lift retracted the quarantine's retraction.
  expect((await state('q1')).fields).toEqual(q1Before.fields);
  expect((await state('q1')).retracted).toEqual({ [retraction.id]: expect.any(String) as string });

  // Quarantining again after a lift needs a retraction of its own (the first one is withdrawn).
  const again = await retract(db.pool, wrong, { reason: 'wrong after all', by: 'auditor' });
  expect(again).toMatchObject({ alreadyQuarantined: false, retraction: { replayed: false } });
  expect(again.retraction.id).not.toBe(retraction.id);
  expect((await state('q1')).retracted[wrong]).toBe(again.retraction.id);
  expect((await loadTaint(db.pool)).marks.has(derived!.id)).toBe(true);

  expect((await verifyLog(db.pool)).problems).toEqual([]);
});

it('retracts into the scope the observation lives in', async () => {
  const teamFact = await fact(db.pool, 'team-1', { price: 5 }, { scope: 'team:deals' });
  const { retraction } = await retract(db.pool, teamFact, { reason: 'wrong', by: 'auditor' });
  const { rows } = await db.pool.query<{ scope: string; role: string; agent_id: string }>(
    'select scope, role, agent_id from cairn.observations where id = $1',
    [retraction.id],
  );
  expect(rows[0]).toEqual({ scope: 'team:deals', role: 'cairn', agent_id: 'auditor' });
  await expect(retract(db.pool, 'not-a-uuid', { reason: 'x', by: 'y' })).rejects.toThrow(/not an id/);
  await expect(retract(db.pool, teamFact, { reason: ' ', by: 'y' })).rejects.toThrow(/reason is required/);
});
