/**
 * Safe upgrades and connection discipline of createWorker, through the real dev server:
 * - every worker polls with its deployment version (name from the task-queue prefix, build id
 *   from Cairn's version); with CAIRN_WORKER_VERSIONING=on Temporal routes the task to the
 *   deployment's current version and the run is AUTO_UPGRADE;
 * - a worker without a given pool makes its own, sized from its activity concurrency (or
 *   CAIRN_PG_POOL_MAX) and ends it; a given pool is left as it is.
 */
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { inject } from 'vitest';
import { defineAgent } from '../../src/agent';
import { CairnClient } from '../../src/client';
import type { CairnConfig } from '../../src/config';
import { roleTaskQueue, taskWorkflowQueue } from '../../src/shared/task';
import { poolSizeFor } from '../../src/store/pool';
import { createWorker, type CreateWorkerOptions } from '../../src/worker';
import { cairnVersion, workerDeploymentVersion } from '../../src/workerVersioning';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { dealFacts, receiptTypes } from '../helpers/readReceipts';
import { testConfig } from '../helpers/temporal';

const writer = defineAgent({
  role: 'writer',
  async handle(ctx) {
    ctx.append(dealFacts, ctx.task.taskKey, { status: 'written' });
  },
});

let db: TestDatabase;
let connection: NativeConnection;
let temporalClient: Client;
let clientConnection: Connection;
beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  db = await createTestDatabase();
  const address = inject('cairnTest').temporalAddress;
  connection = await NativeConnection.connect({ address });
  clientConnection = await Connection.connect({ address });
  temporalClient = new Client({ connection: clientConnection, namespace: inject('cairnTest').namespace });
});
afterAll(async () => {
  await connection?.close();
  await clientConnection?.close();
  await db?.drop();
});

function workerOptions(config: CairnConfig, extra: Partial<CreateWorkerOptions> = {}): CreateWorkerOptions {
  return {
    config,
    pool: db.pool,
    registry: receiptTypes,
    agents: [writer],
    connection,
    workflowBundle: { codePath: inject('cairnTest').workflowBundlePath },
    heartbeatEveryMs: 200,
    workerOptions: { shutdownGraceTime: '2s' },
    ...extra,
  };
}

async function pollers(taskQueue: string, type: temporal.api.enums.v1.TaskQueueType) {
  for (let i = 0; ; i++) {
    const res = await temporalClient.workflowService.describeTaskQueue({
      namespace: inject('cairnTest').namespace,
      taskQueue: { name: taskQueue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType: type,
    });
    // Up to ~30 s: a loaded machine can take more than 10 s to get a new worker polling.
    if ((res.pollers?.length ?? 0) > 0 || i > 300) return res.pollers ?? [];
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('a worker polls with the deployment version derived from the task-queue prefix and the Cairn version', async () => {
  const config = testConfig(db.url);
  const expected = { deploymentName: config.taskQueuePrefix, buildId: `cairn-${cairnVersion()}` };
  expect(workerDeploymentVersion(config)).toEqual(expected);
  expect(cairnVersion()).toMatch(/^\d+\.\d+\.\d+/);
  expect(workerDeploymentVersion({ ...config, deploymentName: 'billing', buildId: 'r42' })).toEqual({
    deploymentName: 'billing',
    buildId: 'r42',
  });

  const worker = await createWorker(workerOptions(config));
  const running = worker.run();
  try {
    const T = temporal.api.enums.v1.TaskQueueType;
    for (const [queue, type] of [
      [taskWorkflowQueue(config.taskQueuePrefix), T.TASK_QUEUE_TYPE_WORKFLOW],
      [roleTaskQueue(config.taskQueuePrefix, 'writer'), T.TASK_QUEUE_TYPE_ACTIVITY],
    ] as const) {
      const [poller] = await pollers(queue, type);
      expect(poller?.deploymentOptions, queue).toMatchObject({
        ...expected,
        workerVersioningMode: temporal.api.enums.v1.WorkerVersioningMode.WORKER_VERSIONING_MODE_UNVERSIONED,
      });
    }
    // Versioning off: the task runs as an unversioned workflow.
    const client = await CairnClient.connect(config);
    try {
      await client.startTask({
        taskKey: 'unversioned',
        goal: 'write',
        steps: [{ id: 'w', role: 'writer', title: 'write' }],
      });
      await client.result('unversioned');
      const info = (await temporalClient.workflow.getHandle('cairn-task-unversioned').describe()).raw
        .workflowExecutionInfo;
      expect(info?.versioningInfo?.behavior ?? 0).toBe(0);
    } finally {
      await client.close();
    }
  } finally {
    await worker.shutdown();
    await running;
  }
});

it('with CAIRN_WORKER_VERSIONING=on the task runs on the current deployment version, AUTO_UPGRADE', async () => {
  const config = { ...testConfig(db.url), workerVersioning: true, buildId: 'v1' };
  const { deploymentName, buildId } = workerDeploymentVersion(config);
  const worker = await createWorker(workerOptions(config));
  const running = worker.run();
  try {
    const T = temporal.api.enums.v1.TaskQueueType;
    const [poller] = await pollers(taskWorkflowQueue(config.taskQueuePrefix), T.TASK_QUEUE_TYPE_WORKFLOW);
    expect(poller?.deploymentOptions).toMatchObject({
      deploymentName,
      buildId,
      workerVersioningMode: temporal.api.enums.v1.WorkerVersioningMode.WORKER_VERSIONING_MODE_VERSIONED,
    });
    // A rolling deploy's switch-over: the new version becomes the deployment's current one
    // (`temporal worker deployment set-current-version`). The version registers as its pollers arrive.
    for (let i = 0; ; i++) {
      try {
        await temporalClient.workflowService.setWorkerDeploymentCurrentVersion({
          namespace: inject('cairnTest').namespace,
          deploymentName,
          buildId,
          identity: 'workerVersioning.test',
          ignoreMissingTaskQueues: true,
        });
        break;
      } catch (err) {
        if (i > 100) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const client = await CairnClient.connect(config);
    try {
      await client.startTask({
        taskKey: 'versioned',
        goal: 'write',
        steps: [{ id: 'w', role: 'writer', title: 'write' }],
      });
      await client.result('versioned');
      const info = (await temporalClient.workflow.getHandle('cairn-task-versioned').describe()).raw
        .workflowExecutionInfo;
      expect(info?.versioningInfo?.behavior).toBe(
        temporal.api.enums.v1.VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE,
      );
      expect(info?.versioningInfo?.deploymentVersion).toMatchObject({ deploymentName, buildId });
    } finally {
      await client.close();
    }
  } finally {
    await worker.shutdown();
    await running;
  }
});

it("a worker's own pool follows its activity concurrency (or CAIRN_PG_POOL_MAX) and ends with it; a given pool is left alone", async () => {
  const config = testConfig(db.url);
  // Two Temporal workers (the task queue and one role), 3 activities each.
  const own = await createWorker(
    workerOptions(config, { pool: undefined, workerOptions: { maxConcurrentActivityTaskExecutions: 3 } }),
  );
  expect(own.pool).not.toBe(db.pool);
  expect(own.pool.options.max).toBe(poolSizeFor({ activityConcurrency: 6 }));
  expect(own.pool.options.max).toBe(8);
  const running = own.run();
  // It serves steps with that pool.
  const client = await CairnClient.connect(config);
  try {
    await client.startTask({
      taskKey: 'own-pool',
      goal: 'write',
      steps: [{ id: 'w', role: 'writer', title: 'write' }],
    });
    await client.result('own-pool');
  } finally {
    await client.close();
  }
  await own.shutdown();
  await running;
  expect(own.pool.ended).toBe(true);

  const configured = await createWorker(
    workerOptions(
      { ...config, pgPoolMax: 5 },
      { pool: undefined, workerOptions: { maxConcurrentActivityTaskExecutions: 40 } },
    ),
  );
  expect(configured.pool.options.max).toBe(5);
  void configured.run();
  await configured.shutdown();

  const givenMax = db.pool.options.max;
  const given = await createWorker(
    workerOptions(config, { workerOptions: { maxConcurrentActivityTaskExecutions: 1 } }),
  );
  expect(given.pool).toBe(db.pool);
  const r = given.run();
  await given.shutdown();
  await r;
  expect(db.pool.options.max).toBe(givenMax);
  expect(db.pool.ended).toBe(false);
  expect((await db.pool.query('select 1 as one')).rows[0].one).toBe(1);
});

it('a worker older than a breaking migration the database has does not start, naming it; non-breaking ones it runs with', async () => {
  const ahead = await createTestDatabase();
  try {
    const { rows } = await ahead.adminPool.query<{ n: number }>(
      'select max(version)::int as n from cairn.schema_migrations',
    );
    const n = rows[0]!.n;
    const name = (v: number, what: string) => `${String(v).padStart(3, '0')}_${what}`;
    const record = (v: number, what: string, breaking: boolean) =>
      ahead.adminPool.query(
        `insert into cairn.schema_migrations (version, name, checksum, breaking) values ($1, $2, 'x', $3)`,
        [v, name(v, what), breaking],
      );
    await record(n + 1, 'add_note', false);
    const config = testConfig(ahead.url);
    const older = await createWorker(workerOptions(config, { pool: ahead.pool }));
    expect(older.schema).toEqual({ version: n + 1, ahead: [name(n + 1, 'add_note')] });
    void older.run();
    await older.shutdown();

    await record(n + 2, 'drop_note', true);
    const err = await createWorker(workerOptions(config, { pool: ahead.pool })).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'MigrationError', code: 'SCHEMA_AHEAD' });
    expect((err as Error).message).toContain(`${name(n + 2, 'drop_note')} is a breaking migration`);
    // And a worker making its own pool ends it on the way out.
    const own = await createWorker(workerOptions(config, { pool: undefined })).catch((e: unknown) => e);
    expect(own).toMatchObject({ code: 'SCHEMA_AHEAD' });
  } finally {
    await ahead.drop();
  }
});
