/**
 * What the benchmarks share: the bench database's pools, the run's id (so keys, entity ids and
 * workflow ids never collide with an earlier run), sizes, and — only when a selected benchmark
 * needs it — a Temporal worker and client on the bench's own task queues.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import type pg from 'pg';
import { CairnClient } from '../src/client';
import type { CairnConfig } from '../src/config';
import { registerObservationTypes } from '../src/store/observations/registerTypes';
import { createPool } from '../src/store/pool';
import { createWorker, type CairnWorker } from '../src/worker';
import { benchNoopAgent, benchSizedAgent, benchTypes } from './fixtures';
import { BENCH_WORKFLOWS_PATH, benchTaskActivities } from './benchWorkflows';
import { workflowBundlerOptions } from '../src/workflowBundle';

export interface BenchSizes {
  /** Measured rounds (a warm-up round comes on top). */
  rounds: number;
  /** Single-row inserts / appends per round. */
  singleInserts: number;
  /** Rows per batched statement. */
  batchSize: number;
  /** Batched statements per round. */
  batches: number;
  /** Observations in the big entity's history (reduction, read). */
  history: number;
  /** Observations in the small entity's history (read baseline). */
  smallHistory: number;
  /** Observations in the set-union entity's history (its state grows with it). */
  taggedHistory: number;
  /** Entity reads per round. */
  reads: number;
  /** Workflows per throughput round. */
  workflows: number;
  /** Workflows in flight in a throughput round. */
  concurrency: number;
  /** Sequential workflows per latency round. */
  sequential: number;
}

export const FULL_SIZES: BenchSizes = {
  rounds: 7,
  singleInserts: 1000,
  batchSize: 1000,
  batches: 10,
  history: 100_000,
  smallHistory: 1000,
  taggedHistory: 10_000,
  reads: 20,
  workflows: 60,
  concurrency: 20,
  sequential: 10,
};

/** `--quick`: a smoke test of every benchmark, not a measurement. */
export const QUICK_SIZES: BenchSizes = {
  rounds: 3,
  singleInserts: 200,
  batchSize: 1000,
  batches: 2,
  history: 10_000,
  smallHistory: 1000,
  taggedHistory: 3000,
  reads: 5,
  workflows: 20,
  concurrency: 20,
  sequential: 3,
};

export interface TemporalEnv {
  client: CairnClient;
  worker: CairnWorker;
}

export interface BenchEnv {
  /** The bench's configuration: the bench database and the bench's own task-queue prefix. */
  config: CairnConfig;
  sizes: BenchSizes;
  /** Unique per run; prefixes every key and id the run writes. */
  runId: string;
  /** Acts as the application role, like the product does, with an explicit grant of every scope. */
  pool: pg.Pool;
  /** The login's own role, for DDL (bench_raw). */
  ownerPool: pg.Pool;
  log: (line: string) => void;
  /** The worker and client, created on first use. */
  temporal(): Promise<TemporalEnv>;
  close(): Promise<void>;
}

export async function createBenchEnv(opts: {
  config: CairnConfig;
  sizes: BenchSizes;
  log: (line: string) => void;
}): Promise<BenchEnv> {
  const runId =
    new Date()
      .toISOString()
      .replace(/[-:.TZ]/g, '')
      .slice(0, 14) + Math.random().toString(36).slice(2, 6);
  const pool = createPool(opts.config.databaseUrl, { max: 4, applicationName: 'cairn-bench', scopes: 'all' });
  const ownerPool = createPool(opts.config.databaseUrl, {
    max: 2,
    applicationRole: null,
    applicationName: 'cairn-bench-owner',
  });
  await registerObservationTypes(pool, benchTypes);

  let temporal: Promise<TemporalEnv> | undefined;
  let workerPool: pg.Pool | undefined;
  let running: Promise<void> | undefined;

  const startTemporal = async (): Promise<TemporalEnv> => {
    quietTemporalRuntime();
    // Its own pool, so activities in flight never queue behind the Postgres benchmarks.
    workerPool = createPool(opts.config.databaseUrl, {
      max: opts.sizes.concurrency + 2,
      applicationName: 'cairn-bench-worker',
    });
    const t0 = Date.now();
    const worker = await createWorker({
      config: opts.config,
      pool: workerPool,
      registry: benchTypes,
      agents: [benchNoopAgent, benchSizedAgent],
      // The calibration workflow is the bench's own, never a production worker's.
      workflowsPath: BENCH_WORKFLOWS_PATH,
      // Bundled as Cairn's own workflows are (zod preloaded), so the baseline pays the same.
      bundlerOptions: workflowBundlerOptions(),
      taskActivities: benchTaskActivities,
    });
    running = worker.run();
    // A worker that dies would otherwise surface only as workflows that never finish.
    running.catch((err: unknown) => opts.log(`bench worker stopped: ${String(err)}`));
    opts.log(
      `worker serving ${worker.taskQueues.join(', ')} (bundled in ${((Date.now() - t0) / 1000).toFixed(1)} s)`,
    );
    const client = await CairnClient.connect(opts.config);
    return { client, worker };
  };

  return {
    config: opts.config,
    sizes: opts.sizes,
    runId,
    pool,
    ownerPool,
    log: opts.log,
    temporal: () => (temporal ??= startTemporal()),
    async close() {
      if (temporal) {
        const t = await temporal.catch(() => undefined);
        await t?.client.close();
        await t?.worker.shutdown();
        await running?.catch(() => undefined);
      }
      await workerPool?.end();
      await pool.end();
      await ownerPool.end();
    },
  };
}

/** The worker's INFO lines (state changes of every worker) would bury the progress log. */
function quietTemporalRuntime(): void {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // Already installed (by the embedding program): keep its logger.
  }
}
