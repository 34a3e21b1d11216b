/**
 * minVersion waits happen outside any transaction and are woken by NOTIFY on head changes
 * (migration 012; since 018 only for entities someone registered a wait for), not by polling: with the fallback poll set to 30 s, a waiter still returns
 * right after the append commits, and meanwhile no connection of its pool is idle in a transaction.
 */
import { Client, type Notification, type Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineObservationType, ObservationTypeRegistry } from '../../src/shared/observationTypes';
import { appendObservations, type AppendContext } from '../../src/store/observations/append';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { headKey, HEADS_CHANNEL } from '../../src/store/headWait';
import { createPool, withTransaction } from '../../src/store/pool';
import { readEntityInScope } from '../../src/store/scope';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

const note = defineObservationType({
  name: 'wait.note',
  version: 1,
  entity: 'memo',
  fields: { text: z.string() },
});
const registry = new ObservationTypeRegistry([note]);
const policyOf = (type: string, v: number, field: string) => registry.policyOf(type, v, field);
const grant = { read: ['global'], write: ['global'] };

let db: TestDatabase;
const pools: Pool[] = [];
let calls = 0;
function ctx(): AppendContext {
  calls++;
  return {
    provenance: {
      taskKey: 't',
      workflowId: 'wf',
      runId: 'run',
      activityId: `a${calls}`,
      attempt: 1,
      agentId: 'a',
      role: 'w',
    },
    idempotencyPrefix: `wait:${calls}`,
    observedAt: new Date().toISOString(),
  };
}
const append = (entityId: string, text: string, into: Parameters<typeof appendObservations>[0] = db.pool) =>
  appendObservations(
    into,
    registry,
    [{ entityType: 'memo', entityId, type: 'wait.note', fields: { text }, scope: 'global' }],
    ctx(),
  );

beforeAll(async () => {
  db = await createTestDatabase();
  await registerObservationTypes(db.pool, registry);
});
afterAll(async () => {
  await Promise.allSettled(pools.map((p) => p.end()));
  await db?.drop();
});

async function inTransaction(app: string): Promise<number> {
  const { rows } = await db.adminPool.query<{ n: number }>(
    `select count(*)::int as n from pg_stat_activity where application_name = $1 and state like 'idle in transaction%'`,
    [app],
  );
  return rows[0]!.n;
}

describe('minVersion waits', () => {
  it('hold no transaction while waiting and wake on the append’s NOTIFY, not a poll', async () => {
    const app = `cairn-wait-${Date.now()}`;
    const pool = createPool(db.url, { max: 2, applicationName: app, headPollMaxMs: 30_000 });
    pools.push(pool);
    const ref = { entityType: 'memo', entityId: 'w1' };
    await append('w1', 'one');
    const started = Date.now();
    const read = readEntityInScope(pool, grant, 'w', policyOf, ref, { minVersion: 2, waitMs: 20_000 });
    // The checks back off 10, 20, 40 … ms: after 5.5 s the waiter is in a sleep of 5.12 s that
    // ends 10.2 s after the start at the earliest (a slow machine only delays it), so a poll
    // could only see the append at least 4.7 s after it.
    await settle(5_500);
    expect(await inTransaction(app)).toBe(0);
    const { rows } = await db.adminPool.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity where application_name = 'cairn-listen'`,
    );
    expect(rows[0]!.n).toBeGreaterThanOrEqual(1);
    // The waiter asked writers to notify it (migration 018: no registration, no NOTIFY).
    const { rows: registered } = await db.adminPool.query<{ n: number }>(
      'select count(*)::int as n from cairn.head_waiters where key = $1 and expires_at > now()',
      [headKey(ref)],
    );
    expect(registered[0]!.n).toBe(1);
    const appended = Date.now();
    await append('w1', 'two');
    const state = await read;
    expect(state.version).toBe(2);
    expect(state.fields.text?.value).toBe('two');
    // Only the notification explains a wake this soon: no poll could come before 10.2 s. (With a
    // 3 s wait the bound was 4.5 s, which a loaded machine could pass while the code was right.)
    expect(Date.now() - appended).toBeLessThan(4_000);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('is bounded by waitMs, and polls outside transactions when LISTEN is off', async () => {
    const app = `cairn-poll-${Date.now()}`;
    const pool = createPool(db.url, { max: 2, applicationName: app, listenUrl: null });
    pools.push(pool);
    await append('w2', 'one');
    const started = Date.now();
    const late = readEntityInScope(
      pool,
      grant,
      'w',
      policyOf,
      { entityType: 'memo', entityId: 'w2' },
      { minVersion: 5, waitMs: 600 },
    );
    await expect(late).rejects.toMatchObject({ name: 'VersionNotReachedError', currentVersion: 1 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
    // Ten times waitMs: room for a loaded machine, none for a wait that ignores waitMs.
    expect(Date.now() - started).toBeLessThan(6_000);
    const read = readEntityInScope(
      pool,
      grant,
      'w',
      policyOf,
      { entityType: 'memo', entityId: 'w2' },
      { minVersion: 2, waitMs: 10_000 },
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(await inTransaction(app)).toBe(0);
    await append('w2', 'two');
    expect((await read).version).toBe(2);
  });
});

/** A plain LISTEN session on the heads channel, recording what it receives. */
async function listen(): Promise<{
  client: Client;
  got: string[];
  flush(): Promise<void>;
  end(): Promise<void>;
}> {
  const client = new Client({ connectionString: db.url, application_name: 'cairn-test-listen' });
  const got: string[] = [];
  client.on('notification', (n: Notification) => {
    if (n.channel === HEADS_CHANNEL && n.payload !== undefined) got.push(n.payload);
  });
  await client.connect();
  await client.query(`LISTEN ${HEADS_CHANNEL}`);
  let flushes = 0;
  /**
   * Returns once every notification committed before the call has been received: a marker sent
   * after them arrives after them (Postgres delivers notifications in commit order). A fixed
   * wait (400 ms) was a guess a loaded machine could miss; a marker is no key anyone waits for.
   */
  async function flush(): Promise<void> {
    const marker = `flush-${process.pid}-${++flushes}`;
    await db.adminPool.query('select pg_notify($1, $2)', [HEADS_CHANNEL, marker]);
    await expect.poll(() => got.includes(marker), { timeout: 30_000, interval: 10 }).toBe(true);
    got.splice(got.indexOf(marker), 1);
  }
  return { client, got, flush, end: () => client.end() };
}
const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('head notifications only for waiters (migration 018)', () => {
  it('an append nobody waits for sends no NOTIFY; a registered key does, until it ends or expires', async () => {
    const l = await listen();
    try {
      const key = headKey({ entityType: 'memo', entityId: 'q1' });
      await append('q1', 'one');
      await append('q1', 'two');
      await l.flush();
      expect(l.got).toEqual([]);

      const { rows } = await l.client.query<{ id: string }>('select cairn.head_wait_begin($1, 60000) as id', [
        key,
      ]);
      await append('q1', 'three');
      await append('q2', 'other entity');
      await l.flush();
      expect(l.got).toEqual([key]);

      await l.client.query('select cairn.head_wait_end($1)', [rows[0]!.id]);
      const { rows: left } = await db.adminPool.query<{ n: number }>(
        'select count(*)::int as n from cairn.head_waiters where key = $1',
        [key],
      );
      expect(left[0]!.n).toBe(0);
      await append('q1', 'four');
      await l.flush();
      expect(l.got).toEqual([key]);

      // A registration past its expiry is ignored (and swept by the next registration).
      await l.client.query('select cairn.head_wait_begin($1, 1)', [key]);
      await settle(50);
      await append('q1', 'five');
      await l.flush();
      expect(l.got).toEqual([key]);
    } finally {
      await l.end();
    }
  });

  it('the batch path notifies a waiter once per moved head, and only for the heads waited for', async () => {
    const l = await listen();
    try {
      const k3 = headKey({ entityType: 'memo', entityId: 'q3' });
      await l.client.query('select cairn.head_wait_begin($1, 60000)', [k3]);
      await appendObservations(
        db.pool,
        registry,
        ['q3', 'q4', 'q3'].map((entityId, i) => ({
          entityType: 'memo',
          entityId,
          type: 'wait.note',
          fields: { text: `b${i}` },
          scope: 'global',
        })),
        ctx(),
      );
      await l.flush();
      expect(l.got).toEqual([k3]);
    } finally {
      await l.end();
    }
  });

  it('with the registrations table empty on disk the trigger is skipped, and the next registration is still notified', async () => {
    const l = await listen();
    try {
      // Every registration gone and the table truncated by vacuum: no page, so the head
      // trigger's WHEN (migration 020) skips it (its calls are counted with track_functions).
      await db.adminPool.query('delete from cairn.head_waiters');
      await db.adminPool.query('vacuum cairn.head_waiters');
      const size = await db.adminPool.query<{ n: string }>(
        `select pg_relation_size('cairn.head_waiters') as n`,
      );
      expect(Number(size.rows[0]!.n)).toBe(0);
      const owner = await db.adminPool.connect();
      try {
        await owner.query(`set track_functions = 'all'`);
        // The trigger function's calls in one transaction of the owner's session, appending
        // to a new entity and then to the same one (the insert and the update trigger).
        const triggerCalls = async (entityId: string) => {
          await owner.query('begin');
          try {
            for (const text of ['x', 'y'])
              await appendObservations(
                owner,
                registry,
                [{ entityType: 'memo', entityId, type: 'wait.note', fields: { text }, scope: 'global' }],
                ctx(),
              );
            const { rows } = await owner.query<{ n: string | null }>(
              `select pg_stat_get_xact_function_calls('cairn.notify_head_moved'::regproc) as n`,
            );
            return Number(rows[0]!.n ?? 0);
          } finally {
            await owner.query('commit');
          }
        };
        expect(await triggerCalls('e1')).toBe(0);

        // A registration (any key) gives the table a page: the trigger runs again, for every
        // moved head, and notifies the registered one.
        const key = headKey({ entityType: 'memo', entityId: 'e1' });
        await l.client.query('select cairn.head_wait_begin($1, 60000)', [key]);
        expect(await triggerCalls('e2')).toBe(2);
        await append('e1', 'z');
        await l.flush();
        expect(l.got).toEqual([key]);
      } finally {
        owner.release();
      }
    } finally {
      await l.end();
    }
  });

  it('the application role cannot touch registrations but through the functions, and only its own', async () => {
    const key = headKey({ entityType: 'memo', entityId: 'q5' });
    await expect(db.pool.query('select * from cairn.head_waiters')).rejects.toMatchObject({ code: '42501' });
    await expect(
      db.pool.query(
        `insert into cairn.head_waiters (key, expires_at) values ($1, now() + interval '1 hour')`,
        [key],
      ),
    ).rejects.toMatchObject({ code: '42501' });
    await expect(db.pool.query('select cairn.head_wait_begin($1, 1000)', ['short'])).rejects.toMatchObject({
      code: '22023',
    });
    const mine = await db.adminPool.query<{ id: string }>('select cairn.head_wait_begin($1, 60000) as id', [
      key,
    ]);
    // Another session (the pool's) ends nothing of this one's.
    await db.pool.query('select cairn.head_wait_end($1)', [mine.rows[0]!.id]);
    const { rows } = await db.adminPool.query<{ n: number }>(
      'select count(*)::int as n from cairn.head_waiters where id = $1',
      [mine.rows[0]!.id],
    );
    expect(rows[0]!.n).toBe(1);
    await db.adminPool.query('delete from cairn.head_waiters where id = $1', [mine.rows[0]!.id]);
  });

  it('a waiter registered after the writer’s trigger ran still gets its answer, by poll', async () => {
    const app = `cairn-race-${Date.now()}`;
    const pool = createPool(db.url, { max: 2, applicationName: app, headPollMaxMs: 200 });
    pools.push(pool);
    const ref = { entityType: 'memo', entityId: 'q6' };
    const key = headKey(ref);
    await append('q6', 'one');
    const l = await listen();
    try {
      let read: Promise<{ version: number }> | undefined;
      await withTransaction(db.pool, async (client) => {
        // The trigger runs here, before anyone waits: it sees no registration.
        await append('q6', 'two', client);
        read = readEntityInScope(pool, grant, 'w', policyOf, ref, { minVersion: 2, waitMs: 50_000 });
        // The waiter's first check fell short (this append is not committed) and it registered.
        for (let i = 0; i < 200; i++) {
          const { rows } = await db.adminPool.query<{ n: number }>(
            'select count(*)::int as n from cairn.head_waiters where key = $1',
            [key],
          );
          if (rows[0]!.n > 0) break;
          await settle(10);
        }
      });
      const committed = Date.now();
      expect((await read!).version).toBe(2);
      // A poll (every 200 ms at most) answered it, not the end of the wait: well under half of
      // waitMs, which no stall of a loaded machine comes near (2 s could be reached).
      expect(Date.now() - committed).toBeLessThan(25_000);
      await l.flush();
      // No notification explains that answer: the commit sent none.
      expect(l.got).toEqual([]);
      // And the waiter removed its registration.
      const { rows } = await db.adminPool.query<{ n: number }>(
        'select count(*)::int as n from cairn.head_waiters where key = $1',
        [key],
      );
      expect(rows[0]!.n).toBe(0);
    } finally {
      await l.end();
    }
  });
});
