/**
 * The write path under concurrency (issue 14, item 3): 8 writers appending validated single
 * observations, each to an entity of its own, then all 8 to one hot entity (the serialised case:
 * every append waits for the entity's head lock), against 8 writers of raw single-row INSERTs.
 * Throughput is the timed row; each case's p95 append latency over every append of the run is a
 * metric. Then the invariants the run must leave behind: every chain the write benchmarks wrote
 * verifies (gapless versions, hashes, provenance hashes, heads), checked after the run.
 */
import type pg from 'pg';
import { appendObservations, type AppendItem } from '../../src/store/observations/append';
import { verifyLog } from '../../src/store/observations/verify';
import { createPool } from '../../src/store/pool';
import type { BenchEnv } from '../env';
import { benchFields, benchItem, benchTypes, BENCH_ENTITY_TYPE } from '../fixtures';
import { defineBenchmark, defineMetric, percentile, runConcurrently, type BenchEntry } from '../harness';
import { benchProvenance, createRawTable, insertRawSingle, RawRowMaker, type RawRow } from '../raw';
import { batchEntity } from './calibration';

export const WRITERS = 'concurrent writers';
const WRITERS_N = 8;

export function writerBenchmarks(env: BenchEnv): BenchEntry[] {
  const { runId, sizes } = env;
  const ops = sizes.singleInserts;
  const lanes = () =>
    createPool(env.config.databaseUrl, {
      max: WRITERS_N,
      applicationName: 'cairn-bench-writers',
      scopes: 'all',
    });
  const close = (pool: pg.Pool) => pool.end();
  let calls = 0;
  const latencies = { spread: [] as number[], hot: [] as number[], raw: [] as number[] };
  const keep = (into: number[], round: { warmup: boolean }, values: number[]) => {
    if (!round.warmup) into.push(...values);
  };
  const entityOf = (lane: number) => `writer-${runId}-${lane}`;
  const hotEntity = `hot-${runId}`;
  const item = (entityId: string, i: number): AppendItem => ({
    entityType: BENCH_ENTITY_TYPE,
    entityId,
    type: benchItem.name,
    fields: benchFields(i),
  });
  const append = (pool: pg.Pool, entityId: string, i: number) =>
    appendObservations(pool, benchTypes, [item(entityId, i)], {
      provenance: benchProvenance(runId, 'writers'),
      idempotencyPrefix: `bench:${runId}:writers:${calls++}`,
      observedAt: new Date().toISOString(),
    });

  let rawTable: Promise<void> | undefined;
  const rawSpread = defineBenchmark<{ pool: pg.Pool; maker: RawRowMaker; rows: RawRow[] }>({
    name: `raw single-row INSERTs, ${WRITERS_N} writers`,
    group: WRITERS,
    unit: 'ops/s',
    opName: 'rows',
    ops,
    async setup() {
      // The calibration's table when it made one (its setup runs first), else a fresh one.
      await (rawTable ??= (async () => {
        const { rows } = await env.ownerPool.query<{ ok: boolean }>(
          `select to_regclass('bench_raw.observations') is not null as ok`,
        );
        if (!rows[0]?.ok) await createRawTable(env.ownerPool);
      })());
      return { pool: lanes(), maker: new RawRowMaker(`raw:${runId}:writers`), rows: [] };
    },
    teardown: (s) => close(s.pool),
    prepare(s, round) {
      s.rows = Array.from({ length: round.ops }, (_, i) =>
        s.maker.row(`raw-writer-${runId}-${i % WRITERS_N}`, i),
      );
    },
    async run(s, round) {
      const p = benchProvenance(runId, 'raw-writers');
      keep(
        latencies.raw,
        round,
        await runConcurrently(round.ops, WRITERS_N, (i) => insertRawSingle(s.pool, s.rows[i]!, p)),
      );
    },
  });

  const spread = defineBenchmark<pg.Pool>({
    name: `validated single appends, ${WRITERS_N} writers × ${WRITERS_N} entities`,
    group: WRITERS,
    unit: 'ops/s',
    opName: 'rows',
    ops,
    baseline: rawSpread,
    setup: async () => lanes(),
    teardown: close,
    async run(pool, round) {
      // Lane i % 8 always writes entity i % 8: no two writers share a head.
      keep(
        latencies.spread,
        round,
        await runConcurrently(round.ops, WRITERS_N, (i) => append(pool, entityOf(i % WRITERS_N), i)),
      );
    },
  });

  const hot = defineBenchmark<pg.Pool>({
    name: `validated single appends, ${WRITERS_N} writers × 1 hot entity`,
    group: WRITERS,
    unit: 'ops/s',
    opName: 'rows',
    ops,
    baseline: spread,
    note: 'serialised on the entity head lock; the ratio to the spread case shows what contention costs',
    setup: async () => lanes(),
    teardown: close,
    async run(pool, round) {
      keep(
        latencies.hot,
        round,
        await runConcurrently(round.ops, WRITERS_N, (i) => append(pool, hotEntity, i)),
      );
    },
  });

  const p95 = (name: string, values: number[]) =>
    defineMetric({
      name: `${name}: p95 append latency over every append of the run`,
      group: WRITERS,
      unit: 'ms',
      async measure() {
        if (values.length === 0) throw new Error('no appends measured');
        return percentile(values, 95);
      },
    });

  // Every chain the write benchmarks touched, verified from version 1 after the run.
  const chains = defineMetric({
    name: 'chain problems after the run (verifyLog of every entity the write benchmarks wrote)',
    group: WRITERS,
    unit: 'problems',
    note: 'must be 0: gapless versions, content/provenance/chain hashes and heads all re-derived',
    async measure() {
      const entities = [
        ...Array.from({ length: WRITERS_N }, (_, i) => entityOf(i)),
        hotEntity,
        `single-${runId}`,
        ...Array.from({ length: 10 }, (_, i) => batchEntity(runId, i)),
      ];
      let rows = 0;
      let checked = 0;
      const problems: string[] = [];
      for (const entityId of entities) {
        const r = await verifyLog(env.pool, { entity: { entityType: BENCH_ENTITY_TYPE, entityId } }).catch(
          (err: unknown) => {
            // An entity a deselected benchmark never wrote.
            if (err instanceof Error && err.name === 'EntityNotFoundError') return undefined;
            throw err;
          },
        );
        if (!r) continue;
        checked++;
        rows += r.checked;
        problems.push(...r.problems.map((p) => `${p.entity}@${p.version}: ${p.problem}`));
      }
      if (problems.length > 0)
        throw new Error(`${problems.length} chain problems: ${problems.slice(0, 3).join('; ')}`);
      env.log(`chains verified: ${rows.toLocaleString('en-US')} rows of ${checked} entities, no problem`);
      return problems.length;
    },
  });

  return [
    spread,
    hot,
    rawSpread,
    p95(`${WRITERS_N} writers × ${WRITERS_N} entities`, latencies.spread),
    p95(`${WRITERS_N} writers × 1 hot entity`, latencies.hot),
    p95(`raw INSERTs, ${WRITERS_N} writers`, latencies.raw),
    chains,
  ];
}
