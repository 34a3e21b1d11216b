/**
 * Snapshots: cached reductions in cairn.entity_snapshots, so reading an entity folds only the
 * observations after the newest usable snapshot instead of its whole history.
 *
 * A snapshot is a cache, never a source of truth: any of them may be deleted at any time, and a
 * read that finds none folds from version 1 and gets the same state.
 *
 * - Stored as `{ format: SNAPSHOT_FORMAT, state: EntityState }` in the `state` jsonb. The format
 *   is the version of the reduction semantics: bump it whenever the reducer's output for the
 *   same observations changes (or EntityState's shape does). Snapshots of another format are
 *   ignored by reads and replaced when a read passes their version again.
 * - Written at aligned versions (multiples of SNAPSHOT_EVERY) as a fold passes them, so a read
 *   at any version — current or historical — folds fewer than SNAPSHOT_EVERY rows once the
 *   checkpoints below it exist, and concurrent readers write identical rows (ON CONFLICT DO
 *   NOTHING makes them idempotent). A fold that had to start below a snapshot (a retraction
 *   reached an observation the snapshot had folded) also stores the state at that retraction's
 *   version, so the next read starts there. A fold stores only states that are the state "as
 *   of" their version: none before the window's last retraction.
 * - A snapshot folds the policies of the resolver that built it. Every resolver must agree with
 *   the types registered in cairn.observation_types (a type@version's policies never change once
 *   registered), which is why the CLI reduces with the stored policies.
 */
import type { EntityState } from '../../shared/entityState';
import type { EntityRef } from '../../shared/observation';
import type { Queryable } from '../pool';

/**
 * Version of the reduction semantics baked into snapshots; bump when the reducer's output changes.
 * 2: retraction is exclusion, corrections pin, null clears, set elements keep { first, count }.
 */
export const SNAPSHOT_FORMAT = 2;

/** Checkpoint spacing, in entity versions: the most rows a warm read folds. */
export const SNAPSHOT_EVERY = 500;

export interface Snapshot {
  version: number;
  state: EntityState;
}

/** The newest snapshot of the current format at or below `maxVersion`, if any. */
export async function loadSnapshot(
  db: Queryable,
  ref: EntityRef,
  maxVersion: number,
): Promise<Snapshot | undefined> {
  let below = maxVersion;
  // A malformed row (hand-edited, or a bug) is skipped, not trusted: look further down.
  for (;;) {
    const { rows } = await db.query<{ version: number; state: unknown }>(
      `select version, state -> 'state' as state
         from cairn.entity_snapshots
        where entity_type = $1 and entity_id = $2 and version <= $3 and state -> 'format' = to_jsonb($4::int)
        order by version desc
        limit 1`,
      [ref.entityType, ref.entityId, below, SNAPSHOT_FORMAT],
    );
    const row = rows[0];
    if (!row) return undefined;
    if (isStateOf(row.state, ref, row.version)) return { version: row.version, state: row.state };
    below = row.version - 1;
    if (below < 1) return undefined;
  }
}

/**
 * Stores snapshots of one entity (idempotent). Rows of another format at the same versions are
 * deleted first: the application role may insert and delete snapshots, not update them.
 */
export async function saveSnapshots(
  db: Queryable,
  ref: EntityRef,
  snapshots: readonly Snapshot[],
): Promise<number> {
  if (snapshots.length === 0) return 0;
  const versions = snapshots.map((s) => s.version);
  await db.query(
    `delete from cairn.entity_snapshots
      where entity_type = $1 and entity_id = $2 and version = any($3::int[])
        and state -> 'format' is distinct from to_jsonb($4::int)`,
    [ref.entityType, ref.entityId, versions, SNAPSHOT_FORMAT],
  );
  const result = await db.query(
    `insert into cairn.entity_snapshots (entity_type, entity_id, version, state)
     select $1, $2, u.version, u.state from unnest($3::int[], $4::jsonb[]) as u(version, state)
     on conflict (entity_type, entity_id, version) do nothing`,
    [
      ref.entityType,
      ref.entityId,
      versions,
      snapshots.map((s) => JSON.stringify({ format: SNAPSHOT_FORMAT, state: s.state })),
    ],
  );
  return result.rowCount ?? 0;
}

/** A light structural check: enough to refuse a snapshot of another entity or version. */
function isStateOf(value: unknown, ref: EntityRef, version: number): value is EntityState {
  if (typeof value !== 'object' || value === null) return false;
  const s = value as Partial<Record<keyof EntityState, unknown>>;
  return (
    s.entityType === ref.entityType &&
    s.entityId === ref.entityId &&
    s.version === version &&
    isPlainObject(s.fields) &&
    isPlainObject(s.retracted)
  );
}

function isPlainObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
