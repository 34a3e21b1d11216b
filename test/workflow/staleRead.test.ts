/**
 * Stale decisions through Temporal: two parallel steps read the same entity, both decide on the
 * field they read; the second commit is refused (StaleReadError, retryable), Temporal retries
 * the step, it re-reads and decides again. Then the seed fact is retracted and the task, still
 * running, is told which of its decisions are tainted.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { defineAgent } from '../../src/agent';
import { notifyTaintedTasks, TAINT_MESSAGE_TYPE } from '../../src/notifyTainted';
import { FAILURE_TYPES } from '../../src/shared/errors';
import { readSetOfObservation } from '../../src/store/readSets';
import { retract } from '../../src/store/quarantine';
import { listStaleRefusals } from '../../src/store/staleness';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { dealDecision, dealFacts, receiptTypes } from '../helpers/readReceipts';
import { startTestStack, type TestStack } from '../helpers/temporal';

/** Both deciders' first attempts wait here until both have read. */
const arrivals = new Map<string, { n: number; all: Promise<void>; release: () => void }>();
function barrier(key: string, parties: number): Promise<void> {
  let b = arrivals.get(key);
  if (!b) {
    let release!: () => void;
    const all = new Promise<void>((r) => (release = r));
    b = { n: 0, all, release };
    arrivals.set(key, b);
  }
  if (++b.n >= parties) b.release();
  // The timeout only keeps a broken run from hanging: 30 s, as a loaded machine can start the
  // second step more than 10 s after the first (then both would not have read before either wrote).
  return Promise.race([b.all, new Promise<void>((r) => setTimeout(r, 30_000))]);
}
let openGate!: () => void;
const gate = new Promise<void>((r) => (openGate = r));

const seeder = defineAgent({
  role: 'seeder',
  async handle(ctx) {
    ctx.append(dealFacts, ctx.task.taskKey, { price: 100, status: 'open' });
  },
});
const decider = defineAgent({
  role: 'decider',
  async handle(ctx) {
    const seen = await ctx.memory.entity(dealFacts, ctx.task.taskKey);
    const status = seen.fields.status?.value;
    if (ctx.step.attempt === 1) await barrier(ctx.task.taskKey, 2);
    ctx.append(
      dealDecision,
      ctx.task.taskKey,
      { status: `${ctx.step.id} after ${JSON.stringify(status)}` },
      { kind: 'decision' },
    );
    return { saw: seen.version };
  },
});
const holder = defineAgent({
  role: 'holder',
  async handle() {
    await gate;
  },
});
const reviewer = defineAgent({
  role: 'reviewer',
  async handle(ctx) {
    return { inbox: ctx.inbox.map((m) => ({ type: m.type, content: m.content })) };
  },
});

let db: TestDatabase;
let stack: TestStack;
beforeAll(async () => {
  db = await createTestDatabase();
  stack = await startTestStack({
    pool: db.pool,
    databaseUrl: db.url,
    registry: receiptTypes,
    agents: [seeder, decider, holder, reviewer],
  });
});
afterAll(async () => {
  openGate();
  await stack?.stop();
  await db?.drop();
});

it('a strict decision refused as stale is retried by Temporal and succeeds on re-read; the tainted task is told', async () => {
  const taskKey = 'stale-wf';
  await stack.client.startTask({
    taskKey,
    goal: 'two deciders race on one deal',
    steps: [
      { id: 'seed', role: 'seeder', title: 'seed the deal' },
      { id: 'decide-a', role: 'decider', title: 'decide A', dependsOn: ['seed'] },
      { id: 'decide-b', role: 'decider', title: 'decide B', dependsOn: ['seed'] },
      { id: 'hold', role: 'holder', title: 'hold the task open', dependsOn: ['decide-a', 'decide-b'] },
      { id: 'review', role: 'reviewer', title: 'review taint', dependsOn: ['hold'] },
    ],
    rolePolicies: { decider: { maxAttempts: 3, initialRetryMs: 50 } },
  });

  // Wait until both deciders are done (the task is then parked on `hold`): up to ~45 s, as the
  // barrier above may hold the first one for 30 s on a loaded machine.
  for (let i = 0; ; i++) {
    const status = await stack.client.status(taskKey);
    if (status.steps.filter((s) => s.id.startsWith('decide')).every((s) => s.status === 'completed')) break;
    if (i > 900) throw new Error(`deciders did not finish: ${JSON.stringify(status.steps)}`);
    await new Promise((r) => setTimeout(r, 50));
  }

  const [refusal, ...more] = await listStaleRefusals(db.pool, { taskKey });
  expect(more).toEqual([]);
  expect(refusal).toMatchObject({
    attempt: 1,
    role: 'decider',
    conflicts: [{ entityId: taskKey, versionRead: 1, currentVersion: 2, fields: ['status'] }],
  });

  const { rows } = await db.pool.query<{
    id: string;
    activity_id: string;
    attempt: number;
    entity_version: number;
    fields: { status: string };
  }>(
    `select id, activity_id, attempt, entity_version, fields from cairn.observations where task_key = $1 and kind = 'decision' order by entity_version`,
    [taskKey],
  );
  expect(rows).toHaveLength(2);
  const [winner, retried] = rows as [(typeof rows)[0], (typeof rows)[0]];
  expect(winner.attempt).toBe(1);
  expect(retried).toMatchObject({ activity_id: refusal!.activityId, attempt: 2 });
  // The retry re-read: it saw the winner's decision, and decided on that.
  expect(retried.fields.status).toBe(
    `${refusal!.activityId.replace('step-', '')} after ${JSON.stringify(winner.fields.status)}`,
  );
  expect((await readSetOfObservation(db.pool, retried.id))?.entries).toEqual([
    { entityType: 'deal', entityId: taskKey, version: 2, fields: ['status'] },
  ]);

  // Retract the seed: both decisions read it, so both are tainted; the running task is told.
  const { rows: seed } = await db.pool.query<{ id: string }>(
    `select id from cairn.observations where task_key = $1 and activity_id = 'step-seed'`,
    [taskKey],
  );
  const { quarantine } = await retract(db.pool, seed[0]!.id, { reason: 'price was a typo', by: 'test' });
  const notice = await notifyTaintedTasks(stack.client, db.pool, {
    toRole: 'reviewer',
    quarantineId: quarantine.id,
  });
  expect(notice.skipped).toEqual([]);
  expect(notice.notified).toHaveLength(1);
  expect(new Set(notice.notified[0]!.observationIds)).toEqual(new Set([winner.id, retried.id]));
  // The task persists context as it arrives (a batch at a time); the reviewer reads what was
  // admitted before it starts, so open the gate once the notice is stored.
  await expect
    .poll(
      async () =>
        (
          await db.pool.query<{ n: number }>(
            `select count(*)::int as n from cairn.context_messages where task_key = $1 and type = $2`,
            [taskKey, TAINT_MESSAGE_TYPE],
          )
        ).rows[0]!.n,
      { timeout: 30_000 },
    )
    .toBe(1);
  openGate();

  const result = await stack.client.result(taskKey);
  expect(result.status).toBe('completed');
  const review = result.steps.find((s) => s.id === 'review')?.output as {
    inbox: { type: string; content: { quarantineId: string } }[];
  };
  expect(review.inbox).toEqual([
    expect.objectContaining({
      type: TAINT_MESSAGE_TYPE,
      content: expect.objectContaining({ quarantineId: quarantine.id }),
    }),
  ]);

  // A finished task cannot be told: reported, not thrown.
  const late = await notifyTaintedTasks(stack.client, db.pool, {
    toRole: 'reviewer',
    quarantineId: quarantine.id,
  });
  expect(late.notified).toEqual([]);
  expect(late.skipped).toHaveLength(1);
  expect(FAILURE_TYPES.StaleRead).toBe('CairnStaleRead');
});
