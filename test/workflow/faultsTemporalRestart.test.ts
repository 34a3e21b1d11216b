/**
 * The Temporal server killed (SIGKILL) mid-run and started again on the same database file
 * (issue 13, item 2): workers reconnect, CairnClient.result() waits through the outage instead of
 * throwing, and every task completes with each step committed once. A step whose completion was
 * lost with the server is retried by Temporal and returns its recorded result (migration 007);
 * its agent may have run again only if its attempt had not committed (at-least-once up to the
 * commit), never producing a second commit.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { getFreePort, isPortFree } from '../../src/dev/ports';
import { ensureTemporalServer, type TemporalServer } from '../../src/dev/temporalServer';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, testConfig, type TestStack } from '../helpers/temporal';
import { testTypes } from './agents';
import { diceAgent, type DiceRun } from './faultAgents';

let db: TestDatabase;
let stack: TestStack | undefined;
let server: TemporalServer | undefined;
let dataDir: string;
let address: string;
const runs: DiceRun[] = [];
const log = (m: string) => process.stderr.write(`[temporal restart test] ${m}\n`);

function startServer(): Promise<TemporalServer> {
  return ensureTemporalServer({
    address,
    namespace: 'default',
    dataDir,
    headless: true,
    log,
    ...(process.env.TEMPORAL_CLI ? { cliPath: process.env.TEMPORAL_CLI } : {}),
  });
}

beforeAll(async () => {
  db = await createTestDatabase();
  dataDir = mkdtempSync(path.join(tmpdir(), 'cairn-temporal-'));
  address = `127.0.0.1:${await getFreePort()}`;
  server = await startServer();
  stack = await startTestStack({
    pool: db.pool,
    databaseUrl: db.url,
    registry: testTypes,
    agents: [diceAgent((r) => runs.push(r))],
    config: { ...testConfig(db.url), temporalAddress: address, temporalNamespace: 'default' },
  });
}, 240_000);

afterAll(async () => {
  await stack?.stop();
  await server?.stop();
  await db?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

it('every task completes and result() waits through a kill -9 of the Temporal server', async () => {
  const tasks = Array.from({ length: 6 }, (_, i) => `restart-${i}`);
  const stepsPerTask = 3;
  for (const [i, taskKey] of tasks.entries()) {
    await stack!.client.startTask({
      taskKey,
      goal: 'roll dice while Temporal goes away',
      steps: [
        { id: 's1', role: 'dice', title: 'roll', input: { ms: 300 + 200 * i } },
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
          input: { ms: 1000, readPrevious: 's2' },
          dependsOn: ['s2'],
        },
      ],
      rolePolicies: { dice: { initialRetryMs: 200 } },
    });
  }
  // Waiting for results starts before the kill: each must ride out the outage.
  const results = Promise.all(tasks.map((k) => stack!.client.result(k)));

  const committed = async () =>
    (await db.pool.query<{ n: number }>('select count(*)::int as n from cairn.step_completions')).rows[0]!.n;
  while ((await committed()) < tasks.length) await sleep(100);
  const pid = server!.pid!;
  process.kill(-pid, 'SIGKILL');
  const port = Number(address.split(':')[1]);
  while (!(await isPortFree(port))) await sleep(100);
  const atKill = await committed();
  // Longer than the SDK's own gRPC retries last (about ten tries, a few seconds).
  await sleep(15_000);
  server = await startServer();
  expect(server.startedByUs).toBe(true);

  const done = await results;
  expect(atKill).toBeLessThan(tasks.length * stepsPerTask);
  expect(done.map((r) => r.status)).toEqual(tasks.map(() => 'completed'));
  const total = tasks.length * stepsPerTask;
  expect(await committed()).toBe(total);
  const { rows } = await db.pool.query<{ n: number; keys: number }>(
    `select count(*)::int as n, count(distinct idempotency_key)::int as keys from cairn.observations where entity_type = 'note'`,
  );
  expect(rows[0]).toEqual({ n: total, keys: total });
  // What each task's workflow got for a step is what that step committed, and each committed
  // roll is one the agent produced.
  const { rows: recorded } = await db.pool.query<{
    workflow_id: string;
    activity_id: string;
    output: unknown;
  }>(`select workflow_id, activity_id, result->'output' as output from cairn.step_completions`);
  for (const r of done) {
    for (const s of r.steps) {
      const c = recorded.find(
        (x) => x.workflow_id === `cairn-task-${r.taskKey}` && x.activity_id === `step-${s.id}`,
      );
      expect(s.output).toEqual(c?.output);
      expect(
        runs.some(
          (x) =>
            x.taskKey === r.taskKey &&
            x.stepId === s.id &&
            x.output.roll === (s.output as { roll: string }).roll,
        ),
      ).toBe(true);
    }
  }
  expect(runs.length).toBeGreaterThanOrEqual(total);
}, 300_000);
