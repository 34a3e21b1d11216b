/**
 * Where a validated single append's Postgres time goes (issue 14): N single appends on one
 * connection with `track_functions = 'all'`, then each function's total and self time per call
 * from pg_stat_user_functions. Per call, because the writer flushes its counters about once a
 * second, so the last appends may not be counted yet. Self time is total minus the tracked
 * functions it called: a plpgsql function's statements, their index inserts, CHECKs and inlined
 * SQL functions count as its own.
 * Runs in a database of its own that it creates and drops:
 *
 *   npx tsx bench/appendSingle.profile.ts [--appends 2000] [--database cairn_append_single_profile]
 *
 * Not part of `cairn bench`: an experiment that names the remaining cost (see bench/README.md).
 */
import { parseArgs } from 'node:util';
import { appendObservations } from '../src/store/observations/append';
import { registerObservationTypes } from '../src/store/observations/registerTypes';
import { createPool } from '../src/store/pool';
import { createProfileDatabase } from './profileDatabase';
import { benchFields, benchItem, benchTypes, BENCH_ENTITY_TYPE } from './fixtures';
import { benchProvenance } from './raw';

const { values } = parseArgs({
  options: {
    appends: { type: 'string', default: '2000' },
    database: { type: 'string', default: 'cairn_append_single_profile' },
  },
});
const appends = Number(values.appends);
const DB = values.database;

async function main(): Promise<void> {
  const scratch = await createProfileDatabase(DB, { settings: { track_functions: 'all' } });
  const url = scratch.url;
  const pool = createPool(url, { max: 1, scopes: 'all', applicationName: 'cairn-bench-profile' });
  const owner = createPool(url, { max: 1, applicationRole: null });
  try {
    await registerObservationTypes(pool, benchTypes);
    const append = async (i: number, prefix: string) =>
      appendObservations(
        pool,
        benchTypes,
        [
          {
            entityType: BENCH_ENTITY_TYPE,
            entityId: `single-${i % 4}`,
            type: benchItem.name,
            fields: benchFields(i),
          },
        ],
        {
          provenance: benchProvenance('profile', 'single'),
          idempotencyPrefix: `${prefix}:${i}`,
          observedAt: new Date().toISOString(),
        },
      );
    for (let i = 0; i < 200; i++) await append(i, 'warm');
    await owner.query('select pg_stat_reset()');
    await owner.query('select pg_stat_clear_snapshot()');
    const t0 = performance.now();
    for (let i = 0; i < appends; i++) await append(i, 'run');
    const ms = performance.now() - t0;
    // The statistics reach the shared counters when the writer's session goes idle.
    await new Promise((r) => setTimeout(r, 1500));
    await owner.query('select pg_stat_clear_snapshot()');
    const stats = await owner.query<{ fn: string; calls: string; total: number; self: number }>(
      `select schemaname || '.' || funcname as fn, calls, total_time as total, self_time as self
         from pg_stat_user_functions where calls >= $1 order by self_time desc`,
      [Math.ceil(appends / 10)], // the appends' functions, not the registration's
    );
    console.log(`${appends} single appends: ${((ms * 1000) / appends).toFixed(0)} µs wall per append`);
    console.log('   calls counted  total µs/call  self µs/call  function');
    for (const r of stats.rows) {
      const calls = Number(r.calls);
      console.log(
        `${String(calls).padStart(15)}${((r.total * 1000) / calls).toFixed(1).padStart(15)}` +
          `${((r.self * 1000) / calls).toFixed(1).padStart(14)}  ${r.fn}`,
      );
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
