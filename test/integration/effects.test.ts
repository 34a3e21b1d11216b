/**
 * ctx.once's store (cairn.effects) on the real server: the outside call runs once across
 * retries and concurrent callers, a failure stores nothing, a lapsed holder is taken over, and
 * the database refuses to change or delete a completed effect.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { effectKey, getEffect, runOnce, type EffectOwner } from '../../src/store/effects';
import { pgError } from '../../src/store/pool';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const owner = (attempt: number): EffectOwner => ({
  taskKey: 't1',
  workflowId: 'wf',
  activityId: 'step-pay',
  attempt,
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('once (cairn.effects)', () => {
  it('scopes keys to the task unless global', () => {
    expect(effectKey('charge', { taskKey: 'order-7' })).toBe('task:order-7/charge');
    expect(effectKey('charge', { global: true })).toBe('global/charge');
    expect(() => effectKey('', { global: true })).toThrow(RangeError);
  });

  it('a retry gets the stored result without calling again', async () => {
    let calls = 0;
    const fn = async () => ({ receipt: `r${++calls}` });
    const first = await runOnce(db.pool, 'k-retry', owner(1), fn);
    const second = await runOnce(db.pool, 'k-retry', owner(2), fn);
    expect(first).toEqual({ result: { receipt: 'r1' }, ran: true });
    expect(second).toEqual({ result: { receipt: 'r1' }, ran: false });
    expect(calls).toBe(1);
    expect(await getEffect(db.pool, 'k-retry')).toMatchObject({
      attempt: 1,
      result: { receipt: 'r1' },
      workflowId: 'wf',
    });
  });

  it('concurrent callers of one key: one runs, the others wait and see its result', async () => {
    let calls = 0;
    const fn = async () => {
      calls++;
      await sleep(300);
      return calls;
    };
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => runOnce(db.pool, 'k-race', owner(i + 1), fn)),
    );
    expect(calls).toBe(1);
    expect(results.map((r) => r.result)).toEqual(Array(8).fill(1));
    expect(results.filter((r) => r.ran)).toHaveLength(1);
  });

  it('a failed call stores nothing; the next call runs again', async () => {
    let calls = 0;
    await expect(
      runOnce(db.pool, 'k-fail', owner(1), async () => {
        calls++;
        throw new Error('gateway down');
      }),
    ).rejects.toThrow('gateway down');
    expect(await getEffect(db.pool, 'k-fail')).toBeUndefined();
    const ok = await runOnce(db.pool, 'k-fail', owner(2), async () => ++calls);
    expect(ok).toEqual({ result: 2, ran: true });
  });

  it('a waiter takes over when the holder fails', async () => {
    let calls = 0;
    const holder = runOnce(db.pool, 'k-handoff', owner(1), async () => {
      calls++;
      await sleep(200);
      throw new Error('holder failed');
    });
    await sleep(50);
    const waiter = runOnce(db.pool, 'k-handoff', owner(2), async () => {
      calls++;
      return 'second';
    });
    await expect(holder).rejects.toThrow('holder failed');
    expect(await waiter).toEqual({ result: 'second', ran: true });
    expect(calls).toBe(2);
  });

  it('a holder whose lease lapsed (crashed) is taken over', async () => {
    await db.pool.query(
      `insert into cairn.effects (key, task_key, workflow_id, activity_id, attempt, holder, lease_until)
       values ('k-crashed', 't1', 'wf', 'step-pay', 1, 'dead-holder', clock_timestamp() - interval '1 second')`,
    );
    expect(await runOnce(db.pool, 'k-crashed', owner(2), async () => 'recovered')).toEqual({
      result: 'recovered',
      ran: true,
    });
  });

  it('stores a null result as a result', async () => {
    let calls = 0;
    const fn = async () => {
      calls++;
      return null;
    };
    await runOnce(db.pool, 'k-null', owner(1), fn);
    expect(await runOnce(db.pool, 'k-null', owner(2), fn)).toEqual({ result: null, ran: false });
    expect(calls).toBe(1);
  });

  it('the database refuses to change or delete a completed effect', async () => {
    await runOnce(db.pool, 'k-frozen', owner(1), async () => 'done');
    for (const sql of [
      "update cairn.effects set result = '\"forged\"' where key = 'k-frozen'",
      "delete from cairn.effects where key = 'k-frozen'",
    ]) {
      const err = await db.pool.query(sql).catch((e: unknown) => e);
      expect(pgError(err)?.code).toBe('CN003');
    }
    expect((await getEffect(db.pool, 'k-frozen'))?.result).toBe('done');
  });
});
