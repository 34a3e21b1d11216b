/**
 * A worker process killed (SIGKILL) after its step committed but before it reported completion:
 * a new worker picks the step up, the retry replays the append by idempotency key, and the task
 * completes with no duplicate and no lost observation.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createWorker, type CairnWorker } from '../../src/worker';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';
import { echo, testTypes } from './agents';

let db: TestDatabase;
let stack: TestStack;
let child: ChildProcess | undefined;
let replacement: CairnWorker | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  // This process serves only the task workflow; the echo role lives in the child at first.
  stack = await startTestStack({ pool: db.pool, databaseUrl: db.url, registry: testTypes, agents: [] });
});

afterAll(async () => {
  child?.kill('SIGKILL');
  await replacement?.shutdown();
  await stack?.stop();
  await db?.drop();
});

function waitForLine(proc: ChildProcess, line: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`no "${line}" from the worker within ${timeoutMs} ms; output: ${buffer}`)), timeoutMs);
    proc.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      if (buffer.split('\n').includes(line)) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', (code) => reject(new Error(`worker exited (${code}) before "${line}"; output: ${buffer}`)));
  });
}

it('a killed worker’s step completes on a new worker with its observation written exactly once', async () => {
  // tsx is loaded in-process (not via its CLI, which forks) so SIGKILL hits the worker itself.
  child = spawn(process.execPath, ['--require', require.resolve('tsx/cjs'), path.join(__dirname, '..', 'fixtures', 'crashingWorker.ts'), JSON.stringify(stack.config)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await waitForLine(child, 'READY', 60_000);

  const taskKey = 'crash';
  await stack.client.startTask({
    taskKey,
    goal: 'survive a crash',
    steps: [{ id: 'write', role: 'echo', title: 'write one note', input: { text: 'exactly once' } }],
    rolePolicies: { echo: { heartbeatMs: 1500, initialRetryMs: 100, maxAttempts: 5, timeoutMs: 60_000 } },
  });
  await waitForLine(child, 'COMMITTED', 60_000);
  const exited = new Promise((r) => child!.once('exit', r));
  child.kill('SIGKILL');
  await exited;

  const before = await db.pool.query('SELECT count(*)::int AS n FROM cairn.observations WHERE task_key = $1', [taskKey]);
  expect(before.rows[0].n).toBe(1);

  replacement = await createWorker({ config: stack.config, pool: db.pool, registry: testTypes, agents: [echo], serveTasks: false, heartbeatEveryMs: 200 });
  void replacement.run();

  const result = await stack.client.result(taskKey);
  expect(result.status).toBe('completed');
  const { rows } = await db.pool.query('SELECT attempt, fields FROM cairn.observations WHERE task_key = $1', [taskKey]);
  expect(rows).toEqual([{ attempt: 1, fields: { text: 'exactly once' } }]);
  const history = await stack.client.handle(taskKey).fetchHistory();
  const started = history.events!.filter((e) => e.activityTaskStartedEventAttributes).map((e) => e.activityTaskStartedEventAttributes!.attempt);
  // The step started at least twice: the killed attempt and the retry that replayed it.
  expect(Math.max(...started.map(Number))).toBeGreaterThanOrEqual(2);
}, 120_000);
