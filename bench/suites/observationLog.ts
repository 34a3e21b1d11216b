/**
 * The observation log (issue "observation log"): validated appends vs raw INSERTs of the same
 * rows, a full reduction vs the bare ordered scan it needs, and entity reads whose cost should
 * not grow with the entity's history.
 */
import type { EntityRef, ReducibleObservation } from '../../src/shared/observation';
import { policyResolverFor, reduceEntity } from '../../src/shared/reducer';
import { appendObservations, type AppendContext, type AppendItem } from '../../src/store/observations/append';
import { getEntityState } from '../../src/store/observations/read';
import type { BenchEnv } from '../env';
import {
  benchFields,
  benchItem,
  benchTagged,
  benchTypes,
  taggedFields,
  BENCH_ENTITY_TYPE,
} from '../fixtures';
import { defineBenchmark, runSequentially, type Benchmark, type BenchmarkSpec } from '../harness';
import { benchProvenance } from '../raw';
import { batchEntity, type calibrationBenchmarks } from './calibration';

export const OBSERVATION_LOG = 'observation log';

export function observationLogBenchmarks(
  env: BenchEnv,
  calibration: ReturnType<typeof calibrationBenchmarks>,
): Benchmark[] {
  const { sizes, runId } = env;
  const policyOf = policyResolverFor(benchTypes);
  const n = (x: number) => x.toLocaleString('en-US');
  let calls = 0;
  const appendCtx = (activityId: string): AppendContext => ({
    provenance: benchProvenance(runId, activityId),
    idempotencyPrefix: `bench:${runId}:${activityId}:${calls++}`,
    observedAt: new Date().toISOString(),
  });
  const item = (entityId: string, i: number): AppendItem => ({
    entityType: BENCH_ENTITY_TYPE,
    entityId,
    type: benchItem.name,
    fields: benchFields(i),
  });
  const tagged = (entityId: string, i: number): AppendItem => ({
    entityType: BENCH_ENTITY_TYPE,
    entityId,
    type: benchTagged.name,
    fields: taggedFields(i),
  });

  const histories = new Map<string, Promise<EntityRef>>();
  /** An entity with `size` observations of one type, built once per run with batched appends. */
  const history = (kind: 'item' | 'tagged', size: number) => {
    const entityId = `${kind}-${runId}-${size}`;
    let built = histories.get(entityId);
    if (!built) {
      built = buildHistory(env, entityId, size, kind === 'item' ? item : tagged, appendCtx);
      histories.set(entityId, built);
    }
    return built;
  };

  const appendSingle = defineBenchmark<{ items: AppendItem[] }>({
    name: 'validated single append (appendObservations)',
    group: OBSERVATION_LOG,
    unit: 'ops/s',
    opName: 'rows',
    ops: sizes.singleInserts,
    baseline: calibration.rawSingle,
    goal: { atLeast: 0.8 },
    setup: async () => ({ items: [] }),
    prepare(s, round) {
      s.items = Array.from({ length: round.ops }, (_, i) => item(`single-${runId}`, i));
    },
    async run(s) {
      for (const it of s.items) await appendObservations(env.pool, benchTypes, [it], appendCtx('single'));
    },
  });

  const appendBatch = defineBenchmark<{ batches: AppendItem[][] }>({
    name: `validated batched append of ${n(sizes.batchSize)}`,
    group: OBSERVATION_LOG,
    unit: 'ops/s',
    opName: 'rows',
    ops: sizes.batches * sizes.batchSize,
    baseline: calibration.rawBatch,
    goal: { atLeast: 0.7 },
    setup: async () => ({ batches: [] }),
    prepare(s) {
      s.batches = Array.from({ length: sizes.batches }, () =>
        Array.from({ length: sizes.batchSize }, (_, i) => item(batchEntity(runId, i), i)),
      );
    },
    async run(s) {
      for (const batch of s.batches)
        await appendObservations(env.pool, benchTypes, batch, appendCtx('batch'));
    },
  });

  const scan = defineBenchmark<EntityRef>({
    name: `raw ordered scan of ${n(sizes.history)} observations`,
    group: OBSERVATION_LOG,
    unit: 'ms',
    ops: 1,
    setup: () => history('item', sizes.history),
    async run(ref) {
      await scanEntity(env, ref);
    },
  });

  const reduce = defineBenchmark<EntityRef>({
    name: `full reduction of ${n(sizes.history)} observations (scan + reduceEntity)`,
    group: OBSERVATION_LOG,
    unit: 'ms',
    ops: 1,
    baseline: scan,
    setup: () => history('item', sizes.history),
    async run(ref) {
      const rows = await scanEntity(env, ref);
      const state = reduceEntity(ref, rows.map(toReducible), policyOf);
      if (state.version !== sizes.history)
        throw new Error(`reduced to version ${state.version}, expected ${sizes.history}`);
    },
  });

  // The first read of an entity folds its history and writes snapshots (in the warm-up round);
  // measured reads start from the newest snapshot.
  const read = (
    kind: 'item' | 'tagged',
    size: number,
    extra: Partial<Pick<BenchmarkSpec<EntityRef>, 'baseline' | 'goal'>> = {},
  ) =>
    defineBenchmark<EntityRef>({
      name: `entity read p50 (getEntityState)${kind === 'tagged' ? ', set-union' : ''}, ${n(size)} history`,
      group: OBSERVATION_LOG,
      unit: 'ms',
      ops: sizes.reads,
      ...extra,
      setup: () => history(kind, size),
      run: (ref, round) => runSequentially(round.ops, () => getEntityState(env.pool, policyOf, ref)),
    });
  const readSmall = read('item', sizes.smallHistory);
  const readBig = read('item', sizes.history, { baseline: readSmall, goal: FLAT });
  const readTaggedSmall = read('tagged', sizes.smallHistory);
  const readTaggedBig = read('tagged', sizes.taggedHistory, { baseline: readTaggedSmall, goal: FLAT });

  // An entity read against the cheapest possible read of the same answer: a raw SELECT by key
  // of its reduced state stored as one JSON document (a key-value store's get).
  const documentReads = sizes.reads * 5;
  const rawDocument = defineBenchmark<string>({
    name: `raw SELECT by key of the same state stored as one jsonb document`,
    group: OBSERVATION_LOG,
    unit: 'ops/s',
    opName: 'reads',
    ops: documentReads,
    async setup() {
      const ref = await history('item', sizes.smallHistory);
      const state = await getEntityState(env.pool, policyOf, ref);
      await env.ownerPool.query(`
        create schema if not exists bench_raw;
        create table if not exists bench_raw.documents (key text primary key, doc jsonb not null);
        grant usage on schema bench_raw to cairn_app;
        grant select on bench_raw.documents to cairn_app;`);
      const key = `${ref.entityType}/${ref.entityId}`;
      await env.ownerPool.query(
        'insert into bench_raw.documents (key, doc) values ($1, $2) on conflict (key) do update set doc = excluded.doc',
        [key, JSON.stringify(state)],
      );
      return key;
    },
    run: (key, round) =>
      runSequentially(round.ops, () =>
        env.pool.query({
          name: 'bench_raw_document',
          text: 'select doc from bench_raw.documents where key = $1',
          values: [key],
        }),
      ).then(() => undefined),
  });
  const readVsDocument = defineBenchmark<EntityRef>({
    name: `entity read (getEntityState), ${n(sizes.smallHistory)} history, vs the raw document SELECT`,
    group: OBSERVATION_LOG,
    unit: 'ops/s',
    opName: 'reads',
    ops: documentReads,
    baseline: rawDocument,
    goal: { atLeast: 0.8 },
    setup: () => history('item', sizes.smallHistory),
    run: (ref, round) =>
      runSequentially(round.ops, () => getEntityState(env.pool, policyOf, ref)).then(() => undefined),
  });

  // The reducer alone, in memory: cost per observation should not grow with the history.
  const reducePerObservation = (size: number, baseline?: Benchmark) =>
    defineBenchmark<{ ref: EntityRef; rows: ReducibleObservation[] }>({
      name: `reduceEntity per observation, set-union, ${n(size)} history`,
      group: OBSERVATION_LOG,
      unit: 'ms',
      ops: size,
      ...(baseline ? { baseline, goal: FLAT } : {}),
      async setup() {
        const ref = await history('tagged', size);
        return { ref, rows: (await scanEntity(env, ref)).map(toReducible) };
      },
      async run(s) {
        reduceEntity(s.ref, s.rows, policyOf);
      },
    });
  const reduceTaggedSmall = reducePerObservation(sizes.smallHistory);
  const reduceTaggedBig = reducePerObservation(sizes.taggedHistory, reduceTaggedSmall);

  return [
    appendSingle,
    appendBatch,
    reduce,
    scan,
    readBig,
    readSmall,
    readTaggedBig,
    readTaggedSmall,
    readVsDocument,
    rawDocument,
    reduceTaggedBig,
    reduceTaggedSmall,
  ];
}

/** "Does not grow with the history": the ratio to the small-history baseline is about 1. */
const FLAT = { approx: 1, tolerance: 0.25 };

async function buildHistory(
  env: BenchEnv,
  entityId: string,
  size: number,
  item: (entityId: string, i: number) => AppendItem,
  appendCtx: (activityId: string) => AppendContext,
): Promise<EntityRef> {
  const t0 = Date.now();
  for (let done = 0; done < size; done += env.sizes.batchSize) {
    const count = Math.min(env.sizes.batchSize, size - done);
    const items = Array.from({ length: count }, (_, i) => item(entityId, done + i));
    await appendObservations(env.pool, benchTypes, items, appendCtx(`history-${entityId}`));
  }
  env.log(
    `built ${entityId}: ${size.toLocaleString('en-US')} observations in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
  return { entityType: BENCH_ENTITY_TYPE, entityId };
}

interface ReducibleRow {
  id: string;
  entity_version: number;
  type: string;
  schema_version: number;
  kind: ReducibleObservation['kind'];
  fields: ReducibleObservation['fields'];
  target_id: string | null;
  agent_id: string;
  role: string;
  task_key: string;
}

/** The ordered scan a full reduction needs: the reducible columns of one entity, by version. */
async function scanEntity(env: BenchEnv, ref: EntityRef): Promise<ReducibleRow[]> {
  const result = await env.pool.query<ReducibleRow>({
    name: 'bench_scan_entity',
    text: `select id, entity_version, type, schema_version, kind, fields, target_id, agent_id, role, task_key
           from cairn.observations
           where entity_type = $1 and entity_id = $2
           order by entity_version`,
    values: [ref.entityType, ref.entityId],
  });
  return result.rows;
}

function toReducible(r: ReducibleRow): ReducibleObservation {
  return {
    id: r.id,
    entityVersion: r.entity_version,
    type: r.type,
    schemaVersion: r.schema_version,
    kind: r.kind,
    fields: r.fields,
    targetId: r.target_id,
    provenance: { agentId: r.agent_id, role: r.role, taskKey: r.task_key },
  };
}
