/**
 * Reading entities: state (now, as of a version or a time, or "at least version v"), history,
 * and the policy resolver made from the types registered in the database.
 *
 * State is a fold of the entity's observations in version order (src/shared/reducer.ts); this
 * module starts the fold from the newest snapshot at or below the wanted version and fetches
 * only the rows after it, a page at a time (see ./snapshots.ts for the cache's rules).
 */
import type { EntityState, PolicyResolver } from '../../shared/entityState';
import { VersionNotReachedError } from '../../shared/errors';
import {
  FIELD_POLICIES,
  OBSERVATION_KINDS,
  formatEntityRef,
  type EntityRef,
  type FieldPolicy,
  type Json,
  type ObservationKind,
  type ReducibleObservation,
  type StoredObservation,
} from '../../shared/observation';
import { applyObservation, emptyEntityState } from '../../shared/reducer';
import type { Queryable } from '../pool';
import { assertReadGrant } from '../readGrant';
import { observationColumns, parseObservationRow } from './rows';
import { loadSnapshot, saveSnapshots, SNAPSHOT_EVERY, type Snapshot } from './snapshots';

export interface ReadStats {
  /** Version of the snapshot the fold started from (0: none, folded from the start). */
  snapshotVersion: number;
  /** Observations folded by this read. */
  folded: number;
  /** Snapshots this read stored. */
  snapshotsWritten: number;
}

export interface EntityStateOptions {
  /** State as of this entity version (must exist, or be reached within `waitMs`). */
  asOfVersion?: number;
  /**
   * State as of this time: the last version recorded at or before it. An ISO string keeps the
   * database's microseconds. Versions are recorded in increasing time order per entity (the
   * append holds the entity's head lock while it stamps them), so this is a prefix of the log.
   */
  asOfTime?: string | Date;
  /** Read-after-write: the entity's log must have reached this version; waits up to `waitMs`. */
  minVersion?: number;
  /** How long to poll for `minVersion` / `asOfVersion` before VersionNotReachedError (default 0). */
  waitMs?: number;
  /** Store snapshots this read passes (default true). Off for read-only transactions. */
  writeSnapshots?: boolean;
  /** Filled in with what the read did (instrumentation for tests and benchmarks). */
  stats?: ReadStats;
}

/** Rows fetched per round trip while folding. */
const FOLD_PAGE = 2000;
const POLL_FIRST_MS = 10;
const POLL_MAX_MS = 250;

export async function getEntityState(
  db: Queryable,
  policyOf: PolicyResolver,
  ref: EntityRef,
  opts: EntityStateOptions = {},
): Promise<EntityState> {
  checkVersionOption('asOfVersion', opts.asOfVersion);
  checkVersionOption('minVersion', opts.minVersion);
  checkVersionOption('waitMs', opts.waitMs);
  if (opts.asOfVersion !== undefined && opts.asOfTime !== undefined)
    throw new RangeError('getEntityState: give asOfVersion or asOfTime, not both');

  const required = Math.max(opts.minVersion ?? 0, opts.asOfVersion ?? 0);
  const head = await waitForVersion(db, ref, required, opts.waitMs ?? 0);
  // Nothing there: make sure that is not just a connection with no read grant (never silently empty).
  if (head === 0) await assertReadGrant(db, formatEntityRef(ref));
  let target = opts.asOfVersion ?? head;
  if (opts.asOfTime !== undefined) target = await versionAtTime(db, ref, opts.asOfTime, head);

  const stats: ReadStats = { snapshotVersion: 0, folded: 0, snapshotsWritten: 0 };
  const state = await foldTo(db, policyOf, ref, target, opts.writeSnapshots ?? true, stats);
  if (opts.stats) Object.assign(opts.stats, stats);
  return state;
}

/** The entity's current version (0 when it has no observations). */
export async function getEntityVersion(db: Queryable, ref: EntityRef): Promise<number> {
  const { rows } = await db.query<{ version: number }>(
    'select version from cairn.entity_heads where entity_type = $1 and entity_id = $2',
    [ref.entityType, ref.entityId],
  );
  return rows[0]?.version ?? 0;
}

/** Polls the head with a short doubling backoff until it reaches `required` or `waitMs` passes. */
async function waitForVersion(
  db: Queryable,
  ref: EntityRef,
  required: number,
  waitMs: number,
): Promise<number> {
  const deadline = Date.now() + waitMs;
  let delay = POLL_FIRST_MS;
  for (;;) {
    const head = await getEntityVersion(db, ref);
    if (head >= required) return head;
    const left = deadline - Date.now();
    if (left <= 0) throw new VersionNotReachedError(formatEntityRef(ref), required, head);
    await sleep(Math.min(delay, left));
    delay = Math.min(delay * 2, POLL_MAX_MS);
  }
}

async function versionAtTime(
  db: Queryable,
  ref: EntityRef,
  at: string | Date,
  head: number,
): Promise<number> {
  const time = at instanceof Date ? at.toISOString() : at;
  if (at instanceof Date && Number.isNaN(at.getTime()))
    throw new RangeError('getEntityState: asOfTime is an invalid Date');
  const { rows } = await db.query<{ version: number }>(
    `select entity_version as version from cairn.observations
      where entity_type = $1 and entity_id = $2 and entity_version <= $3 and recorded_at <= $4::timestamptz
      order by entity_version desc limit 1`,
    [ref.entityType, ref.entityId, head, time],
  );
  return rows[0]?.version ?? 0;
}

async function foldTo(
  db: Queryable,
  policyOf: PolicyResolver,
  ref: EntityRef,
  target: number,
  writeSnapshots: boolean,
  stats: ReadStats,
): Promise<EntityState> {
  if (target === 0) return emptyEntityState(ref);
  const snapshot = await loadSnapshot(db, ref, target);
  let state = snapshot?.state ?? emptyEntityState(ref);
  stats.snapshotVersion = state.version;
  while (state.version < target) {
    const { rows } = await db.query<Record<string, unknown>>(
      `select id, entity_version, type, schema_version, kind, fields, target_id, agent_id, role, task_key
         from cairn.observations
        where entity_type = $1 and entity_id = $2 and entity_version > $3 and entity_version <= $4
        order by entity_version
        limit $5`,
      [ref.entityType, ref.entityId, state.version, target, FOLD_PAGE],
    );
    if (rows.length === 0)
      throw new Error(
        `${formatEntityRef(ref)}: observations after version ${state.version} are missing (wanted up to ${target})`,
      );
    const checkpoints: Snapshot[] = [];
    for (const row of rows) {
      // applyObservation refuses a gap, so a missing row cannot be folded past silently.
      state = applyObservation(state, parseReducibleRow(row), policyOf);
      if (state.version % SNAPSHOT_EVERY === 0) checkpoints.push({ version: state.version, state });
    }
    stats.folded += rows.length;
    if (writeSnapshots) stats.snapshotsWritten += await saveSnapshots(db, ref, checkpoints);
  }
  return state;
}

export interface HistoryOptions {
  fromVersion?: number;
  toVersion?: number;
  /** Default 1000, at most 10000; page on with fromVersion = last version + 1. */
  limit?: number;
}

export const HISTORY_LIMIT = { default: 1000, max: 10_000 } as const;

/** An entity's observations in version order, with everything the log stores about each. */
export async function getEntityHistory(
  db: Queryable,
  ref: EntityRef,
  opts: HistoryOptions = {},
): Promise<StoredObservation[]> {
  checkVersionOption('fromVersion', opts.fromVersion);
  checkVersionOption('toVersion', opts.toVersion);
  const limit = opts.limit ?? HISTORY_LIMIT.default;
  if (!Number.isInteger(limit) || limit < 1 || limit > HISTORY_LIMIT.max)
    throw new RangeError(`getEntityHistory: limit must be an integer 1..${HISTORY_LIMIT.max}, got ${limit}`);
  const { rows } = await db.query<Record<string, unknown>>(
    `select ${observationColumns('o')} from cairn.observations o
      where o.entity_type = $1 and o.entity_id = $2 and o.entity_version >= $3 and ($4::int is null or o.entity_version <= $4)
      order by o.entity_version
      limit $5`,
    [ref.entityType, ref.entityId, opts.fromVersion ?? 1, opts.toVersion ?? null, limit],
  );
  return rows.map(parseObservationRow);
}

/**
 * A resolver over the policies stored in cairn.observation_types, for readers that do not have
 * the writers' type definitions (the CLI). Unknown types and fields: last-writer-wins, as
 * ObservationTypeRegistry.policyOf does.
 */
export async function storedPolicyResolver(db: Queryable): Promise<PolicyResolver> {
  const { rows } = await db.query<{ name: string; version: number; policies: unknown }>(
    'select name, version, policies from cairn.observation_types',
  );
  const byKey = new Map<string, Map<string, FieldPolicy>>();
  for (const row of rows) {
    const fields = new Map<string, FieldPolicy>();
    if (typeof row.policies === 'object' && row.policies !== null && !Array.isArray(row.policies)) {
      for (const [field, policy] of Object.entries(row.policies as Record<string, unknown>)) {
        if (!isFieldPolicy(policy))
          throw new Error(
            `cairn.observation_types ${row.name}@${row.version}: field "${field}" has unknown policy ${JSON.stringify(policy)}`,
          );
        fields.set(field, policy);
      }
    }
    byKey.set(`${row.name}@${row.version}`, fields);
  }
  return (type, schemaVersion, field) =>
    byKey.get(`${type}@${schemaVersion}`)?.get(field) ?? 'last-writer-wins';
}

function isFieldPolicy(value: unknown): value is FieldPolicy {
  return typeof value === 'string' && (FIELD_POLICIES as readonly string[]).includes(value);
}

/**
 * The columns the reducer needs, checked by hand: this runs once per folded row, where the full
 * row schema (rows.ts) would cost more than the fold. jsonb `fields` is JSON by construction.
 */
function parseReducibleRow(row: unknown): ReducibleObservation {
  const r = row as Record<string, unknown>;
  const text = (name: string): string => {
    const v = r[name];
    if (typeof v !== 'string') throw new Error(`observation row: ${name} is ${typeof v}, expected text`);
    return v;
  };
  const int = (name: string): number => {
    const v = r[name];
    if (typeof v !== 'number' || !Number.isInteger(v))
      throw new Error(`observation row: ${name} is not an integer`);
    return v;
  };
  const kind = text('kind');
  if (!(OBSERVATION_KINDS as readonly string[]).includes(kind))
    throw new Error(`observation row: unknown kind "${kind}"`);
  const fields = r.fields;
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields))
    throw new Error('observation row: fields is not a JSON object');
  const targetId = r.target_id;
  if (targetId !== null && typeof targetId !== 'string')
    throw new Error('observation row: target_id is not a uuid');
  return {
    id: text('id'),
    entityVersion: int('entity_version'),
    type: text('type'),
    schemaVersion: int('schema_version'),
    kind: kind as ObservationKind,
    fields: fields as Record<string, Json>,
    targetId,
    provenance: { agentId: text('agent_id'), role: text('role'), taskKey: text('task_key') },
  };
}

function checkVersionOption(name: string, value: number | undefined): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 0))
    throw new RangeError(`${name} must be a whole number >= 0, got ${value}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
