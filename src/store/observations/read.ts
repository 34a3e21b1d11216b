/**
 * Reading entities: state (now, as of a version or a time, or "at least version v"), history,
 * and the policy resolver made from the types registered in the database.
 *
 * State is a fold of the entity's observations in version order (src/shared/reducer.ts); this
 * module starts the fold from the newest snapshot at or below the wanted version and fetches
 * only the rows after it, a page at a time (see ./snapshots.ts for the cache's rules).
 */
import { canonicalJson } from '../../shared/canonicalJson';
import type { EntityState, ObservationRef, PolicyResolver } from '../../shared/entityState';
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
import {
  applyObservations,
  emptyEntityState,
  UnknownFieldPolicyError,
  withdrawalsIn,
  type RetractionLink,
  type Withdrawals,
} from '../../shared/reducer';
import { Pool } from 'pg';
import { inlineInt, inlineText, queryInline, type Queryable } from '../pool';
import { assertReadGrant } from '../readGrant';
import { observationColumns, parseObservationRow } from './rows';
import {
  isStateOf,
  loadSnapshot,
  saveSnapshots,
  SNAPSHOT_EVERY,
  SNAPSHOT_FORMAT,
  type Snapshot,
} from './snapshots';
import { tracedRead } from '../../telemetry/instrument';

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
  /**
   * Fold as if these observations had never been written (taint-excluding reads): the fold
   * starts below the lowest of them and stores no snapshots.
   */
  without?: WithoutOption;
}

/** Rows fetched per round trip while folding. */
const FOLD_PAGE = 2000;
const POLL_FIRST_MS = 10;
const POLL_MAX_MS = 250;

export const getEntityState = tracedRead(getEntityStateUntraced);
/** getEntityState without its span, for callers that trace the read themselves (readEntityInScope). */
export async function getEntityStateUntraced(
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

  // The everyday read (current state): one statement, folded here; the general path below only
  // when that statement cannot answer alone (see foldLatest).
  if (opts.asOfVersion === undefined && opts.asOfTime === undefined && opts.without === undefined) {
    // On the pool: one message, no BEGIN / COMMIT (queryInline); on a client: its transaction.
    const { rows } =
      db instanceof Pool && inlinable(ref)
        ? await queryInline<LatestRow>(db, latestStatement(ref))
        : await db.query<LatestRow>(latestQuery(ref));
    const fast = await foldLatest(db, policyOf, ref, rows[0], opts);
    if (fast) return fast;
  }

  const required = Math.max(opts.minVersion ?? 0, opts.asOfVersion ?? 0);
  const head = await waitForVersion(db, ref, required, opts.waitMs ?? 0);
  // Nothing there: make sure that is not just a connection with no read grant (never silently empty).
  if (head === 0) await assertReadGrant(db, formatEntityRef(ref));
  let target = opts.asOfVersion ?? head;
  if (opts.asOfTime !== undefined) target = await versionAtTime(db, ref, opts.asOfTime, head);

  const stats: ReadStats = { snapshotVersion: 0, folded: 0, snapshotsWritten: 0 };
  const state = await foldTo(db, policyOf, ref, target, opts.writeSnapshots ?? true, stats, opts.without);
  if (opts.stats) Object.assign(opts.stats, stats);
  return state;
}

/** What latestQuery returns: the head, the newest bound snapshot (its stored document) and the rows after it. */
export interface LatestRow {
  head: number | null;
  snapshot_version: number | null;
  /** The snapshot as stored: `{ format, state }` (./snapshots.ts), of any format. */
  snapshot: unknown;
  rows: FoldRow[] | null;
}

/**
 * The current state's inputs in one statement, cairn.read_current (migration 019; one round
 * trip): the head, the newest snapshot bound to its version's chain hash (the rule of
 * loadSnapshot) as stored, and the rows after it as JSON (none when the snapshot is the head).
 */
export function latestQuery(ref: EntityRef): { text: string; values: unknown[] } {
  // Unnamed: cairn.read_current keeps its own plans, and an unnamed statement passes PgBouncer
  // in transaction mode (a named one would collide between client connections).
  return {
    text: 'select head, snapshot_version, snapshot, rows from cairn.read_current($1, $2, $3::int)',
    values: [ref.entityType, ref.entityId, SNAPSHOT_EVERY],
  };
}

/** latestQuery with its values as literals, for queryInline (see inlinable). */
export function latestStatement(ref: EntityRef): string {
  return `select head, snapshot_version, snapshot, rows from cairn.read_current(${inlineText(ref.entityType)}, ${inlineText(ref.entityId)}, ${inlineInt(SNAPSHOT_EVERY)})`;
}

/** A ref queryInline can carry as literals (Postgres text holds no NUL; such a ref takes latestQuery and fails there as before). */
export function inlinable(ref: EntityRef): boolean {
  return !ref.entityType.includes('\0') && !ref.entityId.includes('\0');
}

/**
 * The current state from latestQuery's row, or undefined when the general path must answer:
 * no observations (or no grant: the general path says which), a head below `minVersion` (it
 * waits or refuses), a snapshot of another format or failing its check, a window it did not
 * fetch whole, a retraction reaching below the snapshot (the fold must start lower), or a
 * checkpoint to store (aligned version in the window). Otherwise it is exactly foldTo's fold:
 * the newest snapshot plus every row after it, with the window's withdrawals. A snapshot at the
 * head is the state as stored: Postgres checked its binding to the head's chain hash in the
 * same statement, and there is nothing to fold.
 */
export async function foldLatest(
  db: Queryable,
  policyOf: PolicyResolver,
  ref: EntityRef,
  row: LatestRow | undefined,
  opts: Pick<EntityStateOptions, 'minVersion' | 'writeSnapshots' | 'stats'> = {},
): Promise<EntityState | undefined> {
  const head = row?.head ?? 0;
  if (!row || head === 0 || head < (opts.minVersion ?? 0)) return undefined;
  let base = emptyEntityState(ref);
  if (row.snapshot_version !== null) {
    const doc = row.snapshot as { format?: unknown; state?: unknown } | null;
    if (doc?.format !== SNAPSHOT_FORMAT || !isStateOf(doc.state, ref, row.snapshot_version)) return undefined;
    base = doc.state;
  }
  const rows = Array.isArray(row.rows) ? row.rows : [];
  if (rows.length !== head - base.version || rows.at(-1)?.entity_version !== (rows.length ? head : undefined))
    return undefined;
  if (rows.length === 0) {
    if (opts.stats)
      Object.assign(opts.stats, { snapshotVersion: base.version, folded: 0, snapshotsWritten: 0 });
    return base;
  }
  if (
    (opts.writeSnapshots ?? true) &&
    Math.floor(head / SNAPSHOT_EVERY) > Math.floor(base.version / SNAPSHOT_EVERY)
  )
    return undefined;
  const withdrawals = withdrawalsIn(rows.filter((r) => r.kind === 'retraction').map(linkOfRow), base.version);
  if (withdrawals.reachesBelow !== undefined) return undefined;
  const resolver = await readerPolicies(db, policyOf);
  let state = base;
  for (const r of rows) state = await foldRow(state, parseReducibleRow(r), resolver, withdrawals);
  if (opts.stats)
    Object.assign(opts.stats, { snapshotVersion: base.version, folded: rows.length, snapshotsWritten: 0 });
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

/** An observation row with its retraction target's version (null: not a retraction, or no such row). */
type FoldRow = Record<string, unknown>;

// A retraction's target version, looked up by primary key for retraction rows only.
const TARGET_VERSION = `case when o.kind = 'retraction' then
          (select t.entity_version from cairn.observations t where t.id = o.target_id) end as target_version`;
const FOLD_COLUMNS = `o.id, o.entity_version, o.type, o.schema_version, o.kind, o.fields, o.target_id, o.agent_id, o.role, o.task_key,
        ${TARGET_VERSION}`;

/**
 * The fold to `target`: from the newest snapshot at or below it, unless a live retraction after
 * the snapshot reaches an observation the snapshot already folded (a withdrawn observation
 * counts as never written, so the fold must start below it: see reducer.ts). Then the start
 * moves down to a snapshot below the lowest such observation, and again if the longer window
 * holds more such retractions.
 */
async function foldTo(
  db: Queryable,
  policyOf: PolicyResolver,
  ref: EntityRef,
  target: number,
  writeSnapshots: boolean,
  stats: ReadStats,
  without?: WithoutOption,
): Promise<EntityState> {
  if (target === 0) return emptyEntityState(ref);
  const resolver = await readerPolicies(db, policyOf);
  const startBelow = without ? Math.min(target, without.lowestVersion - 1) : target;
  let base = (await loadSnapshot(db, ref, startBelow))?.state ?? emptyEntityState(ref);
  const snapshotVersion = base.version;
  let firstPage = await foldPage(db, ref, base.version, target);
  const complete = firstPage.length > 0 && firstPage.at(-1)?.entity_version === target;
  let links = complete
    ? firstPage.filter((r) => r.kind === 'retraction').map(linkOfRow)
    : await retractionLinks(db, ref, base.version, target);
  let withdrawals = withdrawalsIn(links, base.version, without?.ids);
  while (withdrawals.reachesBelow !== undefined) {
    const lower =
      withdrawals.reachesBelow > 1 ? await loadSnapshot(db, ref, withdrawals.reachesBelow - 1) : undefined;
    const next = lower?.state ?? emptyEntityState(ref);
    links = [...(await retractionLinks(db, ref, next.version, base.version)), ...links];
    base = next;
    firstPage = [];
    withdrawals = withdrawalsIn(links, base.version, without?.ids);
  }
  stats.snapshotVersion = base.version;
  // Pass 1 looked at the whole window, so a state the fold passes at version c already lacks
  // what a later retraction withdraws: it is the state "as of" c (and may be stored) unless a
  // retraction after c withdraws an observation at or below c.
  const asOf = storableVersions(links, withdrawals);
  const lastRetraction = links.reduce((m, l) => Math.max(m, l.entityVersion), base.version);
  const mayStore = writeSnapshots && without === undefined;
  let state = base;
  let page = firstPage;
  for (;;) {
    if (page.length === 0 && state.version < target) page = await foldPage(db, ref, state.version, target);
    if (state.version >= target) break;
    if (page.length === 0)
      throw new Error(
        `${formatEntityRef(ref)}: observations after version ${state.version} are missing (wanted up to ${target})`,
      );
    const checkpoints: Snapshot[] = [];
    for (const row of page) {
      state = await foldRow(state, parseReducibleRow(row), resolver, withdrawals);
      // Checkpoints: aligned versions, plus the last retraction when this fold had to start
      // below a snapshot (so the next read need not).
      const aligned = state.version % SNAPSHOT_EVERY === 0;
      const widened = base.version < snapshotVersion && state.version === lastRetraction;
      if (mayStore && (aligned || widened) && asOf(state.version))
        checkpoints.push({ version: state.version, state });
    }
    stats.folded += page.length;
    if (checkpoints.length > 0) stats.snapshotsWritten += await saveSnapshots(db, ref, checkpoints);
    page = [];
  }
  return state;
}

/** Versions whose folded state equals the state as of that version (see foldTo). */
function storableVersions(
  links: readonly RetractionLink[],
  withdrawals: Withdrawals,
): (version: number) => boolean {
  const blocked: [number, number][] = [];
  for (const l of links)
    if (withdrawals.byRetraction.has(l.id) && typeof l.targetVersion === 'number')
      blocked.push([l.targetVersion, l.entityVersion]);
  return (version) => !blocked.some(([from, to]) => from <= version && version < to);
}

async function foldRow(
  state: EntityState,
  row: ReducibleObservation,
  resolver: ReaderPolicies,
  withdrawals: Withdrawals,
): Promise<EntityState> {
  try {
    return applyObservations(state, [row], resolver.resolve, { withdrawals });
  } catch (err) {
    // A type registered since the stored policies were cached: reload them once, fold again.
    if (!(err instanceof UnknownFieldPolicyError) || !(await resolver.reload())) throw err;
    return applyObservations(state, [row], resolver.resolve, { withdrawals });
  }
}

/** Ids to fold as if never written (they and their retractions take no part), and the lowest version among them. */
export interface WithoutOption {
  ids: ReadonlySet<string>;
  lowestVersion: number;
}

async function foldPage(db: Queryable, ref: EntityRef, after: number, upTo: number): Promise<FoldRow[]> {
  const { rows } = await db.query<FoldRow>(
    `select ${FOLD_COLUMNS}
       from cairn.observations o
      where o.entity_type = $1 and o.entity_id = $2 and o.entity_version > $3 and o.entity_version <= $4
      order by o.entity_version
      limit $5`,
    [ref.entityType, ref.entityId, after, upTo, FOLD_PAGE],
  );
  return rows;
}

/** The retractions in (after, upTo] with their targets' versions: pass 1 of a fold. */
async function retractionLinks(
  db: Queryable,
  ref: EntityRef,
  after: number,
  upTo: number,
): Promise<RetractionLink[]> {
  if (upTo <= after) return [];
  const { rows } = await db.query<FoldRow>(
    `select o.id, o.entity_version, o.kind, o.target_id, ${TARGET_VERSION}
       from cairn.observations o
      where o.entity_type = $1 and o.entity_id = $2 and o.entity_version > $3 and o.entity_version <= $4
        and o.kind = 'retraction'`,
    [ref.entityType, ref.entityId, after, upTo],
  );
  return rows.map(linkOfRow);
}

function linkOfRow(row: FoldRow): RetractionLink {
  const targetVersion = row.target_version;
  return {
    id: String(row.id),
    entityVersion: Number(row.entity_version),
    targetId: typeof row.target_id === 'string' ? row.target_id : null,
    targetVersion: typeof targetVersion === 'number' ? targetVersion : null,
  };
}

/**
 * The caller's resolver, then the policies stored in cairn.observation_types (a type@version's
 * policies never change once registered): a reader never depends on which types its worker
 * knows, and never guesses. Cached per connection or pool; reloaded once when a type is missing.
 */
interface ReaderPolicies {
  resolve: PolicyResolver;
  /** Reloads the stored policies; false when they were already fresh for this read. */
  reload: () => Promise<boolean>;
}

const storedCache = new WeakMap<Queryable, Map<string, ReadonlyMap<string, FieldPolicy>>>();

async function readerPolicies(db: Queryable, policyOf: PolicyResolver): Promise<ReaderPolicies> {
  let stored = storedCache.get(db);
  let fresh = false;
  const load = async () => {
    stored = await loadStoredPolicies(db);
    storedCache.set(db, stored);
    fresh = true;
  };
  return {
    resolve: (type, schemaVersion, field) =>
      policyOf(type, schemaVersion, field) ?? stored?.get(`${type}@${schemaVersion}`)?.get(field),
    reload: async () => {
      if (fresh) return false;
      await load();
      return true;
    },
  };
}

async function loadStoredPolicies(db: Queryable): Promise<Map<string, ReadonlyMap<string, FieldPolicy>>> {
  const { rows } = await db.query<{ name: string; version: number; policies: unknown }>(
    'select name, version, policies from cairn.observation_types',
  );
  const byKey = new Map<string, ReadonlyMap<string, FieldPolicy>>();
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
  return byKey;
}

/**
 * Every contributor of a set-union field's elements (the state keeps only each element's first
 * contributor and a count): the live observations from the element's first contributor on that
 * wrote it (only the correction itself when the field is pinned). Keyed like `contributors`.
 */
export async function listContributors(
  db: Queryable,
  policyOf: PolicyResolver,
  ref: EntityRef,
  field: string,
): Promise<Record<string, ObservationRef[]>> {
  const state = await getEntityState(db, policyOf, ref, { writeSnapshots: false });
  const f = Object.hasOwn(state.fields, field) ? state.fields[field] : undefined;
  if (f?.contributors === undefined) return {};
  const out: Record<string, ObservationRef[]> = {};
  const firsts = Object.values(f.contributors).map((c) => c.first.entityVersion);
  if (firsts.length === 0) return out;
  const withdrawn = withdrawalsIn(await retractionLinks(db, ref, 0, state.version), 0).dead;
  const { rows } = await db.query<{
    id: string;
    entity_version: number;
    kind: ObservationKind;
    agent_id: string;
    role: string;
    value: Json;
  }>(
    `select id, entity_version, kind, agent_id, role, fields -> $3 as value from cairn.observations
      where entity_type = $1 and entity_id = $2 and entity_version >= $4 and entity_version <= $5
        and kind <> 'retraction' and fields ? $3
      order by entity_version`,
    [ref.entityType, ref.entityId, field, Math.min(...firsts), state.version],
  );
  for (const [key, source] of Object.entries(f.contributors)) {
    const refs: ObservationRef[] = [];
    for (const r of rows) {
      if (r.entity_version < source.first.entityVersion || withdrawn.has(r.id)) continue;
      if (f.corrected && r.id !== f.winner.observationId) continue;
      const els = Array.isArray(r.value) ? r.value : [r.value];
      if (els.some((el) => el !== null && canonicalJson(el) === key))
        refs.push({
          observationId: r.id,
          entityVersion: r.entity_version,
          agentId: r.agent_id,
          role: r.role,
          kind: r.kind,
        });
    }
    Object.defineProperty(out, key, { value: refs, enumerable: true, writable: true, configurable: true });
  }
  return out;
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
 * the writers' type definitions (the CLI). Unknown types and fields resolve to undefined (the
 * reducer then refuses to guess).
 */
export async function storedPolicyResolver(db: Queryable): Promise<PolicyResolver> {
  const byKey = await loadStoredPolicies(db);
  return (type, schemaVersion, field) => byKey.get(`${type}@${schemaVersion}`)?.get(field);
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
