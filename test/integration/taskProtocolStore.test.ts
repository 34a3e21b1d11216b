/**
 * The store side of the task protocol on real Postgres: messages keyed by (task_key, id),
 * admission that recognises its own retried batch, acknowledgement scoped to the task, and the
 * task-key binding that never moves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bindTaskKey, recordEpisode } from '../../src/store/episodes';
import { acknowledgeMessages, admitMessages, listMessages, persistMessages } from '../../src/store/messages';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const msg = (id: string, content: unknown = id) => ({
  id,
  fromRole: 'human',
  toRole: 'listener',
  type: 'note',
  content: content as never,
});

describe('context messages keyed by task', () => {
  it('admits new ids, drops ids the task already has, and a retried batch gets its own ids back', async () => {
    expect(await admitMessages(db.pool, 'ta', [msg('a1'), msg('a2')], { batchKey: 'run1:0' })).toEqual(
      expect.arrayContaining(['a1', 'a2']),
    );
    // The same batch again (an activity retry after its first attempt committed): same answer.
    expect(
      (await admitMessages(db.pool, 'ta', [msg('a1'), msg('a2')], { batchKey: 'run1:0' })).sort(),
    ).toEqual(['a1', 'a2']);
    // Another batch re-sending a1 (a duplicate from the sender, in any run): only a3 is new.
    expect(await admitMessages(db.pool, 'ta', [msg('a1'), msg('a3')], { batchKey: 'run2:0' })).toEqual([
      'a3',
    ]);
    // The same id in another task is another message.
    expect(await admitMessages(db.pool, 'tb', [msg('a1', 'for b')], { batchKey: 'runb:0' })).toEqual(['a1']);
    expect((await listMessages(db.pool, { taskKey: 'ta' })).map((m) => m.id)).toEqual(['a1', 'a2', 'a3']);
  });

  it('acknowledges only the acknowledging task’s copy of an id', async () => {
    await persistMessages(db.pool, [msg('dup-2', 'A')], { taskKey: 'ack-a' });
    await persistMessages(db.pool, [msg('dup-2', 'B')], { taskKey: 'ack-b' });
    await acknowledgeMessages(db.pool, 'ack-b', ['dup-2'], { workflowId: 'wf-b', activityId: 'step-x' });
    expect(
      (await listMessages(db.pool, { taskKey: 'ack-a', unreadOnly: true })).map((m) => m.content),
    ).toEqual(['A']);
    expect(await listMessages(db.pool, { taskKey: 'ack-b', unreadOnly: true })).toEqual([]);
  });
});

describe('task-key binding', () => {
  it('binds once; another workflow or a new first run sees the holder; the outcome and result are kept', async () => {
    expect(await bindTaskKey(db.pool, { taskKey: 'k1', workflowId: 'wf1', firstRunId: 'r1' })).toEqual({
      kind: 'bound',
    });
    expect(await bindTaskKey(db.pool, { taskKey: 'k1', workflowId: 'wf1', firstRunId: 'r1' })).toEqual({
      kind: 'bound',
    });
    expect(await bindTaskKey(db.pool, { taskKey: 'k1', workflowId: 'wf2', firstRunId: 'r9' })).toEqual({
      kind: 'taken',
      workflowId: 'wf1',
      firstRunId: 'r1',
      outcome: null,
      result: null,
    });
    const result = {
      taskKey: 'k1',
      status: 'completed' as const,
      steps: [],
      observations: 0,
      messages: 0,
      continuedAsNew: 0,
    };
    const now = new Date().toISOString();
    await recordEpisode(db.pool, {
      taskKey: 'k1',
      workflowId: 'wf1',
      runId: 'r3',
      goal: 'g',
      outcome: 'completed',
      startedAt: now,
      endedAt: now,
      steps: [],
      observationIds: [],
      messages: 0,
      result,
    });
    expect(await bindTaskKey(db.pool, { taskKey: 'k1', workflowId: 'wf1', firstRunId: 'r2' })).toEqual({
      kind: 'taken',
      workflowId: 'wf1',
      firstRunId: 'r1',
      outcome: 'completed',
      result,
    });
    // The binding never moves, and its outcome is set once (even for the database owner).
    await expect(
      db.adminPool.query("UPDATE cairn.task_keys SET workflow_id = 'wf2' WHERE task_key = 'k1'"),
    ).rejects.toThrow(/stays bound/);
    await expect(db.adminPool.query("DELETE FROM cairn.task_keys WHERE task_key = 'k1'")).rejects.toThrow(
      /never deleted/,
    );
  });
});
