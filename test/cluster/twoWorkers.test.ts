/**
 * Cairn on a real Temporal cluster (Postgres persistence, 4 history shards): two worker processes
 * started with docker-compose.yml's own worker command and environment share the task queues; one
 * is killed with SIGKILL while it runs a step, and the task still completes with every step's
 * observation written exactly once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { CairnClient } from '../../src/client';
import { loadConfig, type CairnConfig } from '../../src/config';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { root, serviceCommand, serviceEnv } from './compose';

let db: TestDatabase;
let client: CairnClient | undefined;
const workers: { proc: ChildProcess; output: string[] }[] = [];

/** The compose worker's environment, pointed at this machine's services. */
function workerEnv(databaseUrl: string): Record<string, string> {
  const cluster = inject('cairnCluster');
  return { ...serviceEnv('cairn-worker'), DATABASE_URL: databaseUrl, TEMPORAL_ADDRESS: cluster.address };
}

function startWorker(env: Record<string, string>): Promise<{ proc: ChildProcess; output: string[] }> {
  const [cmd, ...args] = serviceCommand('cairn-worker').map((a) => a.replace(/^\/app\//, `${root}/`));
  expect(cmd).toBe('node');
  const proc = spawn(process.execPath, [...args, '--agents', 'test/cluster/agents.ts'], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const worker = { proc, output: [] as string[] };
  workers.push(worker);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`worker not serving within 300 s:\n${worker.output.join('')}`)),
      300_000,
    );
    const onData = (d: Buffer) => {
      worker.output.push(d.toString());
      if (worker.output.join('').includes('cairn worker: serving')) {
        clearTimeout(timer);
        resolve(worker);
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) =>
      reject(new Error(`worker exited (${code}) before serving:\n${worker.output.join('')}`)),
    );
  });
}

function firstStepLine(timeoutMs: number): Promise<{ worker: (typeof workers)[number]; step: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no worker started a step')), timeoutMs);
    for (const worker of workers) {
      worker.proc.stdout!.on('data', () => {
        const m = /CLUSTER-STEP (\S+) /.exec(worker.output.join(''));
        if (m) {
          clearTimeout(timer);
          resolve({ worker, step: m[1]! });
        }
      });
    }
  });
}

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  for (const w of workers) w.proc.kill('SIGKILL');
  await client?.close();
  await db?.drop();
});

it('a task completes on the cluster although one of two worker processes is killed mid-step', async () => {
  const env = workerEnv(db.url);
  const config: CairnConfig = loadConfig(env);
  expect(config.temporalAddress).toBe(inject('cairnCluster').address);
  await Promise.all([startWorker(env), startWorker(env)]);
  client = await CairnClient.connect(config);

  const parallel = ['a', 'b', 'c', 'd'];
  const taskKey = 'cluster-kill';
  const killed = firstStepLine(60_000);
  await client.startTask({
    taskKey,
    goal: 'survive a killed worker process on a real cluster',
    steps: [
      ...parallel.map((id) => ({ id, role: 'hold', title: `hold ${id}`, input: { ms: 3000 } })),
      { id: 'last', role: 'hold', title: 'after all', input: { ms: 100 }, dependsOn: parallel },
    ],
    // Heartbeats every 2 s (the CLI worker's default), so a dead worker's step is retried in ~6 s.
    rolePolicies: { hold: { heartbeatMs: 6000, initialRetryMs: 200, maxAttempts: 5 } },
  });
  const { worker: victim, step } = await killed;
  const exited = new Promise((r) => victim.proc.once('exit', r));
  victim.proc.kill('SIGKILL');
  await exited;
  const survivor = workers.find((w) => w !== victim)!;

  const result = await client.result(taskKey);
  expect(result.status).toBe('completed');
  const { rows } = await db.pool.query<{ entity_id: string; n: number }>(
    'SELECT entity_id, count(*)::int AS n FROM cairn.observations WHERE task_key = $1 GROUP BY entity_id ORDER BY entity_id',
    [taskKey],
  );
  expect(rows).toEqual([...parallel, 'last'].sort().map((id) => ({ entity_id: id, n: 1 })));
  // The killed process's step was run again by the survivor.
  expect(survivor.output.join('')).toContain(`CLUSTER-STEP ${step} `);
  expect(survivor.proc.exitCode).toBeNull();
}, 600_000);
