/**
 * THE append: validates a whole batch, then writes it with one call of
 * cairn.append_observation(s) (one round trip, one statement, so all or nothing). The database
 * assigns gapless per-entity versions, chains hashes, enforces idempotency keys and
 * compare-and-set; this module maps its SQLSTATEs to Cairn's errors.
 */
import type { PoolClient } from 'pg';
import { IdempotencyConflictError, ObservationValidationError, StaleVersionError } from '../../shared/errors';
import type { ObservationTypeRegistry } from '../../shared/observationTypes';
import { arrayLiteral } from '../arrayLiteral';
import { pgError, type PgErrorFields, type Queryable } from '../pool';
import { registerObservationTypes } from './registerTypes';
import { isoUtc, parseAppendedRow } from './rows';
import type { AppendContext, AppendedObservation, AppendItem } from './types';
import { prepareBatch, type PreparedItem } from './validate';
import { tracedAppend } from '../../telemetry/instrument';

export { APPEND_LIMITS, type AppendContext, type AppendedObservation, type AppendItem } from './types';

const IDEMPOTENCY_CONFLICT = 'CN001';
const STALE_VERSION = 'CN002';
const BAD_REFERENCE = 'CN004';
const TYPE_NOT_REGISTERED = 'CN005';
const UNIQUE_VIOLATION = '23505';
const IDEMPOTENCY_KEY_CONSTRAINT = 'observations_idempotency_key_unique';

// Named, so each connection parses and plans them once. Only what the caller does not already
// know comes back (entity, key and hash of each item are ours; a replay has the same ones).
const RESULT_COLUMNS = `idx, id, entity_version, ${isoUtc('recorded_at')} as recorded_at, replayed`;
const APPEND_ONE_SQL = {
  text: `select ${RESULT_COLUMNS}
         from cairn.append_observation($1, $2, $3, $4::int, $5, $6::jsonb, $7, $8::uuid[], $9::jsonb, $10::uuid,
                $11::int, $12, $13, $14::timestamptz, $15, $16, $17, $18, $19::int, $20, $21)`,
};
const APPEND_BATCH_SQL = {
  text: `select ${RESULT_COLUMNS}
         from cairn.append_observations($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::jsonb[],
                $7::text[], $8::text[], $9::jsonb[], $10::uuid[], $11::int[], $12::text[], $13::text[],
                $14::timestamptz[], $15, $16, $17, $18, $19::int, $20, $21)`,
};

/**
 * Appends `items` atomically, idempotently (an item whose key is stored with the same content
 * comes back `replayed`), in item order. Throws before writing anything on invalid input.
 *
 * Given a pool, a race on a new idempotency key (two writers inserting it at once) and a type
 * not yet registered in this database are healed by one retry. Given a client — perhaps inside
 * the caller's transaction, which the failed statement has aborted — they are thrown.
 */
export const appendObservations = tracedAppend(appendObservationsUntraced);
async function appendObservationsUntraced(
  db: Queryable,
  registry: ObservationTypeRegistry,
  items: AppendItem[],
  ctx: AppendContext,
): Promise<AppendedObservation[]> {
  const prepared = prepareBatch(registry, items, ctx);
  if (prepared.length === 0) return [];
  try {
    return await run(db, prepared, ctx);
  } catch (err) {
    const pgErr = pgError(err);
    if (!pgErr || isClient(db)) throw mapError(pgErr, err);
    if (pgErr.code === UNIQUE_VIOLATION && pgErr.constraint === IDEMPOTENCY_KEY_CONSTRAINT) {
      // The other writer has committed; the retry finds its rows (replay or conflict).
    } else if (pgErr.code === TYPE_NOT_REGISTERED) {
      await registerObservationTypes(db, batchTypes(registry, prepared));
    } else {
      throw mapError(pgErr, err);
    }
    try {
      return await run(db, prepared, ctx);
    } catch (retryErr) {
      throw mapError(pgError(retryErr), retryErr);
    }
  }
}

async function run(db: Queryable, items: PreparedItem[], ctx: AppendContext): Promise<AppendedObservation[]> {
  // A single item (the common agent step) goes to the scalar entry point: no arrays to build,
  // send and unpack.
  const sql = items.length === 1 ? APPEND_ONE_SQL : APPEND_BATCH_SQL;
  const values = items.length === 1 ? singleParameters(items[0]!, ctx) : batchParameters(items, ctx);
  const result = await db.query({ ...sql, values });
  const out: AppendedObservation[] = new Array<AppendedObservation>(items.length);
  for (const row of result.rows) {
    const appended = parseAppendedRow(row, items);
    out[appended.index] = appended;
  }
  if (result.rows.length !== items.length || out.some((o) => o === undefined)) {
    throw new Error(`append_observations returned ${result.rows.length} rows for ${items.length} items`);
  }
  return out;
}

function provenanceParameters(ctx: AppendContext): unknown[] {
  const p = ctx.provenance;
  return [p.taskKey, p.workflowId, p.runId, p.activityId, p.attempt, p.agentId, p.role];
}

function singleParameters(i: PreparedItem, ctx: AppendContext): unknown[] {
  return [
    i.entityType,
    i.entityId,
    i.type,
    i.schemaVersion,
    i.kind,
    i.fieldsJson,
    i.scope,
    i.derivedFrom,
    i.source === null ? null : JSON.stringify(i.source),
    i.targetId,
    i.expectedVersion,
    i.idempotencyKey,
    i.contentHash,
    i.observedAt,
    ...provenanceParameters(ctx),
  ];
}

function batchParameters(items: PreparedItem[], ctx: AppendContext): unknown[] {
  // Each array as the literal pg would make of it (arrayLiteral), built here in one pass per column.
  const column = (value: (i: PreparedItem) => string | number | null) => arrayLiteral(items, value);
  return [
    column((i) => i.entityType),
    column((i) => i.entityId),
    column((i) => i.type),
    column((i) => i.schemaVersion),
    column((i) => i.kind),
    column((i) => i.fieldsJson),
    column((i) => i.scope),
    // A uuid[] literal per item (a uuid has no characters that need quoting).
    column((i) => `{${i.derivedFrom.join(',')}}`),
    column((i) => (i.source === null ? null : JSON.stringify(i.source))),
    column((i) => i.targetId),
    column((i) => i.expectedVersion),
    column((i) => i.idempotencyKey),
    column((i) => i.contentHash),
    column((i) => i.observedAt),
    ...provenanceParameters(ctx),
  ];
}

function isClient(db: Queryable): db is PoolClient {
  return typeof (db as Partial<PoolClient>).release === 'function';
}

function batchTypes(registry: ObservationTypeRegistry, items: PreparedItem[]) {
  const keys = new Set(items.map((i) => `${i.type}@${i.schemaVersion}`));
  return registry.all().filter((t) => keys.has(t.key));
}

function mapError(pgErr: PgErrorFields | undefined, err: unknown): unknown {
  if (!pgErr) return err;
  const detail = parseDetail(pgErr.detail);
  switch (pgErr.code) {
    case IDEMPOTENCY_CONFLICT:
      // existingId is null when the key is held by an observation the caller may not read.
      return new IdempotencyConflictError(
        String(detail.idempotencyKey),
        typeof detail.existingId === 'string' ? detail.existingId : '(one this caller may not read)',
      );
    case STALE_VERSION:
      return new StaleVersionError(
        `${String(detail.entityType)}/${String(detail.entityId)}`,
        Number(detail.expectedVersion),
        Number(detail.currentVersion),
      );
    case BAD_REFERENCE:
      return new ObservationValidationError(
        Number(detail.index),
        String(detail.path),
        String(detail.problem),
      );
    case TYPE_NOT_REGISTERED:
      return new Error(
        `observation type ${String(detail.type)}@${String(detail.schemaVersion)} is not registered in this database; call registerObservationTypes at startup`,
        { cause: err },
      );
    default:
      return err;
  }
}

function parseDetail(detail: string | undefined): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(detail ?? '{}');
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
