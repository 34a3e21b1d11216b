/**
 * Calibration ("walking skeleton"): what this machine's Postgres and Temporal do with no Cairn
 * in the way. Every other row is compared with one of these, measured in the same run.
 */
import type { benchNoopWorkflow } from '../workflows/benchNoop';
import { taskWorkflowQueue } from '../../src/shared/task';
import type { BenchEnv, TemporalEnv } from '../env';
import { defineBenchmark, runConcurrently, runSequentially } from '../harness';
import {
  benchProvenance,
  createRawTable,
  insertRawBatch,
  insertRawSingle,
  RawRowMaker,
  type RawRow,
} from '../raw';

export const CALIBRATION = 'calibration';

export function calibrationBenchmarks(env: BenchEnv) {
  const { sizes, runId } = env;
  let rawTable: Promise<void> | undefined;
  const ensureRawTable = () => (rawTable ??= createRawTable(env.ownerPool));

  const rawSingle = defineBenchmark<{ maker: RawRowMaker; rows: RawRow[] }>({
    name: 'raw pg single-row INSERT',
    group: CALIBRATION,
    unit: 'ops/s',
    opName: 'rows',
    ops: sizes.singleInserts,
    async setup() {
      await ensureRawTable();
      return { maker: new RawRowMaker(`raw:${runId}:single`), rows: [] };
    },
    prepare(s, round) {
      s.rows = Array.from({ length: round.ops }, (_, i) => s.maker.row(`single-${runId}`, i));
    },
    async run(s) {
      const p = benchProvenance(runId, 'raw-single');
      for (const row of s.rows) await insertRawSingle(env.pool, row, p);
    },
  });

  const rawBatch = defineBenchmark<{ maker: RawRowMaker; batches: RawRow[][] }>({
    name: `raw pg INSERT…SELECT unnest, ${sizes.batchSize.toLocaleString('en-US')}/statement`,
    group: CALIBRATION,
    unit: 'ops/s',
    opName: 'rows',
    ops: sizes.batches * sizes.batchSize,
    async setup() {
      await ensureRawTable();
      return { maker: new RawRowMaker(`raw:${runId}:batch`), batches: [] };
    },
    prepare(s) {
      s.batches = Array.from({ length: sizes.batches }, () =>
        Array.from({ length: sizes.batchSize }, (_, i) => s.maker.row(batchEntity(runId, i), i)),
      );
    },
    async run(s) {
      const p = benchProvenance(runId, 'raw-batch');
      for (const batch of s.batches) await insertRawBatch(env.pool, batch, p);
    },
  });

  let seq = 0;
  const bareWorkflow = (t: TemporalEnv) =>
    t.client.temporal.workflow.execute<typeof benchNoopWorkflow>('benchNoopWorkflow', {
      taskQueue: taskWorkflowQueue(env.config.taskQueuePrefix),
      workflowId: `bench-${runId}-bare-${seq++}`,
    });

  const bareThroughput = defineBenchmark<TemporalEnv>({
    name: `bare workflow + 1 no-op activity, ${sizes.concurrency} in flight`,
    group: CALIBRATION,
    unit: 'ops/s',
    opName: 'workflows',
    ops: sizes.workflows,
    needsTemporal: true,
    setup: () => env.temporal(),
    async run(t, round) {
      await runConcurrently(round.ops, sizes.concurrency, () => bareWorkflow(t));
    },
  });

  const bareLatency = defineBenchmark<TemporalEnv>({
    name: 'bare workflow + 1 no-op activity, p50 of sequential runs',
    group: CALIBRATION,
    unit: 'ms',
    ops: sizes.sequential,
    needsTemporal: true,
    setup: () => env.temporal(),
    run: (t, round) => runSequentially(round.ops, () => bareWorkflow(t)),
  });

  return {
    rawSingle,
    rawBatch,
    bareThroughput,
    bareLatency,
    all: [rawSingle, rawBatch, bareThroughput, bareLatency],
  };
}

/** Batches spread over ten entities, as a step writing about several things would. */
export function batchEntity(runId: string, i: number): string {
  return `batch-${runId}-${i % 10}`;
}
