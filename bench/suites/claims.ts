/**
 * Claims (issue "Coordination"): claims per second under contention — 8 connections racing
 * for 50 resources, each granted claim released at once — against the bare Postgres ways of
 * doing the same on this machine: an `INSERT … ON CONFLICT DO NOTHING` / `DELETE` loop (no
 * expiry, no token, no history) and a `SELECT … FOR UPDATE SKIP LOCKED` loop for "next free".
 * A metric then audits the claim history the subjects wrote: double grants must be 0.
 */
import type pg from 'pg';
import { auditClaimEvents, claim, nextFree, release } from '../../src/store/claims';
import { createPool } from '../../src/store/pool';
import type { BenchEnv } from '../env';
import { defineBenchmark, defineMetric, runConcurrently, type BenchEntry } from '../harness';

export const CLAIMS = 'claims';
const CONNECTIONS = 8;
const RESOURCES = 50;
const TTL_MS = 30_000;

export function claimBenchmarks(env: BenchEnv): BenchEntry[] {
  const { runId } = env;
  // Claim attempts per round (granted or not); every grant is released straight away.
  const ops = env.sizes.singleInserts * 4;
  const prefix = `bench/${runId}/`;
  const kind = `bench.${runId}`;
  const ids = Array.from({ length: RESOURCES }, (_, i) => `r${i}`);
  const pick = () => ids[Math.floor(Math.random() * RESOURCES)]!;
  let rawTables: Promise<void> | undefined;
  const ensureRawTables = () => (rawTables ??= createRawClaimTables(env.ownerPool, ids));
  const lanes = async () => {
    await ensureRawTables();
    return createPool(env.config.databaseUrl, { max: CONNECTIONS, applicationName: 'cairn-bench-claims' });
  };
  const close = (pool: pg.Pool) => pool.end();
  const contention = `${CONNECTIONS} connections × ${RESOURCES} resources`;

  const rawInsert = defineBenchmark<pg.Pool>({
    name: `raw INSERT … ON CONFLICT DO NOTHING + DELETE, ${contention}`,
    group: CLAIMS,
    unit: 'ops/s',
    opName: 'claims',
    ops,
    setup: lanes,
    teardown: close,
    async run(pool, round) {
      await runConcurrently(round.ops, CONNECTIONS, async (i) => {
        const resource = pick();
        const holder = `raw-${i}`;
        const got = await pool.query({
          name: 'bench_raw_claim',
          text: 'insert into bench_raw.claim_locks (resource, holder) values ($1, $2) on conflict do nothing returning resource',
          values: [resource, holder],
        });
        if (got.rowCount)
          await pool.query({
            name: 'bench_raw_unclaim',
            text: 'delete from bench_raw.claim_locks where resource = $1 and holder = $2',
            values: [resource, holder],
          });
      });
    },
  });

  const claimRelease = defineBenchmark<pg.Pool>({
    name: `claim + release (token, expiry, events), ${contention}`,
    group: CLAIMS,
    unit: 'ops/s',
    opName: 'claims',
    ops,
    baseline: rawInsert,
    goal: { atLeast: 0.7 },
    setup: lanes,
    teardown: close,
    async run(pool, round) {
      await runConcurrently(round.ops, CONNECTIONS, async (i) => {
        const resource = `${prefix}${pick()}`;
        const holder = `claim-${round.round}-${i}`;
        const r = await claim(pool, resource, { holder, ttlMs: TTL_MS });
        if (r.granted) await release(pool, resource, { holder, token: r.token });
      });
    },
  });

  const rawSkipLocked = defineBenchmark<pg.Pool>({
    name: `raw UPDATE … (SELECT … FOR UPDATE SKIP LOCKED) + UPDATE, ${contention}`,
    group: CLAIMS,
    unit: 'ops/s',
    opName: 'claims',
    ops,
    setup: lanes,
    teardown: close,
    async run(pool, round) {
      await runConcurrently(round.ops, CONNECTIONS, async (i) => {
        const holder = `raw-${i}`;
        const got = await pool.query<{ resource: string }>({
          name: 'bench_raw_next',
          text: `update bench_raw.claim_queue set holder = $1
                 where resource = (select resource from bench_raw.claim_queue where holder is null order by resource limit 1 for update skip locked)
                 returning resource`,
          values: [holder],
        });
        const resource = got.rows[0]?.resource;
        if (resource !== undefined)
          await pool.query({
            name: 'bench_raw_free',
            text: 'update bench_raw.claim_queue set holder = null where resource = $1',
            values: [resource],
          });
      });
    },
  });

  const nextFreeRelease = defineBenchmark<pg.Pool>({
    name: `nextFree + release over ${RESOURCES} candidates, ${CONNECTIONS} connections`,
    group: CLAIMS,
    unit: 'ops/s',
    opName: 'claims',
    ops,
    baseline: rawSkipLocked,
    goal: { atLeast: 0.7 },
    setup: lanes,
    teardown: close,
    async run(pool, round) {
      await runConcurrently(round.ops, CONNECTIONS, async (i) => {
        const holder = `next-${round.round}-${i}`;
        const g = await nextFree(pool, kind, ids, { holder, ttlMs: TTL_MS });
        if (g) await release(pool, g.resource, { holder, token: g.token });
      });
    },
  });

  const doubleGrants = defineMetric({
    name: 'double grants in this run (audit of cairn.claim_events)',
    group: CLAIMS,
    unit: 'grants',
    note: 'must be 0; overlapping leases or token gaps fail the run',
    async measure() {
      const [a, b] = await Promise.all([
        auditClaimEvents(env.pool, { prefix }),
        auditClaimEvents(env.pool, { prefix: `${kind}/` }),
      ]);
      const bad = a.doubleGrants + b.doubleGrants;
      if (bad > 0 || a.tokenGaps + b.tokenGaps > 0)
        throw new Error(
          `${bad} double grants and ${a.tokenGaps + b.tokenGaps} token gaps in ${a.grants + b.grants} grants`,
        );
      env.log(`claims audit: ${a.grants + b.grants} grants, no double grant, no token gap`);
      return bad;
    },
  });

  return [claimRelease, rawInsert, nextFreeRelease, rawSkipLocked, doubleGrants];
}

/** The baselines' tables: a bare lock table and a bare queue of the same 50 resources. */
async function createRawClaimTables(ownerPool: pg.Pool, ids: readonly string[]): Promise<void> {
  await ownerPool.query(`
    create schema if not exists bench_raw;
    drop table if exists bench_raw.claim_locks, bench_raw.claim_queue;
    create table bench_raw.claim_locks (resource text primary key, holder text not null);
    create table bench_raw.claim_queue (resource text primary key, holder text);
    grant usage on schema bench_raw to cairn_app;
    grant select, insert, update, delete on bench_raw.claim_locks, bench_raw.claim_queue to cairn_app;
  `);
  await ownerPool.query('insert into bench_raw.claim_queue (resource) select unnest($1::text[])', [ids]);
}
