/**
 * Infrastructure faults are not agent failures (issue 13, item 2): a private Postgres cluster is
 * stopped (`pg_ctl stop -m fast`: admin shutdown of open sessions, then refused connections) for
 * 30 s while tasks run, and started again. Each step retries its reads and its commit inside the
 * same attempt, heartbeating meanwhile, so with ONE attempt allowed per step (no Temporal retry
 * at all) every task still completes, every agent ran once per step and every row is there once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPool } from '../../src/store/pool';
import { startPrivatePostgres, type PrivatePostgres } from '../helpers/privatePostgres';
import { startTestStack, type TestStack } from '../helpers/temporal';
import { testTypes } from './agents';
import { diceAgent, type DiceRun } from './faultAgents';

let pg: PrivatePostgres;
let pool: Pool;
let admin: Pool;
let stack: TestStack;
const runs: DiceRun[] = [];

beforeAll(async () => {
  pg = await startPrivatePostgres();
  pool = createPool(pg.url);
  admin = createPool(pg.url, { applicationRole: null, max: 1 });
  stack = await startTestStack({
    pool,
    databaseUrl: pg.url,
    registry: testTypes,
    agents: [diceAgent((r) => runs.push(r))],
  });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  await Promise.allSettled([pool?.end(), admin?.end()]);
  await pg?.destroy();
});

async function completions(): Promise<number> {
  const { rows } = await admin.query<{ n: number }>('select count(*)::int as n from cairn.step_completions');
  return rows[0]!.n;
}

it('every task completes through a 30 s Postgres outage, using no retry attempt', async () => {
  const tasks = Array.from({ length: 8 }, (_, i) => `outage-${i}`);
  const stepsPerTask = 3;
  await Promise.all(
    tasks.map((taskKey, i) =>
      stack.client.startTask({
        taskKey,
        goal: 'roll dice while the database goes away',
        steps: [
          { id: 's1', role: 'dice', title: 'roll', input: { ms: 500 + 300 * i } },
          {
            id: 's2',
            role: 'dice',
            title: 'roll on',
            input: { ms: 1500, readPrevious: 's1' },
            dependsOn: ['s1'],
          },
          {
            id: 's3',
            role: 'dice',
            title: 'roll last',
            input: { ms: 1500, readPrevious: 's2' },
            dependsOn: ['s2'],
          },
        ],
        // One attempt: a database fault that reached the role's retry policy would fail the task.
        rolePolicies: { dice: { maxAttempts: 1, timeoutMs: 240_000 } },
      }),
    ),
  );
  const results = Promise.all(tasks.map((k) => stack.client.result(k)));

  while ((await completions()) < tasks.length) await sleep(100);
  await pg.stop();
  const stoppedAt = Date.now();
  // Steps keep running their agents and then wait for the database; some commit when it is back.
  await sleep(30_000);
  await pg.start();
  const outageMs = Date.now() - stoppedAt;

  const done = await results;
  expect(outageMs).toBeGreaterThanOrEqual(30_000);
  expect(done.map((r) => r.status)).toEqual(tasks.map(() => 'completed'));
  const total = tasks.length * stepsPerTask;
  expect(await completions()).toBe(total);
  // The agent ran once per step: nothing was retried by Temporal, nothing re-ran the agent.
  expect(runs).toHaveLength(total);
  expect(new Set(runs.map((r) => `${r.taskKey}/${r.stepId}`)).size).toBe(total);
  const { rows } = await admin.query<{ n: number; keys: number; attempts: number[] }>(
    `select count(*)::int as n, count(distinct idempotency_key)::int as keys, array_agg(distinct attempt) as attempts from cairn.observations`,
  );
  expect(rows[0]).toEqual({ n: total, keys: total, attempts: [1] });
  // Each step's note holds its own run's roll, and each later step read its predecessor's.
  for (const r of done)
    for (const s of r.steps)
      expect(s.output).toEqual(runs.find((x) => x.taskKey === r.taskKey && x.stepId === s.id)!.output);
  const { rows: msgs } = await admin.query<{ n: number }>(
    `select count(*)::int as n from cairn.context_messages`,
  );
  expect(msgs[0]!.n).toBe(total);
}, 300_000);
