/**
 * The worker factory. One process can serve the task workflow and any number of agent roles;
 * each role polls its own task queue, so roles scale out as separate processes.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions, type WorkflowBundleOption } from '@temporalio/worker';
import type pg from 'pg';
import { createAgentActivities, createTaskActivities } from '../activities';
import type { AgentStepFaults } from '../activities/agentStep';
import { createCoordinationActivities } from '../activities/coordination';
import type { AgentDefinition } from './agent';
import type { CairnConfig } from './config';
import { temporalConnectionOptions } from './temporalConnection';
import { withCoordinationTypes } from './shared/coordinationTypes';
import type { ObservationTypeRegistry } from './shared/observationTypes';
import { roleTaskQueue, taskWorkflowQueue } from './shared/task';
import { registerObservationTypes } from './store/observations/registerTypes';

/**
 * Where the workflow code comes from. An installed package (or a build) has the workflows bundled
 * at build time next to the compiled code (dist/workflow-bundle.js): the worker loads it as is,
 * with no webpack step at start-up (Temporal's bundler cannot compile TypeScript inside
 * node_modules anyway). A clone of the repository running its sources with tsx has no bundle and
 * bundles workflows/index.ts when the worker starts.
 */
export const WORKFLOW_BUNDLE_PATH = path.resolve(__dirname, '..', 'workflow-bundle.js');
export const WORKFLOWS_PATH = resolveWorkflowsPath(path.resolve(__dirname, '..', 'workflows'));

function resolveWorkflowsPath(dir: string): string {
  const ts = path.join(dir, 'index.ts');
  return existsSync(ts) ? ts : path.join(dir, 'index.js');
}

/** The bundle if this copy of Cairn was built, else the workflow sources. */
export function defaultWorkflowSource():
  { workflowBundle: WorkflowBundleOption } | { workflowsPath: string } {
  return existsSync(WORKFLOW_BUNDLE_PATH)
    ? { workflowBundle: { codePath: WORKFLOW_BUNDLE_PATH } }
    : { workflowsPath: WORKFLOWS_PATH };
}

export interface CreateWorkerOptions {
  config: CairnConfig;
  pool: pg.Pool;
  registry: ObservationTypeRegistry;
  agents: readonly AgentDefinition[];
  /** Serve the task workflow (and its bookkeeping activities) too. Default true. */
  serveTasks?: boolean;
  connection?: NativeConnection;
  /** A prebuilt bundle (tests bundle once); default: the package's own (see defaultWorkflowSource). */
  workflowBundle?: WorkflowBundleOption;
  /**
   * Workflow sources to bundle at start-up instead (the repository's bench adds its calibration
   * workflow this way); with it, `taskActivities` may add the activities those workflows call.
   */
  workflowsPath?: string;
  taskActivities?: Record<string, (...args: never[]) => Promise<unknown>>;
  clock?: () => Date;
  agentId?: (role: string) => string;
  heartbeatEveryMs?: number;
  /** Fault-injection points (tests only). */
  faults?: AgentStepFaults;
  /** The client agents' agreements use (ctx.propose / vote / awaitAgreement); default: one on the worker's connection. */
  temporalClient?: Client;
  /** Passed to every Temporal worker (e.g. shutdownGraceTime, maxConcurrentActivityTaskExecutions). */
  workerOptions?: Pick<
    WorkerOptions,
    'shutdownGraceTime' | 'maxConcurrentActivityTaskExecutions' | 'maxCachedWorkflows'
  >;
}

export interface CairnWorker {
  /** Task queues served, for logs. */
  taskQueues: string[];
  /** Runs until shutdown() (or a fatal error). */
  run(): Promise<void>;
  shutdown(): Promise<void>;
}

export async function createWorker(opts: CreateWorkerOptions): Promise<CairnWorker> {
  // The worker's types are stored in Postgres so every reader (CLI, other workers) knows them.
  // Cairn's own types (votes, decisions, summaries) are registered alongside.
  await registerObservationTypes(opts.pool, withCoordinationTypes(opts.registry));
  const ownsConnection = !opts.connection;
  const connection =
    opts.connection ?? (await NativeConnection.connect(temporalConnectionOptions(opts.config)));
  const namespace = opts.config.temporalNamespace;
  const prefix = opts.config.taskQueuePrefix;
  const agentActivities = createAgentActivities({
    pool: opts.pool,
    registry: opts.registry,
    agents: opts.agents,
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.agentId ? { agentId: opts.agentId } : {}),
    ...(opts.heartbeatEveryMs !== undefined ? { heartbeatEveryMs: opts.heartbeatEveryMs } : {}),
    ...(opts.faults ? { faults: opts.faults } : {}),
    ...(opts.config.dbRetryMs !== undefined ? { dbRetryMs: opts.config.dbRetryMs } : {}),
    ...(opts.config.payloadInlineMaxBytes !== undefined
      ? { payloadInlineMaxBytes: opts.config.payloadInlineMaxBytes }
      : {}),
    temporalClient: opts.temporalClient ?? new Client({ connection, namespace }),
    taskQueuePrefix: prefix,
  });
  const workers: Worker[] = [];
  try {
    if (opts.serveTasks ?? true) {
      workers.push(
        await Worker.create({
          connection,
          namespace,
          taskQueue: taskWorkflowQueue(prefix),
          ...workflowSource(opts),
          activities: {
            ...opts.taskActivities,
            ...createTaskActivities({ pool: opts.pool }),
            ...createCoordinationActivities({
              pool: opts.pool,
              ...(opts.clock ? { clock: opts.clock } : {}),
            }),
          },
          ...opts.workerOptions,
        }),
      );
    }
    const roles = [...new Set(opts.agents.map((a) => a.role))];
    for (const role of roles) {
      workers.push(
        await Worker.create({
          connection,
          namespace,
          taskQueue: roleTaskQueue(prefix, role),
          activities: agentActivities,
          ...opts.workerOptions,
        }),
      );
    }
  } catch (err) {
    if (ownsConnection) await connection.close();
    throw err;
  }

  let running: Promise<void> | undefined;
  return {
    taskQueues: workers.map((w) => w.options.taskQueue),
    run() {
      running ??= Promise.all(workers.map((w) => w.run())).then(async () => {
        if (ownsConnection) await connection.close();
      });
      return running;
    },
    async shutdown() {
      for (const w of workers) {
        if (w.getState() === 'RUNNING') w.shutdown();
      }
      await running;
    },
  };
}

function workflowSource(
  opts: CreateWorkerOptions,
): { workflowBundle: WorkflowBundleOption } | { workflowsPath: string } {
  if (opts.workflowBundle && opts.workflowsPath)
    throw new Error('createWorker: give workflowBundle or workflowsPath, not both');
  if (opts.workflowBundle) return { workflowBundle: opts.workflowBundle };
  if (opts.workflowsPath) return { workflowsPath: opts.workflowsPath };
  return defaultWorkflowSource();
}
