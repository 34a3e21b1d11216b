/**
 * A worker process killed (SIGKILL) after its step committed but before it reported completion
 * (the commit window), with a non-deterministic agent: a new worker picks the step up, finds the
 * step's completion (migration 007) and returns the committed result without running the agent
 * again; the task completes with no duplicate, no lost observation and no idempotency conflict.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createWorker, type CairnWorker } from '../../src/worker';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';
import { testTypes } from './agents';
import { diceAgent, type DiceRun } from './faultAgents';

let db: TestDatabase;
let stack: TestStack;
let child: ChildProcess | undefined;
let replacement: CairnWorker | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  // This process serves only the task workflow; the dice role lives in the child at first.
  stack = await startTestStack({ pool: db.pool, databaseUrl: db.url, registry: testTypes, agents: [] });
});

afterAll(async () => {
  child?.kill('SIGKILL');
  await replacement?.shutdown();
  await stack?.stop();
  await db?.drop();
});

/** Resolves with the first output line starting with `prefix` (the rest of the line). */
function waitForLine(proc: ChildProcess, prefix: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(
      () => reject(new Error(`no "${prefix}" from the worker within ${timeoutMs} ms; output: ${buffer}`)),
      timeoutMs,
    );
    proc.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const line = buffer.split('\n').find((l) => l.startsWith(prefix));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve(line.slice(prefix.length));
      }
    });
    proc.once('exit', (code) =>
      reject(new Error(`worker exited (${code}) before "${prefix}"; output: ${buffer}`)),
    );
  });
}

it('a step killed in the commit window is not run again: the new worker returns what was committed', async () => {
  // tsx is loaded in-process (not via its CLI, which forks) so SIGKILL hits the worker itself.
  child = spawn(
    process.execPath,
    [
      '--require',
      require.resolve('tsx/cjs'),
      path.join(__dirname, '..', 'fixtures', 'crashingWorker.ts'),
      JSON.stringify(stack.config),
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await waitForLine(child, 'READY', 60_000);

  const taskKey = 'crash';
  const ran = waitForLine(child, 'RAN ', 60_000);
  await stack.client.startTask({
    taskKey,
    goal: 'survive a crash',
    steps: [
      { id: 'first', role: 'dice', title: 'roll in a worker that dies' },
      {
        id: 'second',
        role: 'dice',
        title: 'roll after it',
        input: { readPrevious: 'first' },
        dependsOn: ['first'],
      },
    ],
    // The killed worker's attempt is noticed by its missing heartbeats: 5 s, not 1.5 s, so that a
    // stall of the replacement worker on a loaded machine cannot time out the second step's
    // attempt too (it would run again: 'runs' would not be ['second']).
    rolePolicies: { dice: { heartbeatMs: 5000, initialRetryMs: 100, maxAttempts: 5, timeoutMs: 60_000 } },
  });
  const childRun = JSON.parse(await ran) as DiceRun;
  await waitForLine(child, 'COMMITTED', 60_000);
  const exited = new Promise((r) => child!.once('exit', r));
  child.kill('SIGKILL');
  await exited;

  const before = await db.pool.query('SELECT count(*)::int AS n FROM cairn.step_completions');
  expect(before.rows[0].n).toBe(1);

  const runs: DiceRun[] = [];
  replacement = await createWorker({
    config: stack.config,
    pool: db.pool,
    registry: testTypes,
    agents: [diceAgent((r) => runs.push(r))],
    serveTasks: false,
    heartbeatEveryMs: 200,
  });
  void replacement.run();

  const result = await stack.client.result(taskKey);
  expect(result.status).toBe('completed');
  // The killed step was not run again; the workflow got the killed worker's committed output.
  expect(runs.map((r) => r.stepId)).toEqual(['second']);
  expect(result.steps.find((s) => s.id === 'first')?.output).toEqual(childRun.output);
  const { rows } = await db.pool.query(
    'SELECT entity_id, attempt, fields FROM cairn.observations WHERE task_key = $1 ORDER BY seq',
    [taskKey],
  );
  expect(rows).toEqual([
    { entity_id: 'crash-first', attempt: 1, fields: { text: childRun.output.roll } },
    { entity_id: 'crash-second', attempt: 1, fields: { text: runs[0]!.output.roll } },
  ]);
  const history = await stack.client.handle(taskKey).fetchHistory();
  const started = history
    .events!.filter((e) => e.activityTaskStartedEventAttributes)
    .map((e) => Number(e.activityTaskStartedEventAttributes!.attempt));
  // The first step started at least twice: the killed attempt and the retry that returned its result.
  expect(Math.max(...started)).toBeGreaterThanOrEqual(2);
  const failed = history.events!.filter((e) => e.activityTaskFailedEventAttributes);
  expect(failed).toEqual([]);
}, 120_000);
