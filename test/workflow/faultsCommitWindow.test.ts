/**
 * A step commits exactly once (issue 13, item 1): a non-deterministic agent whose every step
 * fails in the commit window (after its transaction committed, before the activity completed).
 * Temporal retries each step; the retry finds the step's completion and returns the committed
 * result without running the agent again. Before migration 007 the retry ran the agent, which
 * rolled new content, and the append was refused as an idempotency conflict.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';
import { testTypes } from './agents';
import { diceAgent, type DiceRun } from './faultAgents';

let db: TestDatabase;
let stack: TestStack;
const runs: DiceRun[] = [];
const failedAfterCommit: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  stack = await startTestStack({
    pool: db.pool,
    databaseUrl: db.url,
    registry: testTypes,
    agents: [diceAgent((r) => runs.push(r))],
    faults: {
      // Every step's first attempt dies in the commit window.
      afterCommit: ({ stepId, attempt }) => {
        if (attempt === 1) {
          failedAfterCommit.push(stepId);
          throw new Error(`injected fault after commit (${stepId})`);
        }
      },
    },
  });
});

afterAll(async () => {
  await stack?.stop();
  await db?.drop();
});

it('every step of every task commits once and its agent runs once, though each first attempt fails after commit', async () => {
  const tasks = Array.from({ length: 6 }, (_, i) => `window-${i}`);
  await Promise.all(
    tasks.map((taskKey) =>
      stack.client.startTask({
        taskKey,
        goal: 'roll dice through a faulty commit window',
        steps: [
          { id: 'first', role: 'dice', title: 'roll' },
          {
            id: 'second',
            role: 'dice',
            title: 'roll again',
            input: { readPrevious: 'first' },
            dependsOn: ['first'],
          },
        ],
        rolePolicies: { dice: { maxAttempts: 3, initialRetryMs: 50 } },
      }),
    ),
  );
  const results = await Promise.all(tasks.map((k) => stack.client.result(k)));
  expect(results.map((r) => r.status)).toEqual(tasks.map(() => 'completed'));
  expect(failedAfterCommit).toHaveLength(tasks.length * 2);

  // The agent ran exactly once per step, and what the workflow got is what that run returned.
  expect(runs).toHaveLength(tasks.length * 2);
  for (const r of results) {
    for (const s of r.steps) {
      const run = runs.filter((x) => x.taskKey === r.taskKey && x.stepId === s.id);
      expect(run).toHaveLength(1);
      expect(s.output).toEqual(run[0]!.output);
    }
  }

  // One observation per step, written by attempt 1 with that run's content; one completion.
  const { rows: notes } = await db.pool.query<{ entity_id: string; attempt: number; text: string }>(
    `select entity_id, attempt, fields->>'text' as text from cairn.observations where entity_type = 'note' order by entity_id`,
  );
  expect(notes).toHaveLength(tasks.length * 2);
  for (const n of notes) {
    const run = runs.find((x) => `${x.taskKey}-${x.stepId}` === n.entity_id);
    expect(n).toEqual({ entity_id: n.entity_id, attempt: 1, text: run!.output.roll });
  }
  const { rows: completions } = await db.pool.query<{ n: number; attempts: number[] }>(
    `select count(*)::int as n, array_agg(distinct attempt) as attempts from cairn.step_completions`,
  );
  expect(completions[0]).toEqual({ n: tasks.length * 2, attempts: [1] });
  // Each message once; the second step's inbox had the first step's message and acknowledged it.
  const { rows: msgs } = await db.pool.query<{ n: number; acked: number }>(
    `select count(*)::int as n, count(acked_at)::int as acked from cairn.context_messages`,
  );
  expect(msgs[0]).toEqual({ n: tasks.length * 2, acked: tasks.length });

  // Each step completed on its second attempt, whose only predecessor failed by the injected
  // fault (no idempotency conflict anywhere); no step failed for good.
  for (const taskKey of tasks) {
    const history = await stack.client.handle(taskKey).fetchHistory();
    const steps = new Set(
      history
        .events!.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'runAgentStep')
        .map((e) => String(e.eventId)),
    );
    const started = history
      .events!.map((e) => e.activityTaskStartedEventAttributes)
      .filter((a) => a && steps.has(String(a.scheduledEventId)))
      .map((a) => a!);
    expect(started.map((s) => s.attempt)).toEqual([2, 2]);
    for (const s of started) expect(s.lastFailure?.message).toMatch(/^injected fault after commit/);
    expect(history.events!.filter((e) => e.activityTaskFailedEventAttributes)).toEqual([]);
  }
}, 120_000);
