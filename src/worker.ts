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
import { createPool, poolSizeFor, TEMPORAL_DEFAULT_ACTIVITY_CONCURRENCY } from './store/pool';
import { checkSchemaCompatible, type SchemaCheck } from './store/schemaCheck';
import { telemetryWorkflowModules, type CairnTelemetry } from './telemetry/setup';
import { workerDeploymentOptions } from './workerVersioning';
import { workflowBundlerOptions } from './workflowBundle';

/**
 * Where the workflow code comes from. An installed package (or a build) has the workflows bundled
 * at build time next to the compiled code (dist/workflow-bundle.js): the worker loads it as is,
 * with no webpack step at start-up (Temporal's bundler cannot compile TypeScript inside
 * node_modules anyway). A clone of the repository running its sources with tsx has no bundle and
 * bundles workflows/index.ts when the worker starts.
 */
export const WORKFLOW_BUNDLE_PATH = path.resolve(__dirname, '..', 'workflow-bundle.js');
/** The same workflows bundled with Temporal's OpenTelemetry workflow interceptors (telemetry on). */
export const WORKFLOW_OTEL_BUNDLE_PATH = path.resolve(__dirname, '..', 'workflow-bundle-otel.js');
export const WORKFLOWS_PATH = resolveWorkflowsPath(path.resolve(__dirname, '..', 'workflows'));

function resolveWorkflowsPath(dir: string): string {
  const ts = path.join(dir, 'index.ts');
  return existsSync(ts) ? ts : path.join(dir, 'index.js');
}

/** The bundle if this copy of Cairn was built, else the workflow sources. */
export function defaultWorkflowSource(
  telemetry = false,
): { workflowBundle: WorkflowBundleOption } | { workflowsPath: string } {
  const bundle = telemetry ? WORKFLOW_OTEL_BUNDLE_PATH : WORKFLOW_BUNDLE_PATH;
  return existsSync(bundle) ? { workflowBundle: { codePath: bundle } } : { workflowsPath: WORKFLOWS_PATH };
}

export interface CreateWorkerOptions {
  config: CairnConfig;
  /**
   * The Postgres pool, left as it is (size included) and not ended by the worker. Absent: the
   * worker makes its own, sized from its activity concurrency (see poolSizeFor) unless
   * CAIRN_PG_POOL_MAX says otherwise, and ends it when it stops.
   */
  pool?: pg.Pool;
  registry: ObservationTypeRegistry;
  agents: readonly AgentDefinition[];
  /** Serve the task workflow (and its bookkeeping activities) too. Default true. */
  serveTasks?: boolean;
  connection?: NativeConnection;
  /**
   * A prebuilt bundle (tests bundle once); default: the package's own (see defaultWorkflowSource).
   * With telemetry on it must include telemetryWorkflowModules() (workflowInterceptorModules).
   */
  workflowBundle?: WorkflowBundleOption;
  /**
   * Workflow sources to bundle at start-up instead (the repository's bench adds its calibration
   * workflow this way); with it, `taskActivities` may add the activities those workflows call.
   */
  workflowsPath?: string;
  /**
   * Bundler options for a bundle made at start-up. Default: Cairn's (workflowBundlerOptions(),
   * zod preloaded once per worker) when bundling Cairn's own sources, none for `workflowsPath`
   * (a preloaded zod is frozen: see src/workflowBundle.ts for what that rules out).
   */
  bundlerOptions?: WorkerOptions['bundlerOptions'];
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
  /** Traces and metrics (startTelemetry in src/telemetry/setup.ts); absent or off: none. */
  telemetry?: CairnTelemetry;
}

export interface CairnWorker {
  /** Task queues served, for logs. */
  taskQueues: string[];
  /** The Postgres pool the worker's activities use (its own unless one was given). */
  pool: pg.Pool;
  /** The schema the worker checked at start (ahead: newer non-breaking migrations it runs with). */
  schema: SchemaCheck;
  /** Runs until shutdown() (or a fatal error). */
  run(): Promise<void>;
  shutdown(): Promise<void>;
}

export async function createWorker(options: CreateWorkerOptions): Promise<CairnWorker> {
  const ownsPool = !options.pool;
  const opts = { ...options, pool: options.pool ?? createWorkerPool(options) };
  try {
    return await startWorkers(opts, ownsPool);
  } catch (err) {
    if (ownsPool) await opts.pool.end();
    throw err;
  }
}

/**
 * The worker's own pool: one connection per step that can run at once (every Temporal worker
 * it starts runs up to maxConcurrentActivityTaskExecutions activities), see poolSizeFor.
 */
function createWorkerPool(opts: CreateWorkerOptions): pg.Pool {
  const perWorker =
    opts.workerOptions?.maxConcurrentActivityTaskExecutions ?? TEMPORAL_DEFAULT_ACTIVITY_CONCURRENCY;
  const workers = new Set(opts.agents.map((a) => a.role)).size + ((opts.serveTasks ?? true) ? 1 : 0);
  const config = opts.config;
  return createPool(config.databaseUrl, {
    max: poolSizeFor({ configured: config.pgPoolMax, activityConcurrency: perWorker * Math.max(1, workers) }),
    ...(config.pgConnectTimeoutMs !== undefined ? { connectTimeoutMs: config.pgConnectTimeoutMs } : {}),
    ...(config.pgListenUrl !== undefined ? { listenUrl: config.pgListenUrl } : {}),
    applicationName: 'cairn-worker',
  });
}

async function startWorkers(
  opts: CreateWorkerOptions & { pool: pg.Pool },
  ownsPool: boolean,
): Promise<CairnWorker> {
  // Code older than a breaking migration, or newer than the schema, stops here with a clear
  // message, whether or not this process migrated (`cairn worker --no-migrate`).
  const schema = await checkSchemaCompatible(opts.pool);
  // The worker's types are stored in Postgres so every reader (CLI, other workers) knows them.
  // Cairn's own types (votes, decisions, summaries) are registered alongside.
  await registerObservationTypes(opts.pool, withCoordinationTypes(opts.registry));
  const ownsConnection = !opts.connection;
  const connection =
    opts.connection ?? (await NativeConnection.connect(temporalConnectionOptions(opts.config)));
  const telemetry = opts.telemetry?.enabled ? opts.telemetry : undefined;
  // Every Temporal worker: the deployment version, the caller's options, telemetry's interceptors.
  const common = {
    workerDeploymentOptions: workerDeploymentOptions(opts.config),
    ...opts.workerOptions,
    ...telemetry?.workerOptions(),
  };
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
    temporalClient:
      opts.temporalClient ??
      new Client({
        connection,
        namespace,
        ...(telemetry ? { interceptors: { workflow: telemetry.clientInterceptors() } } : {}),
      }),
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
          activities: {
            ...opts.taskActivities,
            ...createTaskActivities({ pool: opts.pool }),
            ...createCoordinationActivities({
              pool: opts.pool,
              ...(opts.clock ? { clock: opts.clock } : {}),
            }),
          },
          ...common,
          ...workflowSource(opts, common.interceptors),
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
          ...common,
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
    pool: opts.pool,
    schema,
    run() {
      running ??= Promise.all(workers.map((w) => w.run()))
        .then(() => undefined)
        .finally(async () => {
          if (ownsConnection) await connection.close();
          if (ownsPool) await opts.pool.end();
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

/**
 * The workflow code. With telemetry on, a bundle made here (from workflowsPath or the sources)
 * gets Temporal's OpenTelemetry workflow interceptors; the package's prebuilt one for it is
 * dist/workflow-bundle-otel.js.
 */
function workflowSource(
  opts: CreateWorkerOptions,
  interceptors: WorkerOptions['interceptors'],
): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath' | 'interceptors' | 'bundlerOptions'> {
  if (opts.workflowBundle && opts.workflowsPath)
    throw new Error('createWorker: give workflowBundle or workflowsPath, not both');
  const telemetry = opts.telemetry?.enabled ?? false;
  if (opts.workflowBundle) return { workflowBundle: opts.workflowBundle };
  const found = opts.workflowsPath ? { workflowsPath: opts.workflowsPath } : defaultWorkflowSource(telemetry);
  if ('workflowBundle' in found) return found;
  // Cairn's own sources bundled here get the same preloads as the prebuilt bundles.
  const bundlerOptions = opts.bundlerOptions ?? (opts.workflowsPath ? undefined : workflowBundlerOptions());
  const source = { ...found, ...(bundlerOptions ? { bundlerOptions } : {}) };
  if (!telemetry) return source;
  return { ...source, interceptors: { ...interceptors, workflowModules: telemetryWorkflowModules() } };
}
