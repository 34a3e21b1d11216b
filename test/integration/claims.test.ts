/**
 * Claims on a real Postgres: grants, held answers, renewals, releases, takeovers with a new
 * fencing token, fenced appends refused once the token is stale, next-free resources with
 * SKIP LOCKED semantics, and a schema that refuses to rewrite claim history.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { FencingTokenStaleError } from '../../src/shared/errors';
import { defineObservationType, ObservationTypeRegistry } from '../../src/shared/observationTypes';
import {
  appendFenced,
  auditClaimEvents,
  checkFences,
  claim,
  completeWorkItem,
  listClaimEvents,
  listClaims,
  listWorkItems,
  nextFree,
  registerWorkItems,
  release,
  renew,
  type ClaimGrant,
} from '../../src/store/claims';
import type { AppendContext } from '../../src/store/observations/append';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { CLAIM_RECORD_QUERY, parseClaimRecord, timestamptzToIsoUtc } from '../../src/store/claims/rows';
import { withTransaction } from '../../src/store/pool';
import { CLAIM_RESULT_COLUMNS, CLAIM_RESULT_TYPES, parseClaimResult } from '../helpers/claimResultColumns';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

const note = defineObservationType({
  name: 'claim.note',
  version: 1,
  entity: 'doc',
  fields: { text: z.string() },
});
const registry = new ObservationTypeRegistry([note]);
let db: TestDatabase;
let seq = 0;

const ctx = (): AppendContext => ({
  provenance: {
    taskKey: 't',
    workflowId: 'wf',
    runId: 'run',
    activityId: 'a',
    attempt: 1,
    agentId: 'agent',
    role: 'writer',
  },
  idempotencyPrefix: `claims-test:${seq++}`,
  observedAt: new Date().toISOString(),
});
const item = (text: string) => ({ entityType: 'doc', entityId: 'd1', type: 'claim.note', fields: { text } });

/**
 * Leases that must still be live a statement or two later get LIVE_MS, generous enough for a loaded
 * CI machine (a 150 ms lease once lapsed between two statements there); LAPSE_MS of sleep outlasts
 * them. Leases that only need to lapse get 1 ms.
 */
const LIVE_MS = 2_000;
const LAPSE_MS = LIVE_MS + 200;

function granted(r: Awaited<ReturnType<typeof claim>>): ClaimGrant {
  if (!r.granted) throw new Error(`expected a grant, got ${JSON.stringify(r)}`);
  return r;
}

beforeAll(async () => {
  db = await createTestDatabase();
  await registerObservationTypes(db.pool, registry);
});

afterAll(async () => {
  await db?.drop();
});

describe('claim, renew, release', () => {
  it('grants to one holder and tells the others who holds it until when', async () => {
    const a = granted(await claim(db.pool, 'doc/1', { holder: 'A', ttlMs: 10_000 }));
    expect(a).toMatchObject({ outcome: 'granted', token: 1, holder: 'A' });
    expect(a.expiresInMs).toBeGreaterThan(9_000);
    const b = await claim(db.pool, 'doc/1', { holder: 'B', ttlMs: 10_000 });
    expect(b).toMatchObject({
      granted: false,
      outcome: 'held',
      holder: 'A',
      token: 1,
      expiresAt: a.expiresAt,
    });
    expect(b.expiresInMs).toBeGreaterThan(0);
    // The holder claiming again renews: same token, later expiry.
    const again = granted(await claim(db.pool, 'doc/1', { holder: 'A', ttlMs: 20_000 }));
    expect(again).toMatchObject({ outcome: 'renewed', token: 1 });
    expect(again.expiresAt > a.expiresAt).toBe(true);
  });

  it('refuses a renewal after expiry, and the next claimer takes over with a bigger token', async () => {
    const a = granted(await claim(db.pool, 'doc/2', { holder: 'A', ttlMs: LIVE_MS }));
    expect((await renew(db.pool, 'doc/2', { holder: 'A', token: a.token, ttlMs: LIVE_MS })).renewed).toBe(
      true,
    );
    await sleep(LAPSE_MS);
    const late = await renew(db.pool, 'doc/2', { holder: 'A', token: a.token, ttlMs: 10_000 });
    expect(late).toMatchObject({ renewed: false, reason: 'expired' });
    const b = granted(await claim(db.pool, 'doc/2', { holder: 'B', ttlMs: 10_000 }));
    expect(b).toMatchObject({ outcome: 'expired-takeover', token: a.token + 1, previousHolder: 'A' });
    expect(b.acquiredAt >= a.expiresAt).toBe(true);
    // A's token is superseded for good.
    expect(await renew(db.pool, 'doc/2', { holder: 'A', token: a.token, ttlMs: 100 })).toMatchObject({
      renewed: false,
      reason: 'superseded',
    });
  });

  it('refuses a release by anyone but the holder, and keeps the token growing across releases', async () => {
    const a = granted(await claim(db.pool, 'doc/3', { holder: 'A', ttlMs: 10_000 }));
    expect(await release(db.pool, 'doc/3', { holder: 'B', token: a.token })).toMatchObject({
      released: false,
      reason: 'not-holder',
    });
    // Naming the holder is not proof: the database refuses a release without the token.
    await expect(
      db.pool.query(`select (cairn.release_claim('doc/3', 'A', null)).outcome`),
    ).rejects.toMatchObject({ code: 'CNF02' });
    expect(await release(db.pool, 'doc/3', { holder: 'A', token: a.token + 5 })).toMatchObject({
      released: false,
      reason: 'never-granted',
    });
    expect(await claim(db.pool, 'doc/3', { holder: 'B', ttlMs: 10_000 })).toMatchObject({
      outcome: 'held',
      holder: 'A',
    });
    expect(await release(db.pool, 'doc/3', { holder: 'A', token: a.token })).toMatchObject({
      released: true,
    });
    expect(await release(db.pool, 'doc/3', { holder: 'A', token: a.token })).toMatchObject({
      released: false,
      reason: 'released',
    });
    const b = granted(await claim(db.pool, 'doc/3', { holder: 'B', ttlMs: 10_000 }));
    expect(b).toMatchObject({ outcome: 'granted', token: 2 });
    expect(await renew(db.pool, 'doc/3', { holder: 'A', token: a.token, ttlMs: 100 })).toMatchObject({
      renewed: false,
      reason: 'superseded',
    });

    const events = await listClaimEvents(db.pool, { prefix: 'doc/3' });
    expect(events.map((e) => [e.event, e.token, e.holder])).toEqual([
      ['granted', 1, 'A'],
      ['released', 1, 'A'],
      ['granted', 2, 'B'],
    ]);
  });

  it('has exactly one winner when many claim the same resource at once', async () => {
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => claim(db.pool, 'doc/race', { holder: `h${i}`, ttlMs: 10_000 })),
    );
    const winners = results.filter((r) => r.granted);
    expect(winners).toHaveLength(1);
    for (const r of results) expect(r).toMatchObject({ holder: winners[0]!.holder, token: 1 });
  });

  it('rejects bad arguments before touching the database', async () => {
    await expect(claim(db.pool, 'doc/x', { holder: 'A', ttlMs: 0 })).rejects.toThrow(/ttlMs/);
    await expect(claim(db.pool, '', { holder: 'A', ttlMs: 10 })).rejects.toThrow(/resource/);
    await expect(nextFree(db.pool, 'a/b', ['x'], { holder: 'A', ttlMs: 10 })).rejects.toThrow(/kind/);
  });
});

describe('fenced appends', () => {
  it('writes with the current token and refuses superseded, expired and released tokens, writing nothing', async () => {
    const a = granted(await claim(db.pool, 'doc/f1', { holder: 'A', ttlMs: LIVE_MS }));
    const [ok] = await appendFenced(db.pool, registry, [item('by A')], ctx(), {
      resource: 'doc/f1',
      token: a.token,
    });
    expect(ok?.replayed).toBe(false);

    await sleep(LAPSE_MS);
    const expired = appendFenced(db.pool, registry, [item('A, expired')], ctx(), {
      resource: 'doc/f1',
      token: a.token,
    });
    await expect(expired).rejects.toBeInstanceOf(FencingTokenStaleError);
    await expect(expired).rejects.toMatchObject({
      reason: 'expired',
      resource: 'doc/f1',
      token: 1,
      code: 'CairnFenceStale',
    });

    const b = granted(await claim(db.pool, 'doc/f1', { holder: 'B', ttlMs: 10_000 }));
    await expect(
      appendFenced(db.pool, registry, [item('A, superseded')], ctx(), { resource: 'doc/f1', token: a.token }),
    ).rejects.toMatchObject({
      name: 'FencingTokenStaleError',
      reason: 'superseded',
      current: { token: b.token, holder: 'B', expiresAt: b.expiresAt },
    });
    await release(db.pool, 'doc/f1', { holder: 'B', token: b.token });
    await expect(
      appendFenced(db.pool, registry, [item('B, released')], ctx(), { resource: 'doc/f1', token: b.token }),
    ).rejects.toMatchObject({ reason: 'released' });
    await expect(
      appendFenced(db.pool, registry, [item('never')], ctx(), { resource: 'doc/nobody', token: 1 }),
    ).rejects.toMatchObject({ reason: 'never-granted' });

    const { rows } = await db.pool.query<{ text: string }>(
      `select fields->>'text' as text from cairn.observations where type = 'claim.note' order by seq`,
    );
    expect(rows.map((r) => r.text)).toEqual(['by A']);
  });

  it('holds off a takeover until the fenced transaction ends', async () => {
    const a = granted(await claim(db.pool, 'doc/f2', { holder: 'A', ttlMs: LIVE_MS }));
    const client = await db.pool.connect();
    let takeover: Promise<Awaited<ReturnType<typeof claim>>> | undefined;
    let lastInside = '';
    try {
      await client.query('begin');
      await checkFences(client, [{ resource: 'doc/f2', token: a.token }]);
      await sleep(LAPSE_MS); // the lease expires while the writer still holds its fence
      let settled = false;
      takeover = claim(db.pool, 'doc/f2', { holder: 'B', ttlMs: 10_000 });
      void takeover.finally(() => (settled = true));
      await sleep(200);
      expect(settled).toBe(false);
      lastInside = (
        await client.query<{ t: string }>(
          `select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as t`,
        )
      ).rows[0]!.t;
      await client.query('commit');
    } finally {
      client.release();
    }
    const b = granted(await takeover);
    expect(b).toMatchObject({ outcome: 'expired-takeover', token: a.token + 1, previousHolder: 'A' });
    expect(b.acquiredAt > lastInside).toBe(true);
    await expect(
      appendFenced(db.pool, registry, [item('A, too late')], ctx(), { resource: 'doc/f2', token: a.token }),
    ).rejects.toMatchObject({ reason: 'superseded' });
  });

  it('lets a committed fenced write precede the next lease', async () => {
    const a = granted(await claim(db.pool, 'doc/f3', { holder: 'A', ttlMs: LIVE_MS }));
    const client = await db.pool.connect();
    let takeover: Promise<Awaited<ReturnType<typeof claim>>> | undefined;
    let recordedAt = '';
    try {
      await client.query('begin');
      await checkFences(client, [{ resource: 'doc/f3', token: a.token }]);
      await sleep(LAPSE_MS);
      takeover = claim(db.pool, 'doc/f3', { holder: 'B', ttlMs: 10_000 });
      await sleep(100);
      const { appendObservations } = await import('../../src/store/observations/append');
      const [obs] = await appendObservations(client, registry, [item('A, in time')], ctx());
      recordedAt = obs!.recordedAt;
      await client.query('commit');
    } finally {
      client.release();
    }
    const b = granted(await takeover);
    expect(b.outcome).toBe('expired-takeover');
    // The write was checked while A's lease was valid; B's lease begins after it committed.
    expect(recordedAt < b.acquiredAt).toBe(true);
  });

  it('stamps a release after the fenced transaction that held it off ends', async () => {
    const a = granted(await claim(db.pool, 'doc/f5', { holder: 'A', ttlMs: 10_000 }));
    const client = await db.pool.connect();
    let releasing: ReturnType<typeof release> | undefined;
    let lastInside = '';
    try {
      await client.query('begin');
      await checkFences(client, [{ resource: 'doc/f5', token: a.token }]);
      releasing = release(db.pool, 'doc/f5', { holder: 'A', token: a.token });
      await sleep(150);
      lastInside = (
        await client.query<{ t: string }>(
          `select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as t`,
        )
      ).rows[0]!.t;
      await client.query('commit');
    } finally {
      client.release();
    }
    const r = await releasing;
    if (!r.released) throw new Error('not released');
    // The lease ends after every write its token was allowed to make.
    expect(r.state.releasedAt! > lastInside).toBe(true);
  });

  it('needs a transaction when given a client', async () => {
    const a = granted(await claim(db.pool, 'doc/f4', { holder: 'A', ttlMs: 10_000 }));
    const client = await db.pool.connect();
    try {
      await expect(
        appendFenced(client, registry, [item('no tx')], ctx(), { resource: 'doc/f4', token: a.token }),
      ).rejects.toThrow(/transaction/);
      const written = await withTransaction(db.pool, (c) =>
        appendFenced(c, registry, [item('in tx')], ctx(), [{ resource: 'doc/f4', token: a.token }]),
      );
      expect(written).toHaveLength(1);
    } finally {
      client.release();
    }
  });
});

describe('next free resource', () => {
  it('grants the first free candidate, one per caller', async () => {
    const x = await nextFree(db.pool, 'src', ['a', 'b'], { holder: 'X', ttlMs: 60_000 });
    const y = await nextFree(db.pool, 'src', ['a', 'b'], { holder: 'Y', ttlMs: 60_000 });
    const z = await nextFree(db.pool, 'src', ['a', 'b'], { holder: 'Z', ttlMs: 60_000 });
    expect([x?.id, y?.id, z]).toEqual(['a', 'b', null]);
    expect(x).toMatchObject({ resource: 'src/a', kind: 'src', token: 1 });
  });

  it('takes over an expired candidate before a free one further down the list', async () => {
    // A 1 ms lease has lapsed by the next statement whatever the machine's load; a lease that
    // must still be live between two statements would make the test depend on that load.
    const x = await nextFree(db.pool, 'lapsed', ['a', 'b'], { holder: 'X', ttlMs: 1 });
    expect(x).toMatchObject({ id: 'a', outcome: 'granted', token: 1 });
    await sleep(20);
    const z = await nextFree(db.pool, 'lapsed', ['a', 'b'], { holder: 'Z', ttlMs: 60_000 });
    expect(z).toMatchObject({ id: 'a', outcome: 'expired-takeover', token: 2, previousHolder: 'X' });
  });

  it('hands each of many concurrent callers a different resource', async () => {
    const ids = Array.from({ length: 10 }, (_, i) => `r${i}`);
    const grants = await Promise.all(
      Array.from({ length: 25 }, (_, i) =>
        nextFree(db.pool, 'many', ids, { holder: `h${i}`, ttlMs: 10_000 }),
      ),
    );
    const got = grants.filter((g) => g !== null).map((g) => g.id);
    expect(got.sort()).toEqual([...ids].sort());
  });

  it('sends any candidate ids as themselves (quotes, backslashes, commas, braces, spaces, unicode)', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(
          fc.string({ minLength: 1, maxLength: 12, unit: 'binary' }).filter((s) => !s.includes('\u0000')),
          { minLength: 1, maxLength: 5 },
        ),
        async (ids) => {
          const kind = `quoted${run++}`;
          const got: string[] = [];
          for (let i = 0; i < ids.length; i++) {
            const g = await nextFree(db.pool, kind, ids, { holder: `h${i}`, ttlMs: 10_000 });
            got.push(g!.id);
            expect(g!.resource).toBe(`${kind}/${g!.id}`);
          }
          expect(got).toEqual(ids);
          expect(await nextFree(db.pool, kind, ids, { holder: 'late', ttlMs: 10_000 })).toBeNull();
        },
      ),
      { numRuns: 40 },
    );
  });

  it('follows a candidate list the caller changed since the last call (same array, same kind or not)', async () => {
    const ids = ['c1', 'c2'];
    expect((await nextFree(db.pool, 'mut', ids, { holder: 'A', ttlMs: 10_000 }))?.id).toBe('c1');
    ids[1] = 'c3';
    expect((await nextFree(db.pool, 'mut', ids, { holder: 'B', ttlMs: 10_000 }))?.id).toBe('c3');
    ids.push('c4');
    expect((await nextFree(db.pool, 'mut', ids, { holder: 'C', ttlMs: 10_000 }))?.id).toBe('c4');
    expect((await nextFree(db.pool, 'mut2', ids, { holder: 'D', ttlMs: 10_000 }))?.resource).toBe('mut2/c1');
    ids[0] = 'x'.repeat(301);
    await expect(nextFree(db.pool, 'mut', ids, { holder: 'E', ttlMs: 10_000 })).rejects.toThrow(
      /work item id/,
    );
    ids.length = 0;
    expect(await nextFree(db.pool, 'mut', ids, { holder: 'F', ttlMs: 10_000 })).toBeNull();
  });

  it('hands out registered work items oldest first, never one that is done', async () => {
    expect(await registerWorkItems(db.pool, 'jobs', ['j1', 'j2'])).toBe(2);
    expect(await registerWorkItems(db.pool, 'jobs', ['j1', 'j2', 'j3'])).toBe(1);
    const first = (await nextFree(db.pool, 'jobs', { workItems: true }, { holder: 'X', ttlMs: 10_000 }))!;
    expect(first.id).toBe('j1');
    await withTransaction(db.pool, (c) =>
      completeWorkItem(c, first.resource, { holder: 'X', token: first.token }),
    );
    expect(
      await withTransaction(db.pool, (c) =>
        completeWorkItem(c, first.resource, { holder: 'X', token: first.token }),
      ),
    ).toBe('already-done');
    await release(db.pool, first.resource, { holder: 'X', token: first.token });

    const second = (await nextFree(db.pool, 'jobs', { workItems: true }, { holder: 'Y', ttlMs: 100 }))!;
    expect(second.id).toBe('j2');
    await sleep(250);
    // Y's lease lapsed: it can no longer complete j2, and j2 goes to the next caller.
    await expect(
      withTransaction(db.pool, (c) =>
        completeWorkItem(c, second.resource, { holder: 'Y', token: second.token }),
      ),
    ).rejects.toMatchObject({ reason: 'expired' });
    const third = (await nextFree(db.pool, 'jobs', { workItems: true }, { holder: 'Z', ttlMs: 10_000 }))!;
    expect(third).toMatchObject({ id: 'j2', outcome: 'expired-takeover' });
    expect((await nextFree(db.pool, 'jobs', { workItems: true }, { holder: 'W', ttlMs: 10_000 }))?.id).toBe(
      'j3',
    );
    expect(await nextFree(db.pool, 'jobs', { workItems: true }, { holder: 'V', ttlMs: 10_000 })).toBeNull();
    expect((await listWorkItems(db.pool, 'jobs')).map((w) => [w.id, w.done])).toEqual([
      ['j1', true],
      ['j2', false],
      ['j3', false],
    ]);
  });
});

describe('listing and audit', () => {
  it('lists held claims by prefix with the database clock, and everything with all', async () => {
    await claim(db.pool, 'list/a', { holder: 'A', ttlMs: 60_000 });
    await claim(db.pool, 'list/b', { holder: 'B', ttlMs: 1 });
    await sleep(20);
    const held = await listClaims(db.pool, { prefix: 'list/' });
    expect(held.map((c) => [c.resource, c.holder, c.status])).toEqual([['list/a', 'A', 'held']]);
    expect(held[0]!.expiresInMs).toBeGreaterThan(50_000);
    const all = await listClaims(db.pool, { prefix: 'list/', all: true });
    expect(all.map((c) => c.status)).toEqual(['held', 'expired']);
    expect(all[1]!.expiresInMs).toBeLessThan(0);
  });

  it('finds no double grant in the history', async () => {
    expect(await auditClaimEvents(db.pool)).toMatchObject({ doubleGrants: 0, tokenGaps: 0 });
  });
});

describe('the database refuses to rewrite claims', () => {
  it('refuses the application role any direct write', async () => {
    await expect(db.pool.query(`update cairn.claims set token = token + 1`)).rejects.toThrow(
      /permission denied/,
    );
    await expect(
      db.pool.query(
        `insert into cairn.claim_events (resource, event, token, holder, at, expires_at) values ('x', 'granted', 1, 'h', now(), now())`,
      ),
    ).rejects.toThrow(/permission denied/);
  });

  it('refuses even the owner: tokens going back, grants over a live claim, holder swaps, deletes, edits of history', async () => {
    const own = granted(await claim(db.pool, 'own/1', { holder: 'A', ttlMs: 60_000 }));
    await release(db.pool, 'own/1', { holder: 'A', token: own.token });
    await claim(db.pool, 'own/1', { holder: 'A', ttlMs: 60_000 });
    const admin = db.adminPool;
    await expect(
      admin.query(`update cairn.claims set token = token - 1 where resource = 'own/1'`),
    ).rejects.toMatchObject({ code: 'CNF03' });
    await expect(
      admin.query(
        `update cairn.claims set token = token + 1, holder = 'B', acquired_at = clock_timestamp(), renewed_at = clock_timestamp() where resource = 'own/1'`,
      ),
    ).rejects.toThrow(/is held by a lease that is still live/);
    await expect(
      admin.query(`update cairn.claims set holder = 'B' where resource = 'own/1'`),
    ).rejects.toMatchObject({ code: 'CNF03' });
    await expect(admin.query(`delete from cairn.claims where resource = 'own/1'`)).rejects.toMatchObject({
      code: 'CNF03',
    });
    await expect(admin.query(`update cairn.claim_events set holder = 'B'`)).rejects.toMatchObject({
      code: 'CNF03',
    });
    await expect(admin.query(`delete from cairn.claim_events`)).rejects.toMatchObject({ code: 'CNF03' });
    await expect(admin.query(`truncate cairn.claim_events`)).rejects.toMatchObject({ code: 'CNF03' });
  });

  it('refuses the owner malformed rows: names, tokens, events, and a holder without a grant (migration 021)', async () => {
    const admin = db.adminPool;
    const bad = [
      // claims: resource and holder 1 to 512 characters, token ≥ 0 (domains)
      `insert into cairn.claims (resource) values ('')`,
      `insert into cairn.claims (resource) values (repeat('r', 513))`,
      `insert into cairn.claims (resource, holder, token, acquired_at) values ('shape/1', '', 1, now())`,
      `insert into cairn.claims (resource, token) values ('shape/2', -1)`,
      // the granted shape on insert (trigger): holder and grant time exactly when token > 0
      `insert into cairn.claims (resource, holder) values ('shape/3', 'h')`,
      `insert into cairn.claims (resource, token) values ('shape/4', 1)`,
      `insert into cairn.claims (resource, holder, token) values ('shape/5', 'h', 1)`,
      // claim events: a known event, token ≥ 1 (domains)
      `insert into cairn.claim_events (resource, event, token, holder, at, expires_at) values ('x', 'stolen', 1, 'h', now(), now())`,
      `insert into cairn.claim_events (resource, event, token, holder, at, expires_at) values ('x', 'granted', 0, 'h', now(), now())`,
    ];
    for (const sql of bad) await expect(admin.query(sql), sql).rejects.toMatchObject({ code: '23514' });
    // The granted shape on update (the guard): a granted claim cannot lose its holder or grant
    // time, nor a free one gain a holder without a grant.
    const g = granted(await claim(db.pool, 'shape/live', { holder: 'A', ttlMs: 60_000 }));
    await expect(
      admin.query(`update cairn.claims set acquired_at = null where resource = 'shape/live'`),
    ).rejects.toMatchObject({ code: expect.stringMatching(/^(23514|CNF03)$/) });
    await expect(
      admin.query(`update cairn.claims set holder = repeat('h', 513) where resource = 'shape/live'`),
    ).rejects.toMatchObject({ code: '23514' });
    await expect(
      admin.query(
        `update cairn.claims set previous_holder = 'p', acquired_at = null, holder = 'A' where resource = 'shape/live'`,
      ),
    ).rejects.toMatchObject({ code: expect.stringMatching(/^(23514|CNF03)$/) });
    await admin.query(`insert into cairn.claims (resource) values ('shape/free')`);
    await expect(
      admin.query(`update cairn.claims set holder = 'B' where resource = 'shape/free'`),
    ).rejects.toMatchObject({ code: expect.stringMatching(/^(23514|CNF03)$/) });
    await expect(
      admin.query(
        `update cairn.claims set token = 1, holder = null, acquired_at = now(), expires_at = now() + interval '1 minute' where resource = 'shape/free'`,
      ),
    ).rejects.toMatchObject({ code: '23514' });
    expect(
      (await admin.query(`select count(*)::int as n from cairn.claims where resource like 'shape/%'`)).rows[0]
        .n,
    ).toBe(2);
    expect(g.token).toBe(1);
  });
});

describe('claim results', () => {
  it('read timestamps from Postgres’ own text in any session time zone, to the microsecond (as to_char in UTC)', async () => {
    const client = await db.adminPool.connect();
    try {
      await fc.assert(
        fc.asyncProperty(
          // 1850 (local mean time offsets with seconds) to 2200, any microsecond.
          fc.bigInt({ min: -3_786_825_600_000_000n, max: 7_258_118_400_000_000n }),
          fc.constantFrom(
            'UTC',
            'Asia/Kolkata',
            'America/St_Johns',
            'Europe/Amsterdam',
            'Pacific/Chatham',
            'America/Los_Angeles',
          ),
          async (micros, zone) => {
            await client.query(`select set_config('TimeZone', $1, false)`, [zone]);
            const { rows } = await client.query<{ text: string; iso: string }>(
              `select t::text as text, to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as iso
                 from (select to_timestamp(0) + $1::bigint * interval '1 microsecond' as t) x`,
              [micros.toString()],
            );
            expect(timestamptzToIsoUtc(rows[0]!.text)).toBe(rows[0]!.iso);
          },
        ),
        { numRuns: 200 },
      );
      expect(timestamptzToIsoUtc('-infinity')).toBeNull();
      expect(() => timestamptzToIsoUtc('Mon Dec 07 17:05:09 2026 PST')).toThrow(/DateStyle ISO/);
    } finally {
      await client.query('reset TimeZone');
      client.release();
    }
  });
  it('decode the one-value record (round 4) exactly as the nine columns, for any values and time zone', async () => {
    const client = await db.adminPool.connect();
    // Any text a claim_result may hold: quotes, backslashes, commas, parentheses, white space, empty.
    const text = fc.option(
      fc
        .oneof(
          fc.string({ unit: 'binary', maxLength: 20 }),
          fc.string({
            unit: fc.constantFrom('"', '\\', ',', '(', ')', ' ', '\t', '\n', 'a', 'é'),
            maxLength: 8,
          }),
        )
        .map((v) => v.split('\u0000').join('')),
    );
    const micros = fc.option(fc.bigInt({ min: -3_786_825_600_000_000n, max: 7_258_118_400_000_000n }));
    const values = `row($1, $2, $3, $4::bigint,
        to_timestamp(0) + $5::bigint * interval '1 microsecond', to_timestamp(0) + $6::bigint * interval '1 microsecond',
        to_timestamp(0) + $7::bigint * interval '1 microsecond', to_timestamp(0) + $8::bigint * interval '1 microsecond',
        $9)::cairn.claim_result`;
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('granted', 'expired-takeover', 'renewed', 'held', 'released', 'refused', 'none'),
          text,
          text,
          fc.option(fc.bigInt({ min: 0n, max: BigInt(Number.MAX_SAFE_INTEGER) })),
          micros,
          micros,
          micros,
          fc.bigInt({ min: -3_786_825_600_000_000n, max: 7_258_118_400_000_000n }),
          text,
          fc.constantFrom(
            'UTC',
            'Asia/Kolkata',
            'America/St_Johns',
            'Pacific/Chatham',
            'America/Los_Angeles',
          ),
          async (outcome, resource, holder, token, acquired, expires, released, checked, previous, zone) => {
            await client.query(`select set_config('TimeZone', $1, false)`, [zone]);
            const params = [
              outcome,
              resource,
              holder,
              token,
              acquired,
              expires,
              released,
              checked,
              previous,
            ].map((v) => (typeof v === 'bigint' ? v.toString() : v));
            const one = await client.query({
              ...CLAIM_RECORD_QUERY,
              text: `select ${values} r`,
              values: params,
            });
            const nine = await client.query({
              text: `select ${CLAIM_RESULT_COLUMNS} from (select (${values}).*) r`,
              values: params,
              types: CLAIM_RESULT_TYPES,
            });
            const decoded = parseClaimRecord((one.rows[0] as unknown[])[0]);
            expect(decoded).toEqual(parseClaimResult(nine.rows[0]));
            expect(decoded.resource).toBe(resource);
            expect(decoded.holder).toBe(holder);
            expect(decoded.previous_holder).toBe(previous);
            expect(decoded.token).toBe(token === null ? null : Number(token));
          },
        ),
        { numRuns: 300 },
      );
    } finally {
      await client.query('reset TimeZone');
      client.release();
    }
  });
});
