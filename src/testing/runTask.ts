/**
 * Runs a whole task in a test: a worker (the task workflow and the given agents) and a client
 * on a Temporal server (a dev server: `temporal server start-dev`), the task started, its
 * result awaited, everything shut down. The same createWorker and CairnClient an application
 * uses, on a task-queue prefix of its own so parallel tests do not steal each other's work.
 */
import { randomUUID } from 'node:crypto';
import { NativeConnection, type WorkflowBundleOption } from '@temporalio/worker';
import type pg from 'pg';
import type { AgentDefinition } from '../agent';
import { CairnClient } from '../client';
import type { CairnConfig } from '../config';
import type { ObservationTypeRegistry } from '../shared/observationTypes';
import type { TaskInput, TaskResult } from '../shared/task';
import { createPool } from '../store/pool';
import { createWorker } from '../worker';

export interface RunTaskOptions {
  agents: readonly AgentDefinition[];
  types: ObservationTypeRegistry;
  task: TaskInput;
  /** A pool on a migrated database (kept open), or its URL (a pool is made and closed). */
  pool?: pg.Pool;
  databaseUrl?: string;
  /** Default 127.0.0.1:7233 (the dev server's). */
  temporalAddress?: string;
  /** Default `default`. */
  namespace?: string;
  /** The workflows, pre-bundled (faster); default: bundled by createWorker. */
  workflowBundle?: WorkflowBundleOption;
  /** Give up (and cancel the task) after this long; default 60 s. */
  timeoutMs?: number;
}

export async function runTask(opts: RunTaskOptions): Promise<TaskResult> {
  if (!opts.pool && !opts.databaseUrl) throw new TypeError('runTask: give `pool` or `databaseUrl`');
  const config: CairnConfig = {
    databaseUrl: opts.databaseUrl ?? '',
    temporalAddress: opts.temporalAddress ?? '127.0.0.1:7233',
    temporalNamespace: opts.namespace ?? 'default',
    // Workers of other tests on the same server must not pick up this task's work.
    taskQueuePrefix: `test-${randomUUID().slice(0, 8)}`,
    temporalUiUrl: 'http://127.0.0.1:8233',
    temporalCli: undefined,
  };
  const pool = opts.pool ?? createPool(opts.databaseUrl!, { max: 6, applicationName: 'cairn-testing' });
  const connection = await NativeConnection.connect({ address: config.temporalAddress });
  let client: CairnClient | undefined;
  try {
    const worker = await createWorker({
      config,
      pool,
      registry: opts.types,
      agents: opts.agents,
      connection,
      ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : {}),
      heartbeatEveryMs: 500,
      workerOptions: { shutdownGraceTime: '2s' },
    });
    const running = worker.run();
    try {
      client = await CairnClient.connect(config);
      await client.startTask(opts.task);
      const timeoutMs = opts.timeoutMs ?? 60_000;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`task ${opts.task.taskKey} did not finish within ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
      try {
        return await Promise.race([client.result(opts.task.taskKey), timedOut]);
      } catch (err) {
        await client.cancel(opts.task.taskKey).catch(() => undefined);
        throw err;
      } finally {
        clearTimeout(timer);
      }
    } finally {
      await worker.shutdown();
      await running;
    }
  } finally {
    await client?.close();
    await connection.close();
    if (!opts.pool) await pool.end();
  }
}
