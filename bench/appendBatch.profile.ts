/**
 * Where a validated batch append's database time goes (issue 14): the same 1000-row batch
 * appended with the log's checks switched off one at a time, against the raw INSERT … SELECT
 * unnest of bench/raw.ts, rounds interleaved. Destructive (drops triggers and constraints), so
 * it runs in a database of its own that it creates and drops:
 *
 *   npx tsx bench/appendBatch.profile.ts [--rounds 9] [--writers] [--database cairn_append_profile]
 *
 * Not part of `cairn bench`: an experiment that names the remaining cost (see bench/README.md).
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { headKey } from '../src/store/headWait';
import { appendObservations, type AppendItem } from '../src/store/observations/append';
import { registerObservationTypes } from '../src/store/observations/registerTypes';
import { createPool } from '../src/store/pool';
import { createProfileDatabase } from './profileDatabase';
import { benchFields, benchItem, benchTypes, BENCH_ENTITY_TYPE } from './fixtures';
import { median } from './harness';
import { benchProvenance, createRawTable, insertRawBatch, RawRowMaker } from './raw';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '9' },
    writers: { type: 'boolean', default: false },
    database: { type: 'string', default: 'cairn_append_profile' },
  },
});
const rounds = Number(values.rounds);
const DB = values.database;

/** Each variant: what to switch off before the round, and how to switch it back on. */
const variants: { name: string; off: string; on: string }[] = [
  { name: 'full append (every check)', off: '', on: '' },
  {
    name: 'without compiled field checks (fields_problem interprets every row, as before 018)',
    off: `create or replace function cairn.fields_ok(p_type text, p_version int, f jsonb, p_kind text) returns boolean
          language sql stable as 'select null::boolean'`,
    on: 'select cairn.compile_fields_ok()',
  },
  {
    name: 'without the row-check trigger (fields and scopes: check_observation_rows)',
    off: 'alter table cairn.observations disable trigger observations_check_rows',
    on: 'alter table cairn.observations enable trigger observations_check_rows',
  },
  {
    name: 'without the provenance-hash and chain-link CHECKs',
    off: `alter table cairn.observations drop constraint observations_provenance_hash,
                                         drop constraint observations_chain_link`,
    on: `alter table cairn.observations
           add constraint observations_provenance_hash check (
             (hash_format = 1 and provenance_hash is null)
             or (hash_format = 2 and provenance_hash = cairn.provenance_hash(task_key, workflow_id, run_id, activity_id,
                   attempt, agent_id, role, idempotency_key))) not valid,
           add constraint observations_chain_link check (chain_hash = encode(sha256(convert_to(prev_hash || content_hash
                   || coalesce(provenance_hash, ''), 'UTF8')), 'hex')) not valid`,
  },
  {
    name: 'without the head-notify trigger',
    off: `alter table cairn.entity_heads disable trigger entity_heads_notify_insert,
                                         disable trigger entity_heads_notify_update`,
    on: `alter table cairn.entity_heads enable trigger entity_heads_notify_insert,
                                        enable trigger entity_heads_notify_update`,
  },
];

async function main(): Promise<void> {
  const scratch = await createProfileDatabase(DB);
  const url = scratch.url;
  const pool = createPool(url, { max: 1, scopes: 'all', applicationName: 'cairn-bench-profile' });
  const owner = createPool(url, { max: 1, applicationRole: null });
  try {
    await registerObservationTypes(pool, benchTypes);
    await createRawTable(owner);
    const maker = new RawRowMaker('profile:raw');
    const times = new Map<string, number[]>();
    let call = 0;
    const batch = (): AppendItem[] =>
      Array.from({ length: 1000 }, (_, i) => ({
        entityType: BENCH_ENTITY_TYPE,
        entityId: `profile-${i % 10}`,
        type: benchItem.name,
        fields: benchFields(i),
      }));
    for (let r = 0; r <= rounds; r++) {
      for (const v of variants) {
        if (v.off) await owner.query(v.off);
        const items = batch();
        const t0 = performance.now();
        await appendObservations(pool, benchTypes, items, {
          provenance: benchProvenance('profile', 'p'),
          idempotencyPrefix: `profile:${call++}`,
          observedAt: new Date().toISOString(),
        });
        const ms = performance.now() - t0;
        if (v.on) await owner.query(v.on);
        if (r > 0) times.set(v.name, [...(times.get(v.name) ?? []), ms]);
      }
      const rows = Array.from({ length: 1000 }, (_, i) => maker.row(`raw-${i % 10}`, i));
      const t0 = performance.now();
      await insertRawBatch(pool, rows, benchProvenance('profile', 'raw'));
      if (r > 0)
        times.set('raw INSERT … SELECT unnest', [
          ...(times.get('raw INSERT … SELECT unnest') ?? []),
          performance.now() - t0,
        ]);
    }
    if (values.writers) await concurrentWriters(url, owner, times);
    const full = median(times.get(variants[0]!.name)!);
    for (const [name, ts] of times)
      console.log(
        `${median(ts).toFixed(1).padStart(8)} ms  ${(median(ts) / full).toFixed(2)}× of full  ${name}`,
      );
  } finally {
    await pool.end();
    await owner.end();
    await scratch.drop();
  }
}

/**
 * `--writers`: 8 writers × 8 entities, 200 single appends per round, with nobody waiting (since
 * migration 018 no NOTIFY is sent) and with a waiter registered for each entity (every append
 * notifies, as every append did under 012). A transaction that has sent NOTIFY takes a
 * database-wide lock at commit (the notification queue's), so notifying commits are
 * serialised, WAL flush included.
 */
async function concurrentWriters(url: string, owner: pg.Pool, times: Map<string, number[]>): Promise<void> {
  const lanes = createPool(url, { max: 8, scopes: 'all', applicationName: 'cairn-bench-profile' });
  let call = 0;
  try {
    for (let r = 0; r <= rounds; r++) {
      for (const notify of [true, false]) {
        if (notify)
          await owner.query(
            `insert into cairn.head_waiters (key, expires_at)
             select k, now() + interval '1 hour' from unnest($1::text[]) k`,
            [
              Array.from({ length: 8 }, (_, lane) =>
                headKey({ entityType: BENCH_ENTITY_TYPE, entityId: `w-${lane}` }),
              ),
            ],
          );
        const t0 = performance.now();
        let next = 0;
        await Promise.all(
          Array.from({ length: 8 }, async (_, lane) => {
            while (next < 200) {
              const i = next++;
              await appendObservations(
                lanes,
                benchTypes,
                [
                  {
                    entityType: BENCH_ENTITY_TYPE,
                    entityId: `w-${lane}`,
                    type: benchItem.name,
                    fields: benchFields(i),
                  },
                ],
                {
                  provenance: benchProvenance('profile', 'w'),
                  idempotencyPrefix: `profile:w:${call++}`,
                  observedAt: new Date().toISOString(),
                },
              );
            }
          }),
        );
        const ms = (performance.now() - t0) / 200;
        if (notify) await owner.query('delete from cairn.head_waiters');
        const name = `8 writers × 8 entities, ms per append${notify ? ', a waiter on each entity (every append notifies)' : ', nobody waiting (no NOTIFY)'}`;
        if (r > 0) times.set(name, [...(times.get(name) ?? []), ms]);
      }
    }
  } finally {
    await lanes.end();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
