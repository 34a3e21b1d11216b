/**
 * Workflow-test helpers: a config pointing at the test server with a unique task-queue prefix
 * per test (isolation without separate servers), and a worker built from the pre-bundled
 * workflows of the global setup.
 */
import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import type pg from 'pg';
import type { AgentDefinition } from '../../src/agent';
import { CairnClient } from '../../src/client';
import type { CairnConfig } from '../../src/config';
import type { ObservationTypeRegistry } from '../../src/shared/observationTypes';
import { createWorker, type CairnWorker } from '../../src/worker';
import type { AgentStepFaults } from '../../activities/agentStep';

export function testConfig(databaseUrl: string): CairnConfig {
  const env = inject('cairnTest');
  return {
    databaseUrl,
    temporalAddress: env.temporalAddress,
    temporalNamespace: env.namespace,
    taskQueuePrefix: `t${randomUUID().slice(0, 8)}`,
    temporalUiUrl: env.uiUrl,
    temporalCli: undefined,
  };
}

let runtimeInstalled = false;
/** Worker logs at WARN so test output shows failures, not every state change. */
function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({ logger: new DefaultLogger('WARN') });
}

export interface TestStack {
  config: CairnConfig;
  client: CairnClient;
  worker: CairnWorker;
  running: Promise<void>;
  stop(): Promise<void>;
}

export async function startTestStack(opts: {
  pool: pg.Pool;
  databaseUrl: string;
  registry: ObservationTypeRegistry;
  agents: AgentDefinition[];
  config?: CairnConfig;
  serveTasks?: boolean;
  faults?: AgentStepFaults;
}): Promise<TestStack> {
  quietRuntime();
  const config = opts.config ?? testConfig(opts.databaseUrl);
  const connection = await NativeConnection.connect({ address: config.temporalAddress });
  const worker = await createWorker({
    config,
    pool: opts.pool,
    registry: opts.registry,
    agents: opts.agents,
    connection,
    serveTasks: opts.serveTasks ?? true,
    workflowBundle: { codePath: inject('cairnTest').workflowBundlePath },
    heartbeatEveryMs: 200,
    ...(opts.faults ? { faults: opts.faults } : {}),
    workerOptions: { shutdownGraceTime: '2s' },
  });
  const running = worker.run();
  const client = await CairnClient.connect(config);
  return {
    config,
    client,
    worker,
    running,
    async stop() {
      await client.close();
      await worker.shutdown();
      await connection.close();
    },
  };
}

/**
 * One echo task run by a worker and a client that both connect with `config` (connection
 * settings under test: TLS, mTLS, an API key). Returns the task's result.
 */
export async function runEchoTaskWith(
  config: CairnConfig,
  pool: pg.Pool,
  agents: { echo: AgentDefinition; types: ObservationTypeRegistry },
  goal: string,
  text: string,
): Promise<Awaited<ReturnType<CairnClient['result']>>> {
  const worker = await createWorker({
    config,
    pool,
    registry: agents.types,
    agents: [agents.echo],
    workflowBundle: { codePath: inject('cairnTest').workflowBundlePath },
    workerOptions: { shutdownGraceTime: '1s' },
  });
  const running = worker.run();
  const client = await CairnClient.connect(config);
  try {
    const taskKey = `conn-${randomUUID().slice(0, 8)}`;
    // A step id of its own: echo writes note/<step id>, and an entity belongs to one task's scope.
    const stepId = `s${randomUUID().slice(0, 8)}`;
    await client.startTask({
      taskKey,
      goal,
      steps: [{ id: stepId, role: 'echo', title: 'echo', input: { text } }],
    });
    return await client.result(taskKey);
  } finally {
    await client.close();
    await worker.shutdown();
    await running;
  }
}
