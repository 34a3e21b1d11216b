/**
 * The parts of `cairn verify` beyond the log's own hash chains:
 *
 * - snapshots: every stored snapshot of the current format is re-folded from the log with the
 *   policies stored in cairn.observation_types and must equal it, and must be bound to the chain
 *   hash the log has at its version (reads ignore an unbound one; a forged one would otherwise
 *   be read as the entity's state);
 * - type definitions: each cairn.observation_types row's definition_hash must be the hash of
 *   what the row says (migration 009), so an edit of a type's policies or schema is named.
 *
 * Entities are re-folded one at a time, a page of rows per round trip, up to their newest
 * snapshot only.
 */
import type { PoolClient } from 'pg';
import { canonicalJson } from '../../shared/canonicalJson';
import type { EntityState } from '../../shared/entityState';
import { formatEntityRef, type EntityRef, type Json } from '../../shared/observation';
import { applyObservation, emptyEntityState } from '../../shared/reducer';
import { storedPolicyResolver } from './read';
import { observationColumns, parseObservationRow } from './rows';
import { SNAPSHOT_FORMAT } from './snapshots';

export type Report = (entity: string, version: number, observationId: string, problem: string) => void;

const FOLD_PAGE = 2000;

interface SnapshotRow {
  entity_type: string;
  entity_id: string;
  version: number;
  format: unknown;
  state: unknown;
  chain_hash: string | null;
  log_chain_hash: string | null;
  log_id: string | null;
}

/** Re-folds every snapshot (of `entity`, or all). Returns how many were checked. */
export async function verifySnapshots(
  db: PoolClient,
  entity: EntityRef | undefined,
  report: Report,
): Promise<number> {
  const { rows } = await db.query<SnapshotRow>(
    `select s.entity_type, s.entity_id, s.version, s.state -> 'format' as format, s.state -> 'state' as state,
            s.chain_hash, o.chain_hash as log_chain_hash, o.id::text as log_id
       from cairn.entity_snapshots s
       left join cairn.observations o
         on o.entity_type = s.entity_type and o.entity_id = s.entity_id and o.entity_version = s.version
      where $1::text is null or (s.entity_type = $1 and s.entity_id = $2)
      order by s.entity_type, s.entity_id, s.version`,
    [entity?.entityType ?? null, entity?.entityId ?? null],
  );
  if (rows.length === 0) return 0;
  const policyOf = await storedPolicyResolver(db);
  let checked = 0;
  for (let i = 0; i < rows.length;) {
    const first = rows[i]!;
    const ref = { entityType: first.entity_type, entityId: first.entity_id };
    const group: SnapshotRow[] = [];
    while (i < rows.length && rows[i]!.entity_type === ref.entityType && rows[i]!.entity_id === ref.entityId)
      group.push(rows[i++]!);
    checked += await verifyEntitySnapshots(db, ref, group, policyOf, report);
  }
  return checked;
}

async function verifyEntitySnapshots(
  db: PoolClient,
  ref: EntityRef,
  snapshots: SnapshotRow[],
  policyOf: Awaited<ReturnType<typeof storedPolicyResolver>>,
  report: Report,
): Promise<number> {
  const key = formatEntityRef(ref);
  let state: EntityState = emptyEntityState(ref);
  let checked = 0;
  for (const snap of snapshots) {
    const id = snap.log_id ?? '';
    // A snapshot of a version the log does not have is never read (the chain walk reports rows
    // that went missing); nothing to re-fold.
    if (snap.log_chain_hash === null) continue;
    if (snap.chain_hash !== snap.log_chain_hash) {
      report(
        key,
        snap.version,
        id,
        `snapshot at version ${snap.version} is bound to chain hash ${short(snap.chain_hash)}, the log has ${short(snap.log_chain_hash)} there (reads ignore it)`,
      );
    }
    // A snapshot of another reduction format is never read (and cannot be re-folded here).
    if (snap.format !== SNAPSHOT_FORMAT) continue;
    try {
      state = await foldTo(db, ref, state, snap.version, policyOf);
    } catch (err) {
      report(key, snap.version, id, `cannot re-fold up to this snapshot: ${firstLine(err)}`);
      return checked;
    }
    checked++;
    const expected = canonical(state);
    const stored = canonical(snap.state);
    if (expected !== stored) {
      report(
        key,
        snap.version,
        id,
        `snapshot at version ${snap.version} differs from the fold of versions 1..${snap.version}${differingFields(state, snap.state)}`,
      );
    }
  }
  return checked;
}

async function foldTo(
  db: PoolClient,
  ref: EntityRef,
  from: EntityState,
  target: number,
  policyOf: Awaited<ReturnType<typeof storedPolicyResolver>>,
): Promise<EntityState> {
  let state = from;
  while (state.version < target) {
    const { rows } = await db.query<Record<string, unknown>>(
      `select ${observationColumns('o')} from cairn.observations o
        where o.entity_type = $1 and o.entity_id = $2 and o.entity_version > $3 and o.entity_version <= $4
        order by o.entity_version limit $5`,
      [ref.entityType, ref.entityId, state.version, target, FOLD_PAGE],
    );
    if (rows.length === 0) throw new Error(`observations after version ${state.version} are missing`);
    for (const row of rows) state = applyObservation(state, parseObservationRow(row), policyOf);
  }
  return state;
}

/** Canonical text of a state as it would be stored (a JSON round trip drops undefined). */
function canonical(value: unknown): string {
  try {
    return canonicalJson(JSON.parse(JSON.stringify(value ?? null)) as Json);
  } catch (err) {
    return `(not JSON: ${firstLine(err)})`;
  }
}

function differingFields(expected: EntityState, stored: unknown): string {
  const storedFields =
    typeof stored === 'object' && stored !== null && 'fields' in stored
      ? (stored.fields as Record<string, unknown> | null)
      : null;
  if (typeof storedFields !== 'object' || storedFields === null) return ' (not an entity state)';
  const names = new Set([...Object.keys(expected.fields), ...Object.keys(storedFields)]);
  const differing = [...names]
    .filter((n) => canonical((expected.fields as Record<string, unknown>)[n]) !== canonical(storedFields[n]))
    .sort();
  return differing.length === 0 ? '' : ` (fields: ${differing.join(', ')})`;
}

/** Type definitions whose stored definition_hash is not the hash of what the row says. */
export async function verifyTypeDefinitions(db: PoolClient, report: Report): Promise<number> {
  const { rows } = await db.query<{ name: string; version: number; stored: string; computed: string }>(
    `select name, version, definition_hash as stored,
            cairn.type_definition_hash(name, version, entity, policies, json_schema) as computed
       from cairn.observation_types order by name, version`,
  );
  for (const r of rows) {
    if (r.stored !== r.computed)
      report(
        `type ${r.name}@${r.version}`,
        r.version,
        '',
        `definition changed after registration: stored definition_hash ${short(r.stored)}, the row hashes to ${short(r.computed)}`,
      );
  }
  return rows.length;
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}

function short(hash: string | null): string {
  if (hash === null) return '(none)';
  return hash.length > 12 ? `${hash.slice(0, 12)}…` : JSON.stringify(hash);
}
