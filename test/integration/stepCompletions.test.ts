/**
 * cairn.step_completions (migration 007) on the real server: a completion is found exactly as
 * recorded, a step is recorded once, the application writes only through the definer function,
 * nobody changes a completion, reads are bounded by scope, and a lookup waits for a concurrent
 * commit of the same step rather than missing it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from 'pg';
import type { StepResult } from '../../src/shared/task';
import { createPool, pgError, withTransaction } from '../../src/store/pool';
import {
  findStepCompletion,
  recordStepCompletion,
  type StepCompletionRecord,
} from '../../src/store/stepCompletions';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

let db: TestDatabase;
let unscoped: Pool;
beforeAll(async () => {
  db = await createTestDatabase();
  unscoped = createPool(db.url, { max: 2 });
});
afterAll(async () => {
  await unscoped?.end();
  await db?.drop();
});

const result = (text: string): StepResult => ({
  output: { text, nested: [1, 'two', null, { deep: true }] },
  observations: [
    { id: '6f1c1e2a-0b7e-4d5e-9a51-3f0e0a9c1d11', entity: 'note/a', entityVersion: 3, replayed: false },
  ],
  messages: [{ id: 'wf:1:m0', fromRole: 'dice', toRole: 'dice', type: 'roll', content: { text } }],
  proposedSteps: [],
  memoryWrites: [{ key: 'k', value: [text], expectedVersion: 0, writer: 'dice/s' }],
  acknowledged: ['wf:0:m0'],
});

const rec = (activityId: string, text: string): StepCompletionRecord => ({
  workflowId: 'wf',
  activityId,
  runId: 'run',
  attempt: 1,
  taskKey: 'task-1',
  role: 'dice',
  result: result(text),
  readSetId: null,
});

describe('step completions', () => {
  it('returns the recorded result as recorded, and nothing for a step not committed', async () => {
    await withTransaction(db.pool, (c) => recordStepCompletion(c, rec('1', 'hello')));
    const found = await findStepCompletion(db.pool, { workflowId: 'wf', activityId: '1' });
    expect(found?.result).toEqual(result('hello'));
    expect(found?.attempt).toBe(1);
    expect(await findStepCompletion(db.pool, { workflowId: 'wf', activityId: 'other' })).toBeUndefined();
  });

  it('records a step once: a second record of it fails the transaction', async () => {
    await withTransaction(db.pool, (c) => recordStepCompletion(c, rec('2', 'a')));
    const again = withTransaction(db.pool, (c) => recordStepCompletion(c, rec('2', 'b')));
    await expect(again).rejects.toMatchObject({ code: '23505' });
    expect((await findStepCompletion(db.pool, { workflowId: 'wf', activityId: '2' }))?.result).toEqual(
      result('a'),
    );
  });

  it('lets the application write only through the function, and nobody change a completion', async () => {
    const insert = db.pool.query(
      `insert into cairn.step_completions (workflow_id, activity_id, run_id, attempt, task_key, role, scope, result, observation_ids)
       values ('wf', 'direct', 'r', 1, 't', 'r', 'task:t', '{}', '{}')`,
    );
    await expect(insert).rejects.toMatchObject({ code: '42501' });
    await expect(db.pool.query(`update cairn.step_completions set attempt = 9`)).rejects.toMatchObject({
      code: '42501',
    });
    // The owner is refused too: completions are evidence, like read sets.
    for (const sql of [
      `update cairn.step_completions set attempt = 9`,
      `delete from cairn.step_completions`,
      `truncate cairn.step_completions`,
    ]) {
      const err: unknown = await db.adminPool.query(sql).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(pgError(err)?.code, sql).toBe('CN003');
    }
  });

  it('shows rows only to readers of the task scope, while the step still finds its own', async () => {
    await withTransaction(db.pool, (c) => recordStepCompletion(c, rec('3', 'scoped')));
    expect((await unscoped.query('select count(*)::int as n from cairn.step_completions')).rows[0].n).toBe(0);
    const other = await unscoped.query(
      `begin; select set_config('cairn.read_scopes', '{task:other}', true); select count(*)::int as n from cairn.step_completions; commit`,
    );
    expect((other as unknown as { rows: { n: number }[] }[])[2]!.rows[0]!.n).toBe(0);
    expect((await findStepCompletion(unscoped, { workflowId: 'wf', activityId: '3' }))?.result).toEqual(
      result('scoped'),
    );
    const own = await unscoped.query(
      `begin; select set_config('cairn.read_scopes', '{task:task-1}', true); select count(*)::int as n from cairn.step_completions; commit`,
    );
    expect((own as unknown as { rows: { n: number }[] }[])[2]!.rows[0]!.n).toBeGreaterThanOrEqual(3);
  });

  it('a lookup during a concurrent commit of the same step waits for it and finds it', async () => {
    let lookupDone = false;
    let lookup: Promise<unknown> | undefined;
    await withTransaction(db.pool, async (c) => {
      expect(await findStepCompletion(c, { workflowId: 'wf', activityId: '4' })).toBeUndefined();
      // The step's lock is held by this transaction: the other attempt's lookup must wait.
      lookup = findStepCompletion(db.pool, { workflowId: 'wf', activityId: '4' }).then((r) => {
        lookupDone = true;
        return r;
      });
      await new Promise((r) => setTimeout(r, 300));
      expect(lookupDone).toBe(false);
      await recordStepCompletion(c, rec('4', 'first'));
    });
    expect(((await lookup) as { result: StepResult }).result).toEqual(result('first'));
  });
});
