/**
 * The raw baselines: plain `pg` INSERTs into bench_raw.observations, a copy of
 * cairn.observations' shape (columns, defaults, identity, checks, indexes, unique constraints)
 * without its triggers and foreign keys. Rows are built before the timed part of a round, so a
 * baseline measures Postgres and the driver, nothing else.
 */
import type pg from 'pg';
import { chainHash, contentHash } from '../src/store/observations/hash';
import { benchFields, benchItem, BENCH_ENTITY_TYPE } from './fixtures';

export const RAW_TABLE = 'bench_raw.observations';

/** (Re)creates bench_raw.observations from the real table's definition. */
export async function createRawTable(ownerPool: pg.Pool): Promise<void> {
  const exists = await ownerPool.query(`select to_regclass('cairn.observations') is not null as ok`);
  if (!(exists.rows[0] as { ok: boolean }).ok)
    throw new Error('cairn.observations does not exist: run the migrations first');
  await ownerPool.query(`
    create schema if not exists bench_raw;
    drop table if exists ${RAW_TABLE};
    create table ${RAW_TABLE} (like cairn.observations including all);
    grant usage on schema bench_raw to cairn_app;
    grant select, insert on ${RAW_TABLE} to cairn_app;
  `);
}

export interface RawRow {
  entityId: string;
  entityVersion: number;
  fieldsJson: string;
  idempotencyKey: string;
  contentHash: string;
  prevHash: string;
  chainHash: string;
  observedAt: string;
}

/** Provenance shared by every raw row of a run (the append path shares it per batch too). */
export interface RawProvenance {
  taskKey: string;
  workflowId: string;
  runId: string;
  activityId: string;
  attempt: number;
  agentId: string;
  role: string;
}

/**
 * Builds valid rows entity by entity, keeping each entity's version and hash chain in memory
 * (what the database does for the real log under the head lock).
 */
export class RawRowMaker {
  private readonly heads = new Map<string, { version: number; chain: string }>();
  private counter = 0;

  constructor(private readonly keyPrefix: string) {}

  row(entityId: string, i: number): RawRow {
    const fields = benchFields(i);
    const head = this.heads.get(entityId) ?? { version: 0, chain: '' };
    const hash = contentHash({
      entityType: BENCH_ENTITY_TYPE,
      entityId,
      type: benchItem.name,
      schemaVersion: benchItem.version,
      kind: 'assertion',
      fields,
      scope: 'task',
      derivedFrom: [],
      source: null,
      targetId: null,
      expectedVersion: null,
    });
    const chain = chainHash(head.chain, hash);
    const row: RawRow = {
      entityId,
      entityVersion: head.version + 1,
      fieldsJson: JSON.stringify(fields),
      idempotencyKey: `${this.keyPrefix}:${this.counter++}`,
      contentHash: hash,
      prevHash: head.chain,
      chainHash: chain,
      observedAt: new Date().toISOString(),
    };
    this.heads.set(entityId, { version: row.entityVersion, chain });
    return row;
  }
}

const COLUMNS = `entity_type, entity_id, entity_version, type, schema_version, kind, fields, scope,
  task_key, workflow_id, run_id, activity_id, attempt, agent_id, role, observed_at,
  idempotency_key, content_hash, prev_hash, chain_hash`;

const SINGLE_SQL = `insert into ${RAW_TABLE} (${COLUMNS})
  values ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12, $13::int, $14, $15, $16::timestamptz, $17, $18, $19, $20)`;

const BATCH_SQL = `insert into ${RAW_TABLE} (${COLUMNS})
  select $1, u.eid, u.ver, $4, $5, $6, u.fields, $8, $9, $10, $11, $12, $13::int, $14, $15, u.obs_at,
         u.key, u.hash, u.prev, u.chain
  from unnest($2::text[], $3::int[], $7::jsonb[], $16::timestamptz[], $17::text[], $18::text[], $19::text[], $20::text[])
       as u(eid, ver, fields, obs_at, key, hash, prev, chain)`;

/** One autocommitted single-row INSERT (a named statement, parsed once per connection). */
export async function insertRawSingle(db: pg.Pool, row: RawRow, p: RawProvenance): Promise<void> {
  await db.query({
    name: 'bench_raw_insert_single',
    text: SINGLE_SQL,
    values: [
      BENCH_ENTITY_TYPE,
      row.entityId,
      row.entityVersion,
      benchItem.name,
      benchItem.version,
      'assertion',
      row.fieldsJson,
      'task',
      p.taskKey,
      p.workflowId,
      p.runId,
      p.activityId,
      p.attempt,
      p.agentId,
      p.role,
      row.observedAt,
      row.idempotencyKey,
      row.contentHash,
      row.prevHash,
      row.chainHash,
    ],
  });
}

/** One `INSERT … SELECT FROM unnest(…)` of all `rows`. */
export async function insertRawBatch(db: pg.Pool, rows: readonly RawRow[], p: RawProvenance): Promise<void> {
  await db.query({
    name: 'bench_raw_insert_batch',
    text: BATCH_SQL,
    values: [
      BENCH_ENTITY_TYPE,
      rows.map((r) => r.entityId),
      rows.map((r) => r.entityVersion),
      benchItem.name,
      benchItem.version,
      'assertion',
      rows.map((r) => r.fieldsJson),
      'task',
      p.taskKey,
      p.workflowId,
      p.runId,
      p.activityId,
      p.attempt,
      p.agentId,
      p.role,
      rows.map((r) => r.observedAt),
      rows.map((r) => r.idempotencyKey),
      rows.map((r) => r.contentHash),
      rows.map((r) => r.prevHash),
      rows.map((r) => r.chainHash),
    ],
  });
}

export function benchProvenance(runId: string, activityId: string): RawProvenance {
  return {
    taskKey: `bench-${runId}`,
    workflowId: `bench-${runId}`,
    runId: '',
    activityId,
    attempt: 1,
    agentId: `bench@${process.pid}`,
    role: 'bench',
  };
}
