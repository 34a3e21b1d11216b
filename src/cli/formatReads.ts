/**
 * Text for read receipts, staleness and taint (`cairn blast`, `cairn retract`, and the notes
 * `cairn entity`, `cairn trace` and `cairn log` add). Pure functions, like ./format.ts.
 */
import type { EntityState } from '../shared/entityState';
import { formatEntityRef, type StoredObservation } from '../shared/observation';
import { describeConflict, type StaleConflict } from '../shared/readSets';
import type { BlastRadius } from '../store/blastRadius';
import type { Quarantine, TaintedField, TaintMark } from '../store/quarantine';
import type { ReadReceipt } from '../store/readSets';
import type { StaleFlag } from '../store/staleness';
import { formatValue, formatWriter } from './format';
import { renderTable } from './table';

export function renderBlastRadius(b: BlastRadius): string {
  const more = b.truncated ? ` — truncated at ${b.count}, raise --limit` : '';
  const lines = [
    `blast radius of ${b.rootId}: ${b.count} observation${b.count === 1 ? '' : 's'} within ${b.maxDepth} hops${more}`,
  ];
  lines.push(
    renderTable(
      ['depth', 'via', 'observation', 'entity@version', 'kind', 'type', 'agent', 'task'],
      b.nodes.map((n) => [
        n.depth,
        n.via === 'root' ? '' : `${n.via} ← ${n.parentId?.slice(0, 8) ?? '?'}`,
        n.observationId,
        `${n.entityType}/${n.entityId}@${n.entityVersion}`,
        n.kind,
        n.type,
        formatWriter({ agentId: n.agentId, role: n.role, kind: 'assertion' }),
        n.taskKey,
      ]),
    ),
  );
  lines.push(`tasks: ${b.taskKeys.join(', ') || '-'}`);
  lines.push(`agents: ${b.agents.map((a) => `${a.agentId || '?'} (${a.role || '?'})`).join(', ') || '-'}`);
  lines.push(`runs: ${b.runs.map((r) => `${r.workflowId}/${r.runId}`).join(', ') || '-'}`);
  if (b.fields.length > 0) {
    lines.push('current values resting on it:');
    for (const f of b.fields)
      lines.push(`  ${f.entityType}/${f.entityId}.${f.field}  (from ${f.observationId})`);
  }
  return lines.join('\n');
}

export function renderQuarantine(q: Quarantine): string {
  const state = q.lifted ? `lifted by ${q.lifted.by} at ${q.lifted.at} (${q.lifted.reason})` : 'active';
  return `quarantine ${q.id}: ${q.rootObservationId} retracted by ${q.createdBy} (${q.reason}); ${state}`;
}

/** "What did this agent see when it wrote this?": per entity read, the version and the values it saw. */
export function renderReadReceipt(r: ReadReceipt): string {
  const s = r.readSet;
  const lines = [
    `what ${s.agentId || '?'} (${s.role || '?'}) saw, attempt ${s.attempt} of ${s.activityId || '-'} (read set ${s.id}):`,
  ];
  if (r.entries.length === 0) lines.push('  (nothing)');
  for (const e of r.entries) {
    const moved = e.currentVersion > e.version ? `, now v${e.currentVersion}` : ', still current';
    lines.push(
      `  ${e.entityType}/${e.entityId}@${e.version}${moved}; looked at ${e.fields === null ? 'every field' : e.fields.join(', ') || 'no field'}`,
    );
    lines.push(...seenValues(e.state, e.fields).map((l) => `    ${l}`));
  }
  return lines.join('\n');
}

function seenValues(state: EntityState, fields: string[] | null): string[] {
  const names = fields ?? Object.keys(state.fields).sort();
  return names.map((name) => {
    const f = Object.hasOwn(state.fields, name) ? state.fields[name] : undefined;
    return f
      ? `${name} = ${formatValue(f.value, 80)}  (${formatWriter(f.winner)} v${f.winner.entityVersion})`
      : `${name}: (absent)`;
  });
}

/** root → … → the observation, each hop with how it was reached. */
export function renderTaintPath(
  path: readonly TaintMark[],
  quarantine: Pick<Quarantine, 'id' | 'reason'> | undefined,
): string {
  if (path.length === 0) return '';
  const head = quarantine ? `TAINTED (quarantine ${quarantine.id}: ${quarantine.reason})` : 'TAINTED';
  const hops = path.map(
    (m) =>
      `${m.via === 'root' ? 'retracted' : m.via} ${m.observationId} (${m.entityType}/${m.entityId}@${m.entityVersion})`,
  );
  return [head, ...hops.map((h, i) => `${'  '.repeat(i + 1)}${i === 0 ? '' : '↳ '}${h}`)].join('\n');
}

export function renderStaleFlag(flag: StaleFlag): string {
  return `STALE when written: ${flag.conflicts.map(describeConflict).join('; ')}`;
}

export function renderConflicts(conflicts: readonly StaleConflict[]): string {
  return conflicts.map((c) => `  ${describeConflict(c)}`).join('\n');
}

/** Lines under `cairn entity`: fields resting on tainted sources, stale winners. */
export function renderEntityNotes(
  tainted: readonly TaintedField[],
  stale: ReadonlyMap<string, StaleFlag>,
  state: EntityState,
): string {
  const lines: string[] = [];
  for (const t of tainted)
    lines.push(
      `  ${t.field}: tainted — rests on ${t.observationId} (quarantine ${t.quarantineId}, retracted ${t.rootObservationId})`,
    );
  for (const name of Object.keys(state.fields).sort()) {
    const flag = stale.get(state.fields[name]!.winner.observationId);
    if (flag) lines.push(`  ${name}: written stale — ${flag.conflicts.map(describeConflict).join('; ')}`);
  }
  return lines.length === 0 ? '' : ['notes:', ...lines].join('\n');
}

/** Lines under `cairn log`: which listed observations are stale or tainted. */
export function renderObservationNotes(
  list: readonly StoredObservation[],
  stale: ReadonlyMap<string, StaleFlag>,
  tainted: ReadonlyMap<string, TaintMark>,
): string {
  const lines: string[] = [];
  for (const o of list) {
    const flag = stale.get(o.id);
    if (flag)
      lines.push(
        `  seq ${o.seq} ${formatEntityRef(o)}@${o.entityVersion}: stale — ${flag.conflicts.map(describeConflict).join('; ')}`,
      );
    const mark = tainted.get(o.id);
    if (mark)
      lines.push(
        `  seq ${o.seq} ${formatEntityRef(o)}@${o.entityVersion}: tainted — ${mark.via === 'root' ? 'retracted' : `${mark.via} from ${mark.parentId ?? '?'}`} (quarantine ${mark.quarantineId})`,
      );
  }
  return lines.length === 0 ? '' : ['notes:', ...lines].join('\n');
}
