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
 * - Bound to the chain hash of the observation at its version (migration 009): reads use a
 *   snapshot only while the log still has that hash there; `cairn verify` re-folds every one.
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
      // Only a snapshot still bound to its version's chain hash (migration 009): one written
      // before a tail was rewritten, or for a version the log no longer has, is not used.
      `select s.version, s.state -> 'state' as state
         from cairn.entity_snapshots s
         join cairn.observations o
           on o.entity_type = s.entity_type and o.entity_id = s.entity_id and o.entity_version = s.version
          and o.chain_hash = s.chain_hash
        where s.entity_type = $1 and s.entity_id = $2 and s.version <= $3 and s.state -> 'format' = to_jsonb($4::int)
        order by s.version desc
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
 * Stores snapshots of one entity (idempotent) through cairn.save_entity_snapshots: the
 * application role cannot insert them directly (migration 009). The function binds each to its
 * version's chain hash and replaces a stored row of another format or binding.
 */
export async function saveSnapshots(
  db: Queryable,
  ref: EntityRef,
  snapshots: readonly Snapshot[],
): Promise<number> {
  if (snapshots.length === 0) return 0;
  const { rows } = await db.query<{ n: number }>(
    'select cairn.save_entity_snapshots($1, $2, $3::int[], $4::jsonb[]) as n',
    [
      ref.entityType,
      ref.entityId,
      snapshots.map((s) => s.version),
      snapshots.map((s) => JSON.stringify({ format: SNAPSHOT_FORMAT, state: s.state })),
    ],
  );
  return rows[0]?.n ?? 0;
}

/** A light structural check: enough to refuse a snapshot of another entity or version. */
export function isStateOf(value: unknown, ref: EntityRef, version: number): value is EntityState {
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
