/**
 * Read receipts and stale-decision detection on a real database: what a step read is stored
 * with the attempt and linked to what it wrote; a strict decision whose reads moved on is
 * refused (and the refusal recorded), a warn one is flagged; under real concurrency, of two
 * steps that read the same state and each change what the other read, exactly one wins.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StaleReadError } from '../../src/shared/errors';
import { appendObservations } from '../../src/store/observations/append';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { createPool, withTransaction } from '../../src/store/pool';
import { verifyLog } from '../../src/store/observations/verify';
import { listReadSets, readReceipt, readSetOfObservation, recordReadSet } from '../../src/store/readSets';
import { withScope } from '../../src/store/scope';
import type { ScopeGrant } from '../../src/shared/scopes';
import { listStaleRefusals, staleFlags } from '../../src/store/staleness';
import { testDatabase, type TestDatabase } from '../helpers/database';
import {
  commitStep,
  deal,
  fact,
  receiptPolicies,
  receiptTypes,
  stepContext,
  tracker,
} from '../helpers/readReceipts';

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
  await registerObservationTypes(db.pool, receiptTypes);
});
afterAll(async () => {
  await db?.drop();
});

describe('read receipts', () => {
  it('records what the step read (versions and the fields it looked at) and links its appends', async () => {
    await fact(db.pool, 'r1', { price: 100, status: 'open' });
    await fact(db.pool, 'r2', { price: 7 });
    const view = tracker(db.pool);
    const s1 = await view.entity(deal('r1'));
    expect(s1.fields.price?.value).toBe(100);
    expect('risk' in s1.fields).toBe(false); // absent fields read count too
    const s2 = await view.entity(deal('r2'));
    expect(Object.keys(s2.fields)).toEqual(['price']); // enumerating = every field
    const s3 = await view.entity(deal('r3'), { fields: ['status'] });
    expect(s3.version).toBe(0);
    expect(view.entries()).toEqual([
      { entityType: 'deal', entityId: 'r1', version: 1, fields: ['price', 'risk'] },
      { entityType: 'deal', entityId: 'r2', version: 1, fields: null },
      { entityType: 'deal', entityId: 'r3', version: 0, fields: ['status'] },
    ]);

    // Someone changes r1 afterwards; the receipt still shows what the step saw.
    await fact(db.pool, 'r1', { price: 120 });
    const { appended, receipt } = await commitStep(db.pool, 'rr', view.entries(), [
      {
        entityType: 'deal',
        entityId: 'r9',
        type: 'deal.decision',
        kind: 'decision',
        fields: { verdict: 'buy' },
        dependsOnReads: 'off',
      },
      { entityType: 'deal', entityId: 'r9', type: 'deal.facts', fields: { risk: 'low' } },
    ]);
    expect(receipt?.refused).toBe(false);
    for (const o of appended)
      expect((await readSetOfObservation(db.pool, o.id))?.id).toBe(receipt?.readSetId);

    const seen = await readReceipt(db.pool, receiptPolicies, appended[0]!.id);
    expect(seen?.readSet).toMatchObject({
      workflowId: 'wf-rr',
      activityId: 'step-rr',
      attempt: 1,
      role: 'analyst',
    });
    const r1 = seen!.entries.find((e) => e.entityId === 'r1')!;
    expect(r1).toMatchObject({ version: 1, currentVersion: 2, fields: ['price', 'risk'] });
    expect(r1.state.fields.price?.value).toBe(100); // as of the version read, not today's 120
  });

  it('keeps observations linked to the attempt that wrote them when a retry replays them', async () => {
    await fact(db.pool, 'p1', { price: 1 });
    const first = tracker(db.pool);
    await first.entity(deal('p1'));
    const item = { entityType: 'deal', entityId: 'p2', type: 'deal.facts', fields: { price: 2 } };
    const a1 = await commitStep(db.pool, 'replay', first.entries(), [item], 1);
    await fact(db.pool, 'p1', { price: 3 });
    const second = tracker(db.pool);
    await second.entity(deal('p1'));
    const a2 = await commitStep(db.pool, 'replay', second.entries(), [item], 2);
    expect(a2.appended[0]).toMatchObject({ id: a1.appended[0]!.id, replayed: true });
    const linked = await readSetOfObservation(db.pool, a1.appended[0]!.id);
    expect(linked).toMatchObject({ id: a1.receipt!.readSetId, attempt: 1 });
    expect(linked!.entries[0]).toMatchObject({ entityId: 'p1', version: 1 });
    // Both attempts' reads are kept.
    const sets = (await listReadSets(db.pool, { taskKey: 'receipts' })).filter(
      (r) => r.workflowId === 'wf-replay',
    );
    expect(sets.map((r) => r.attempt)).toEqual([1, 2]);
  });
});

describe('stale decisions', () => {
  it('refuses a strict decision when a field it read moved on, names the conflict and records the refusal', async () => {
    await fact(db.pool, 's1', { price: 10, status: 'open' });
    const view = tracker(db.pool);
    const seen = await view.entity(deal('s1'));
    void seen.fields.price;
    const other = await fact(db.pool, 's1', { price: 11 });

    const decide = () =>
      commitStep(db.pool, 'strict-1', view.entries(), [
        {
          entityType: 'deal',
          entityId: 's1',
          type: 'deal.decision',
          kind: 'decision',
          fields: { verdict: 'sell' },
        },
      ]);
    const err = await decide().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StaleReadError);
    const stale = err as StaleReadError;
    expect(stale.message).toContain('deal/s1 was read at version 1 but is now at version 2 (price changed)');
    expect(stale.conflicts).toEqual([
      {
        entityType: 'deal',
        entityId: 's1',
        versionRead: 1,
        currentVersion: 2,
        fields: ['price'],
        observationIds: [other],
      },
    ]);
    // Nothing was written; the refusal and the refused attempt's reads were.
    const { rows } = await db.pool.query(
      "select count(*)::int as n from cairn.observations where workflow_id = 'wf-strict-1'",
    );
    expect(rows[0].n).toBe(0);
    const [refusal] = await listStaleRefusals(db.pool, { workflowId: 'wf-strict-1' });
    expect(refusal).toMatchObject({
      readSetId: stale.readSetId,
      attempt: 1,
      conflicts: stale.conflicts,
      idempotencyKeys: ['wf-strict-1:step-strict-1:0'],
    });
  });

  it('ignores changes to fields the step did not read, and counts a retraction of what it read', async () => {
    const p = await fact(db.pool, 'u1', { price: 10 });
    const view = tracker(db.pool);
    void (await view.entity(deal('u1'))).fields.price;
    await fact(db.pool, 'u1', { status: 'closed' }); // not read: no conflict
    const ok = await commitStep(db.pool, 'untouched', view.entries(), [
      {
        entityType: 'deal',
        entityId: 'u2',
        type: 'deal.decision',
        kind: 'decision',
        fields: { verdict: 'hold' },
      },
    ]);
    expect(ok.receipt?.conflicts).toEqual([]);

    const view2 = tracker(db.pool);
    void (await view2.entity(deal('u1'))).fields.price;
    await fact(db.pool, 'u1', {}, { kind: 'retraction', targetId: p });
    await expect(
      commitStep(db.pool, 'retracted', view2.entries(), [
        {
          entityType: 'deal',
          entityId: 'u2',
          type: 'deal.decision',
          kind: 'decision',
          fields: { verdict: 'hold' },
        },
      ]),
    ).rejects.toThrow(/price changed/);
  });

  it('writes a warn decision and flags it stale; off does not check', async () => {
    await fact(db.pool, 'w1', { risk: 'low' });
    const view = tracker(db.pool);
    void (await view.entity(deal('w1'))).fields.risk;
    await fact(db.pool, 'w1', { risk: 'high' });
    const { appended } = await commitStep(db.pool, 'warn', view.entries(), [
      {
        entityType: 'deal',
        entityId: 'w1',
        type: 'deal.decision',
        kind: 'decision',
        fields: { verdict: 'go' },
        dependsOnReads: 'warn',
      },
      {
        entityType: 'deal',
        entityId: 'w2',
        type: 'deal.decision',
        kind: 'decision',
        fields: { verdict: 'go' },
        dependsOnReads: 'off',
      },
    ]);
    const flags = await staleFlags(
      db.pool,
      appended.map((o) => o.id),
    );
    expect([...flags.keys()]).toEqual([appended[0]!.id]);
    expect(flags.get(appended[0]!.id)!.conflicts[0]).toMatchObject({
      entityId: 'w1',
      versionRead: 1,
      currentVersion: 2,
      fields: ['risk'],
    });
  });

  it('refuses a decision that read an entity while it did not exist yet, once it does', async () => {
    const view = tracker(db.pool);
    void (await view.entity(deal('n1'))).fields.status;
    await fact(db.pool, 'n1', { status: 'open' });
    await expect(
      commitStep(db.pool, 'absent', view.entries(), [
        {
          entityType: 'deal',
          entityId: 'n2',
          type: 'deal.decision',
          kind: 'decision',
          fields: { verdict: 'x' },
        },
      ]),
    ).rejects.toBeInstanceOf(StaleReadError);
  });

  it('under real concurrency, exactly one of two steps that read the same state and change it wins (strict), or one is flagged (warn)', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          targets: fc.tuple(fc.constantFrom('e', 'd'), fc.constantFrom('e', 'd')),
          delays: fc.tuple(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 15 })),
          mode: fc.constantFrom('strict' as const, 'warn' as const),
        }),
        async ({ targets, delays, mode }) => {
          const id = `c${run++}`;
          const e = `${id}-e`;
          const d = `${id}-d`;
          await fact(db.pool, e, { price: 1, status: 'open' });
          await fact(db.pool, d, { price: 2, status: 'open' });
          // Both steps read E.status and D.status at the same versions before either commits.
          const views = [tracker(db.pool), tracker(db.pool)];
          for (const v of views) {
            void (await v.entity(deal(e))).fields.status;
            void (await v.entity(deal(d))).fields.status;
          }
          const outcomes = await Promise.allSettled(
            views.map(async (v, i) => {
              await new Promise((r) => setTimeout(r, delays[i]));
              const target = targets[i] === 'e' ? e : d;
              return commitStep(db.pool, `${id}-${i}`, v.entries(), [
                {
                  entityType: 'deal',
                  entityId: target,
                  type: 'deal.decision',
                  kind: 'decision',
                  fields: { status: `decided-by-${i}` },
                  dependsOnReads: mode,
                },
              ]);
            }),
          );
          if (mode === 'strict') {
            const won = outcomes.filter((o) => o.status === 'fulfilled');
            const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
            expect(won).toHaveLength(1);
            expect(lost).toHaveLength(1);
            expect(lost[0]!.reason).toBeInstanceOf(StaleReadError);
            const loser = outcomes.findIndex((o) => o.status === 'rejected');
            expect(await listStaleRefusals(db.pool, { workflowId: `wf-${id}-${loser}` })).toHaveLength(1);
          } else {
            expect(outcomes.every((o) => o.status === 'fulfilled')).toBe(true);
            const ids = outcomes.map(
              (o) =>
                (o as PromiseFulfilledResult<Awaited<ReturnType<typeof commitStep>>>).value.appended[0]!.id,
            );
            expect((await staleFlags(db.pool, ids)).size).toBe(1);
          }
        },
      ),
      { numRuns: 40 },
    );
    expect((await verifyLog(db.pool)).problems).toEqual([]);
  });
});

describe('entities read while absent', () => {
  const decision = (id: string, status: string) => ({
    entityType: 'deal',
    entityId: id,
    type: 'deal.decision',
    kind: 'decision' as const,
    fields: { status },
  });

  it('a strict decision on "it does not exist" waits for a writer creating it, then is refused', async () => {
    const view = tracker(db.pool);
    const absent = await view.entity(deal('ghost-1'));
    expect(absent.version).toBe(0);
    void absent.fields.price;
    // A writer has created ghost-1 but not committed when the decision's read set is recorded.
    let commitWriter!: () => void;
    const gate = new Promise<void>((r) => (commitWriter = r));
    let created!: () => void;
    const inserted = new Promise<void>((r) => (created = r));
    const writer = withTransaction(db.pool, async (c) => {
      await appendObservations(
        c,
        receiptTypes,
        [{ ...deal('ghost-1'), type: 'deal.facts', fields: { price: 5 } }],
        stepContext('ghost-writer'),
      );
      created();
      await gate;
    });
    await inserted;
    let settled = false;
    const decided = commitStep(db.pool, 'ghost-reader', view.entries(), [
      decision('ghost-out', 'go'),
    ]).finally(() => {
      settled = true;
    });
    decided.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 400));
    // Before: the decision committed at once, next to the entity's first observation.
    expect(settled).toBe(false);
    commitWriter();
    await writer;
    const err = await decided.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StaleReadError);
    expect((err as StaleReadError).conflicts).toMatchObject([
      { entityId: 'ghost-1', versionRead: 0, currentVersion: 1 },
    ]);
  });

  it('a writer creating an entity waits for a decision that read it absent, and no head is left behind', async () => {
    const view = tracker(db.pool);
    void (await view.entity(deal('ghost-2'))).fields.price;
    let commitReader!: () => void;
    const gate = new Promise<void>((r) => (commitReader = r));
    let recorded!: () => void;
    const checked = new Promise<void>((r) => (recorded = r));
    const reader = withTransaction(db.pool, async (c) => {
      const { rows } = await c.query<{ refused: boolean }>(
        `select refused from cairn.record_read_set('wf-g2', 'r', 'a', 1, 'receipts', 'analyst', 'agent',
           array['deal'], array['ghost-2'], array[0], array['{price}'], array['deal'], array['ghost-2-out'],
           array['wf-g2:a:0'], array['strict'])`,
      );
      recorded();
      await gate;
      return rows[0]?.refused;
    });
    await checked;
    let written = false;
    const writer = fact(db.pool, 'ghost-2', { price: 1 }).then(() => (written = true));
    await new Promise((r) => setTimeout(r, 400));
    expect(written).toBe(false);
    commitReader();
    expect(await reader).toBe(false);
    await writer;
    expect(written).toBe(true);
    // The placeholder of the entity only written by the reader is gone; the writer's head is real.
    const { rows } = await db.adminPool.query<{ entity_id: string; version: number }>(
      `select entity_id, version from cairn.entity_heads where entity_id in ('ghost-2', 'ghost-2-out') order by 1`,
    );
    expect(rows).toEqual([{ entity_id: 'ghost-2', version: 1 }]);
  });

  it('of two strict steps that each read absent what the other creates, exactly one commits (no write skew)', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 10 })),
        async (delays) => {
          const id = `skew${run++}`;
          const names = [`${id}-x`, `${id}-y`];
          const views = [tracker(db.pool), tracker(db.pool)];
          for (const [i, v] of views.entries()) void (await v.entity(deal(names[i]!))).fields.status;
          const outcomes = await Promise.allSettled(
            views.map(async (v, i) => {
              await new Promise((r) => setTimeout(r, delays[i]));
              // Step i read names[i] absent and creates the other one.
              return commitStep(db.pool, `${id}-${i}`, v.entries(), [decision(names[1 - i]!, `by-${i}`)]);
            }),
          );
          const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
          expect(lost).toHaveLength(1);
          expect(lost[0]!.reason).toBeInstanceOf(StaleReadError);
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('the evidence is append-only', () => {
  it('refuses to update or delete read sets, links, flags and refusals', async () => {
    for (const table of ['read_sets', 'read_set_entries', 'observation_read_sets', 'stale_refusals']) {
      await expect(db.adminPool.query(`delete from cairn.${table}`)).rejects.toThrow(/append-only/);
    }
    await expect(db.pool.query(`update cairn.read_sets set role = 'x'`)).rejects.toThrow(/permission denied/);
  });
});

describe('field names', () => {
  it('round-trip whatever characters they hold', async () => {
    const odd = ['a,b', 'quote"d', 'back\\slash', '{braces}', 'NULL', ' spaced '];
    const view = tracker(db.pool);
    const seen = await view.entity(deal('odd'));
    for (const name of odd) void seen.fields[name];
    const { appended } = await commitStep(db.pool, 'odd', view.entries(), [
      { entityType: 'deal', entityId: 'odd2', type: 'deal.facts', fields: { risk: 'low' } },
    ]);
    const set = await readSetOfObservation(db.pool, appended[0]!.id);
    expect(set?.entries[0]?.fields).toEqual([...odd].sort());
  });
});

describe('a strict read set at scale', () => {
  /**
   * Migration 024: the lock statement of cairn.record_read_set compared its keys with the heads'
   * columns under the "C" collation, which entity_heads_pkey cannot answer, so every strict or warn
   * read set scanned every head (32-39 ms per call at 50,000 heads). With sequential scans priced
   * out, the planner still has to scan when the index cannot serve; the counters of this
   * transaction tell which it did. A fresh session each time: plans are cached per session.
   */
  it('finds the heads it locks through their primary key, with any grant', async () => {
    const heads = 2_000;
    await appendObservations(
      db.pool,
      receiptTypes,
      Array.from({ length: heads }, (_, i) => ({
        entityType: 'deal',
        entityId: `scale-${i}`,
        type: 'deal.facts',
        fields: { price: i },
      })),
      stepContext('scale-fill'),
    );
    const read = Array.from({ length: 20 }, (_, i) => ({
      entityType: 'deal',
      entityId: `scale-${i * 97}`,
      version: 1,
      fields: ['price'],
    }));
    const grants: { name: string; grant: ScopeGrant; taskKey?: string }[] = [
      { name: 'every scope', grant: { read: ['*'], write: ['*'] } },
      {
        name: 'one task',
        grant: { read: ['global', 'task:receipts'], write: ['task:receipts'] },
        taskKey: 'receipts',
      },
    ];
    for (const { name, grant, taskKey } of grants) {
      const session = createPool(db.url, { max: 1, applicationName: 'cairn-test-plan' });
      try {
        const scans = await withScope(
          session,
          grant,
          async (c) => {
            await c.query('set local enable_seqscan = off');
            const recorded = await recordReadSet(c, {
              provenance: { ...stepContext(`scale-${name}`).provenance, taskKey: taskKey ?? 'receipts' },
              entries: read,
              writes: [deal('scale-0')],
              keys: [`scale-${name}:0`],
              modes: ['strict'],
            });
            expect(recorded).toMatchObject({ refused: false, conflicts: [] });
            const { rows } = await c.query<{ seq_scan: string; idx_scan: string }>(
              `select seq_scan, idx_scan from pg_stat_xact_user_tables
                where schemaname = 'cairn' and relname = 'entity_heads'`,
            );
            return rows[0]!;
          },
          { taskKey },
        );
        expect({ grant: name, seqScans: Number(scans.seq_scan) }).toEqual({ grant: name, seqScans: 0 });
        expect(Number(scans.idx_scan)).toBeGreaterThan(0);
      } finally {
        await session.end();
      }
    }
  });
});
