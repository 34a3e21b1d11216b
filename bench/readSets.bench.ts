/**
 * Read receipts (issue "Read receipts, stale-decision detection and cascade containment"):
 * - an append behind a 20-entity read set (stored, heads locked, checked for staleness, linked)
 *   against the same append in a transaction of its own, measured in the same run (and, for
 *   the split of the cost, the same read set with the check off: stored and linked only);
 * - the blast radius of an observation in a log of 1,000,000 observations: p50 (timed rows) and
 *   p95 over every query of the run (a metric). The log lives in a dedicated database,
 *   `cairn_bench_blast`, built once with set-based INSERT … SELECT generate_series and reused
 *   by later runs while the migrations and the shape are unchanged (building takes minutes).
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { ReadSetEntry } from '../src/shared/readSets';
import { closureOf } from '../src/store/blastRadius';
import { splitDatabaseUrl } from '../src/store/database';
import { migrate, readMigrations } from '../src/store/migrate';
import { appendObservations, type AppendContext, type AppendItem } from '../src/store/observations/append';
import { createPool, withTransaction } from '../src/store/pool';
import { appendWithReads } from '../src/store/staleness';
import type { BenchEnv } from './env';
import { benchFields, benchItem, benchTypes, BENCH_ENTITY_TYPE } from './fixtures';
import { defineBenchmark, defineMetric, percentile, runSequentially, type BenchEntry } from './harness';
import { benchProvenance } from './raw';

export const READ_RECEIPTS = 'read receipts';
const READ_SET_SIZE = 20;

/** The blast-radius log: complete ternary trees of depth 6 (1,093 observations each). */
export const BLAST_SHAPE = { fanOut: 3, depth: 6, trees: 915 } as const;
const TREE = (BLAST_SHAPE.fanOut ** (BLAST_SHAPE.depth + 1) - 1) / (BLAST_SHAPE.fanOut - 1);
export const BLAST_DATABASE = 'cairn_bench_blast';

/** The blast log's database: `<bench database>_blast` (cairn_bench_blast for the default), so runs against databases of their own do not rebuild each other's log. */
function blastDatabaseOf(databaseUrl: string): string {
  const name = decodeURIComponent(new URL(databaseUrl).pathname.replace(/^\//, ''));
  return name === '' ? BLAST_DATABASE : `${name}_blast`;
}

export function readSetBenchmarks(env: BenchEnv): BenchEntry[] {
  const { runId, sizes } = env;
  let calls = 0;
  const ctx = (activityId: string): AppendContext => {
    const n = calls++;
    return {
      provenance: { ...benchProvenance(runId, `${activityId}-${n}`) },
      idempotencyPrefix: `bench:${runId}:${activityId}:${n}`,
      observedAt: new Date().toISOString(),
    };
  };
  const decision = (entityId: string, i: number): AppendItem => ({
    entityType: BENCH_ENTITY_TYPE,
    entityId,
    type: benchItem.name,
    kind: 'decision',
    fields: benchFields(i),
  });

  // 19 entities the decisions read (unchanged while the benchmark runs) plus the decided one.
  let context: Promise<ReadSetEntry[]> | undefined;
  const contextEntities = () =>
    (context ??= (async () => {
      const items = Array.from({ length: READ_SET_SIZE - 1 }, (_, i) => ({
        ...decision(`rs-ctx-${runId}-${i}`, i),
        kind: 'assertion' as const,
      }));
      const stored = await appendObservations(env.pool, benchTypes, items, ctx('rs-setup'));
      return stored.map((o) => ({
        entityType: o.entityType,
        entityId: o.entityId,
        version: o.entityVersion,
        fields: ['label', 'score'],
      }));
    })());

  const plain = defineBenchmark<{ entityId: string }>({
    name: 'append of one decision in its own transaction',
    group: READ_RECEIPTS,
    unit: 'ops/s',
    opName: 'appends',
    ops: sizes.singleInserts,
    setup: async () => ({ entityId: `rs-plain-${runId}` }),
    async run(s, round) {
      for (let i = 0; i < round.ops; i++) {
        const c = ctx('rs-plain');
        await withTransaction(env.pool, (client) =>
          appendObservations(client, benchTypes, [decision(s.entityId, i)], c),
        );
      }
    },
  });

  const withReads = defineBenchmark<{ entityId: string; version: number; context: ReadSetEntry[] }>({
    name: `the same append behind a ${READ_SET_SIZE}-entity read set (strict: locked, checked, linked)`,
    group: READ_RECEIPTS,
    unit: 'ops/s',
    opName: 'appends',
    ops: sizes.singleInserts,
    baseline: plain,
    goal: { atLeast: 0.8 },
    setup: async () => ({ entityId: `rs-decide-${runId}`, version: 0, context: await contextEntities() }),
    async run(s, round) {
      for (let i = 0; i < round.ops; i++) {
        // It read the 19 context entities and the entity it decides on, as it stands.
        const entries = [
          ...s.context,
          { entityType: BENCH_ENTITY_TYPE, entityId: s.entityId, version: s.version, fields: ['status'] },
        ];
        const { appended, receipt } = await appendWithReads(
          env.pool,
          benchTypes,
          [decision(s.entityId, i)],
          ctx('rs-reads'),
          entries,
        );
        if (!receipt || receipt.conflicts.length > 0)
          throw new Error('the read receipt was not checked, or found conflicts');
        s.version = appended[0]!.entityVersion;
      }
    },
  });

  // The same, with the decision not depending on its reads: what storing and linking the read
  // set costs without the locks and the check.
  const recordedOnly = defineBenchmark<{ entityId: string; version: number; context: ReadSetEntry[] }>({
    name: `the same append behind the same read set, dependsOnReads 'off' (stored, linked; not locked)`,
    group: READ_RECEIPTS,
    unit: 'ops/s',
    opName: 'appends',
    ops: sizes.singleInserts,
    baseline: plain,
    setup: async () => ({ entityId: `rs-off-${runId}`, version: 0, context: await contextEntities() }),
    async run(s, round) {
      for (let i = 0; i < round.ops; i++) {
        const entries = [
          ...s.context,
          { entityType: BENCH_ENTITY_TYPE, entityId: s.entityId, version: s.version, fields: ['status'] },
        ];
        const item = { ...decision(s.entityId, i), dependsOnReads: 'off' as const };
        const { appended } = await appendWithReads(env.pool, benchTypes, [item], ctx('rs-off'), entries);
        s.version = appended[0]!.entityVersion;
      }
    },
  });

  const latencies: number[] = [];
  let blastDb: Promise<BlastDatabase> | undefined;
  const blastP50 = defineBenchmark<BlastDatabase>({
    name: `blast radius p50, ${(BLAST_SHAPE.trees * TREE).toLocaleString('en-US')}-observation log, fan-out ${BLAST_SHAPE.fanOut}, depth ${BLAST_SHAPE.depth}`,
    group: READ_RECEIPTS,
    unit: 'ms',
    ops: sizes.reads,
    note: `closure of ${TREE.toLocaleString('en-US')} observations (derived_from and read-set edges) from a random tree root; database ${blastDatabaseOf(env.config.databaseUrl)}`,
    setup: () => (blastDb ??= openBlastDatabase(env)),
    teardown: (db) => db.pool.end(),
    async run(db, round) {
      const times = await runSequentially(round.ops, async () => {
        const root = blastId(Math.floor(Math.random() * BLAST_SHAPE.trees) * TREE);
        const closure = await closureOf(db.pool, [{ observationId: root, retractedAtVersion: null }]);
        if (closure.nodes.length !== TREE)
          throw new Error(`closure of ${closure.nodes.length} observations, expected ${TREE}`);
      });
      if (!round.warmup) latencies.push(...times);
      return times;
    },
  });

  const blastP95 = defineMetric({
    name: 'blast radius p95 over every measured query of the run',
    group: READ_RECEIPTS,
    unit: 'ms',
    measure: async () => {
      if (latencies.length === 0) throw new Error('no blast radius was measured (select the p50 row too)');
      return Math.round(percentile(latencies, 95) * 10) / 10;
    },
  });

  return [plain, withReads, recordedOnly, blastP50, blastP95];
}

interface BlastDatabase {
  pool: pg.Pool;
}

/** Observation n of the blast log's id: deterministic, random-looking (like gen_random_uuid). */
function blastId(n: number): string {
  const h = createHash('md5').update(`blast${n}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Reuses cairn_bench_blast when its fingerprint matches (same migrations, same shape), else rebuilds it. */
async function openBlastDatabase(env: BenchEnv): Promise<BlastDatabase> {
  const { maintenanceUrl } = splitDatabaseUrl(env.config.databaseUrl);
  const url = new URL(env.config.databaseUrl);
  const BLAST_DATABASE = blastDatabaseOf(env.config.databaseUrl);
  url.pathname = `/${BLAST_DATABASE}`;
  const fingerprint = createHash('sha256')
    .update(
      JSON.stringify({ shape: BLAST_SHAPE, migrations: (await readMigrations()).map((m) => m.checksum) }),
    )
    .digest('hex');
  const owner = new pg.Client({ connectionString: url.toString(), application_name: 'cairn-bench-blast' });
  const current = await owner
    .connect()
    .then(() => owner.query<{ fingerprint: string }>('select fingerprint from bench_blast.meta'))
    .then((r) => r.rows[0]?.fingerprint)
    .catch(() => undefined)
    .finally(() => owner.end().catch(() => undefined));
  if (current === fingerprint) {
    env.log(
      `${BLAST_DATABASE}: reusing the ${(BLAST_SHAPE.trees * TREE).toLocaleString('en-US')}-observation log`,
    );
  } else {
    const t0 = Date.now();
    env.log(
      `${BLAST_DATABASE}: building a ${(BLAST_SHAPE.trees * TREE).toLocaleString('en-US')}-observation log (once; later runs reuse it)`,
    );
    const admin = new pg.Client({ connectionString: maintenanceUrl, application_name: 'cairn-bench-blast' });
    await admin.connect();
    try {
      await admin.query(`drop database if exists ${pg.escapeIdentifier(BLAST_DATABASE)} with (force)`);
      await admin.query(`create database ${pg.escapeIdentifier(BLAST_DATABASE)}`);
    } finally {
      await admin.end();
    }
    await migrate(url.toString());
    const builder = new pg.Client({
      connectionString: url.toString(),
      application_name: 'cairn-bench-blast',
    });
    await builder.connect();
    try {
      await builder.query(buildSql());
      for (const sql of finishSql(fingerprint)) await builder.query(sql);
    } finally {
      await builder.end();
    }
    env.log(`${BLAST_DATABASE}: built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  return {
    pool: createPool(url.toString(), { max: 2, applicationName: 'cairn-bench-blast', scopes: 'all' }),
  };
}

/**
 * Tree t, node k (breadth-first; the children of k are 3k+1..3k+3) is observation n = t·1093 + k,
 * an entity of its own. Children 3k+1 and 3k+2 name their parent in derived_from; child 3k+3
 * was written by a step whose read set read the parent's entity (the parent's only field).
 * Indexes other than the constraints' are dropped for the load and rebuilt after (far faster
 * than maintaining them row by row); triggers are off (session_replication_role: this is the
 * owner loading a throwaway database). Entity heads are not built: the benchmark walks closures.
 */
function buildSql(): string {
  const { trees } = BLAST_SHAPE;
  const tables = `('observations', 'read_sets', 'read_set_parts', 'observation_read_sets')`;
  const nodes = `generate_series(0, ${trees - 1}) t cross join generate_series(0, ${TREE - 1}) k cross join lateral (select t * ${TREE} + k as n) x`;
  const readers = `generate_series(0, ${trees - 1}) t cross join generate_series(3, ${TREE - 1}, 3) k cross join lateral (select t * ${TREE} + k as n) x`;
  return `
    set session_replication_role = replica;
    set synchronous_commit = off;
    set maintenance_work_mem = '256MB';
    create temp table saved_indexes as
      select indexname, indexdef from pg_indexes i
       where schemaname = 'cairn' and tablename in ${tables}
         and not exists (select 1 from pg_constraint c where c.conname = i.indexname);
    do $$ declare r record; begin
      for r in select indexname from saved_indexes loop execute format('drop index cairn.%I', r.indexname); end loop;
    end $$;
    insert into cairn.observations (id, entity_type, entity_id, entity_version, type, schema_version, kind, fields, scope,
      task_key, workflow_id, run_id, activity_id, attempt, agent_id, role, derived_from, observed_at, idempotency_key,
      content_hash, prev_hash, chain_hash)
    select md5('blast' || n)::uuid, '${BENCH_ENTITY_TYPE}', 'blast-' || n, 1, '${benchItem.name}', 1,
           case when k > 0 and k % 3 = 0 then 'decision' else 'assertion' end,
           jsonb_build_object('n', n), 'task', 'blast-' || t, 'blast-' || t, '', 'a' || n, 1, 'bench', 'bench',
           case when k > 0 and k % 3 <> 0 then array[md5('blast' || (t * ${TREE} + (k - 1) / 3))::uuid] else '{}'::uuid[] end,
           now(), 'blast:' || n, h, '', encode(sha256(convert_to(h, 'UTF8')), 'hex')
      from ${nodes} cross join lateral (select md5('c' || n) || md5('d' || n) as h) y;
    insert into cairn.read_sets (id, workflow_id, run_id, activity_id, attempt, task_key, role, agent_id)
    select md5('rs' || n)::uuid, 'blast-' || t, '', 'a' || n, 1, 'blast-' || t, 'bench', 'bench' from ${readers};
    insert into cairn.read_set_parts (read_set_id, entity_types, entity_ids, versions, fields, entity_keys)
    select md5('rs' || n)::uuid, array['${BENCH_ENTITY_TYPE}'], array[p], array[1], array['{n}'],
           array['${BENCH_ENTITY_TYPE}' || chr(31) || p]
      from ${readers} cross join lateral (select 'blast-' || (t * ${TREE} + (k - 1) / 3) as p) y;
    insert into cairn.observation_read_sets (idempotency_key, read_set_id)
    select 'blast:' || n, md5('rs' || n)::uuid from ${readers};
    do $$ declare r record; begin
      for r in select indexdef from saved_indexes loop execute r.indexdef; end loop;
    end $$;
    reset session_replication_role;`;
}

/** After the load (VACUUM cannot share its transaction); the fingerprint last, so only a complete build is reused. */
function finishSql(fingerprint: string): string[] {
  return [
    'vacuum analyze cairn.observations, cairn.read_sets, cairn.read_set_parts, cairn.observation_read_sets',
    `create schema bench_blast; create table bench_blast.meta (fingerprint text not null); insert into bench_blast.meta values ('${fingerprint}')`,
  ];
}
