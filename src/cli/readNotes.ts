/**
 * The read-receipt notes `cairn entity`, `cairn trace` and `cairn log` add under their usual
 * output: staleness flags, taint (from the active quarantines) and, for a trace, what the
 * writer saw when it wrote the value. One small query each when there is nothing to say.
 */
import type { EntityState, PolicyResolver } from '../shared/entityState';
import type { StoredObservation } from '../shared/observation';
import type { Queryable } from '../store/pool';
import { loadTaint, taintedFields, taintPath, type Quarantine, type TaintMark } from '../store/quarantine';
import { readReceipt, type ReadReceipt } from '../store/readSets';
import { staleFlags, type StaleFlag } from '../store/staleness';
import {
  renderEntityNotes,
  renderObservationNotes,
  renderReadReceipt,
  renderStaleFlag,
  renderTaintPath,
} from './formatReads';

export async function entityNotes(db: Queryable, state: EntityState): Promise<string> {
  const taint = await loadTaint(db);
  const winners = Object.values(state.fields).map((f) => f.winner.observationId);
  return renderEntityNotes(taintedFields(state, taint), await staleFlags(db, winners), state);
}

export interface ObservationEvidence {
  /** What the writer saw (null: it read nothing through its view, or wrote outside a step). */
  readReceipt: ReadReceipt | null;
  stale: StaleFlag | null;
  /** Root first; empty when not tainted. */
  taintPath: TaintMark[];
  /** The quarantine that taints it. */
  quarantine: Quarantine | null;
}

export async function observationEvidence(
  db: Queryable,
  policyOf: PolicyResolver,
  observationId: string,
): Promise<ObservationEvidence> {
  const taint = await loadTaint(db);
  const path = taintPath(taint, observationId);
  return {
    readReceipt: await readReceipt(db, policyOf, observationId),
    stale: (await staleFlags(db, [observationId])).get(observationId) ?? null,
    taintPath: path,
    quarantine: taint.quarantines.find((q) => q.id === path[0]?.quarantineId) ?? null,
  };
}

export function renderEvidence(e: ObservationEvidence): string {
  const parts: string[] = [];
  if (e.readReceipt) parts.push(renderReadReceipt(e.readReceipt));
  if (e.stale) parts.push(renderStaleFlag(e.stale));
  if (e.taintPath.length > 0) parts.push(renderTaintPath(e.taintPath, e.quarantine ?? undefined));
  return parts.join('\n');
}

export async function logNotes(db: Queryable, list: readonly StoredObservation[]): Promise<string> {
  if (list.length === 0) return '';
  const taint = await loadTaint(db);
  return renderObservationNotes(
    list,
    await staleFlags(
      db,
      list.map((o) => o.id),
    ),
    taint.marks,
  );
}
