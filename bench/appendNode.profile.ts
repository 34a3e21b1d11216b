/**
 * Where the Node side of an append spends its CPU (issue 14): the bench's append shapes — a
 * validated single append, a batch of 1,000, the single decision in its own transaction and
 * behind a 20-entity read set — and the raw single-row and unnest INSERTs they are compared
 * with, each in a loop against a scratch database, with this process's CPU time per row (user +
 * system, `process.cpuUsage`, every thread) and the pool's socket reads (event-loop wake-ups
 * for answers) per op. Run it under the V8 profiler to see the functions:
 *
 *   node --import tsx --cpu-prof --cpu-prof-dir /tmp/prof bench/appendNode.profile.ts \
 *     [--only raw,single,rawbatch,batch,reads] [--ops 2000] [--batches 20] \
 *     [--database cairn_append_node_profile]
 *
 * Not part of `cairn bench`: an experiment that names the remaining cost (see bench/README.md,
 * "Node side of appends, round 4"). On a loaded machine CPU per op swings ±50% from run to run;
 * compare runs alternated with the base commit, several of each.
 */
import { parseArgs } from 'node:util';
import type { ReadSetEntry } from '../src/shared/readSets';
import { appendObservations, type AppendContext, type AppendItem } from '../src/store/observations/append';
import { registerObservationTypes } from '../src/store/observations/registerTypes';
import { createPool, withTransaction } from '../src/store/pool';
import { appendWithReads } from '../src/store/staleness';
import { benchFields, benchItem, benchTypes, BENCH_ENTITY_TYPE } from './fixtures';
import { createProfileDatabase } from './profileDatabase';
import { benchProvenance, createRawTable, insertRawBatch, insertRawSingle, RawRowMaker } from './raw';

const { values } = parseArgs({
  options: {
    only: { type: 'string', default: 'raw,single,rawbatch,batch,reads' },
    ops: { type: 'string', default: '2000' },
    batches: { type: 'string', default: '20' },
    database: { type: 'string', default: 'cairn_append_node_profile' },
  },
});
const ops = Number(values.ops);
const batches = Number(values.batches);
const only = new Set(values.only.split(','));

let calls = 0;
/** Socket reads on the pool's connections: each is a wake-up of the event loop for an answer. */
let dataEvents = 0;
const ctx = (activityId: string): AppendContext => {
  const n = calls++;
  return {
    provenance: benchProvenance('profile', `${activityId}-${n}`),
    idempotencyPrefix: `profile:${activityId}:${n}`,
    observedAt: new Date().toISOString(),
  };
};
const item = (entityId: string, i: number, kind: AppendItem['kind'] = 'assertion'): AppendItem => ({
  entityType: BENCH_ENTITY_TYPE,
  entityId,
  type: benchItem.name,
  kind,
  fields: benchFields(i),
});

/** CPU µs of this process per op over `n` ops of `fn`. */
async function measure(name: string, n: number, perOp: number, fn: (i: number) => Promise<unknown>) {
  const warm = Math.max(5, Math.ceil(n / 10));
  for (let i = 0; i < warm; i++) await fn(i);
  const d0 = dataEvents;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = warm; i < warm + n; i++) await fn(i);
  const c = process.cpuUsage(c0);
  const reads = dataEvents - d0;
  const ms = performance.now() - t0;
  const rows = n * perOp;
  console.log(
    `${name}: node CPU ${((c.user + c.system) / rows).toFixed(1)} µs/row, wall ${((ms * 1000) / rows).toFixed(1)} µs/row (${rows} rows), socket reads ${(reads / n).toFixed(2)}/op`,
  );
}

async function main(): Promise<void> {
  const scratch = await createProfileDatabase(values.database);
  const pool = createPool(scratch.url, {
    max: 4,
    scopes: 'all',
    applicationName: 'cairn-append-node-profile',
  });
  pool.on('connect', (client) => {
    (client as unknown as { connection: { stream: NodeJS.EventEmitter } }).connection.stream.on(
      'data',
      () => {
        dataEvents++;
      },
    );
  });
  const owner = createPool(scratch.url, { max: 1, applicationRole: null });
  try {
    await registerObservationTypes(pool, benchTypes);
    await createRawTable(owner);
    const p = benchProvenance('profile', 'raw');
    if (only.has('raw')) {
      const maker = new RawRowMaker('raw:single');
      const rows = Array.from({ length: ops * 1.2 }, (_, i) => maker.row('raw-single', i));
      await measure('raw single-row INSERT', ops, 1, (i) => insertRawSingle(pool, rows[i]!, p));
    }
    if (only.has('rawbatch')) {
      const maker = new RawRowMaker('raw:batch');
      const all = Array.from({ length: batches * 2 }, (_, b) =>
        Array.from({ length: 1000 }, (_, i) => maker.row(`raw-batch-${i % 20}`, b * 1000 + i)),
      );
      await measure('raw batch of 1,000', batches, 1000, (b) => insertRawBatch(pool, all[b]!, p));
    }
    if (only.has('single'))
      await measure('single append', ops, 1, (i) =>
        appendObservations(pool, benchTypes, [item(`single-${i % 4}`, i)], ctx('single')),
      );
    if (only.has('batch')) {
      await measure('batch of 1,000', batches, 1000, (b) =>
        appendObservations(
          pool,
          benchTypes,
          Array.from({ length: 1000 }, (_, i) => item(`batch-${i % 20}`, b * 1000 + i)),
          ctx('batch'),
        ),
      );
    }
    if (only.has('reads')) {
      const stored = await appendObservations(
        pool,
        benchTypes,
        Array.from({ length: 19 }, (_, i) => item(`rs-ctx-${i}`, i)),
        ctx('rs-setup'),
      );
      const context: ReadSetEntry[] = stored.map((o) => ({
        entityType: o.entityType,
        entityId: o.entityId,
        version: o.entityVersion,
        fields: ['label', 'score'],
      }));
      await measure('decision in its own transaction', ops, 1, (i) => {
        const c = ctx('rs-plain');
        return withTransaction(pool, (client) =>
          appendObservations(client, benchTypes, [item('rs-plain', i, 'decision')], c),
        );
      });
      let version = 0;
      await measure('decision behind a 20-entity read set', ops, 1, async (i) => {
        const entries = [
          ...context,
          { entityType: BENCH_ENTITY_TYPE, entityId: 'rs-decide', version, fields: ['status'] },
        ];
        const { appended } = await appendWithReads(
          pool,
          benchTypes,
          [item('rs-decide', i, 'decision')],
          ctx('rs-reads'),
          entries,
        );
        version = appended[0]!.entityVersion;
      });
    }
  } finally {
    await pool.end();
    await owner.end();
    await scratch.drop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
