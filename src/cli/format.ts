/**
 * Text rendering for the engineer commands (`entity`, `trace`, `log`, `verify`) and the small
 * argument parsers they share. Pure functions: the commands do the I/O, tests check the text.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>;
export type ParsedCommandArgs<O extends ParseArgsOptionsConfig> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>
>;
import { z } from 'zod';
import { canonicalJson } from '../shared/canonicalJson';
import type { ContestedValue, EntityState, FieldState, ObservationRef } from '../shared/entityState';
import {
  formatEntityRef,
  parseEntityRef,
  type EntityRef,
  type Json,
  type StoredObservation,
} from '../shared/observation';
import type { FieldTrace, TraceNode } from '../store/observations/trace';
import type { VerifyResult } from '../store/observations/verify';
import { UsageError } from './command';
import { renderTable } from './table';

/** Compact JSON for a table cell; a field cleared by a retraction has no value. */
export function formatValue(value: Json | undefined, max = 60): string {
  if (value === undefined) return '(cleared)';
  // Canonical (sorted keys): jsonb hands objects back in its own key order.
  const text = canonicalJson(value);
  return text.length > max ? text.slice(0, Math.max(1, max - 1)) + '…' : text;
}

/** `agent (role)`, plus the kind when it is not a plain assertion. */
export function formatWriter(ref: Pick<ObservationRef, 'agentId' | 'role' | 'kind'>): string {
  const who = `${ref.agentId || '?'} (${ref.role || '?'})`;
  return ref.kind === 'assertion' ? who : `${who} ${ref.kind}`;
}

/** Header line plus one table row per field, sorted by name. */
export function renderEntityState(state: EntityState, opts: { asOf?: string } = {}): string {
  const asOf = opts.asOf === undefined ? '' : `  (as of ${opts.asOf})`;
  const retracted = Object.keys(state.retracted).length;
  const header = `${formatEntityRef(state)}  version ${state.version}${asOf}${retracted > 0 ? `  ${retracted} retracted` : ''}`;
  const names = Object.keys(state.fields).sort();
  if (names.length === 0) return `${header}\n(no fields)`;
  const rows = names.map((name) => {
    const f = state.fields[name] as FieldState;
    return [
      name,
      formatValue(f.value),
      f.policy + (f.corrected ? ' (corrected)' : ''),
      formatWriter(f.winner),
      `v${f.winner.entityVersion}`,
      f.contested.length,
    ];
  });
  return `${header}\n${renderTable(['field', 'value', 'policy', 'winner', 'version', 'contested'], rows)}`;
}

/** One line per observation, in the order given (the log's seq order). */
export function renderObservations(list: readonly StoredObservation[]): string {
  if (list.length === 0) return '(no observations)';
  const rows = list.map((o) => [
    o.seq,
    o.recordedAt,
    `${formatEntityRef(o)}@${o.entityVersion}`,
    `${o.type}@${o.schemaVersion}`,
    o.kind,
    formatWriter({ agentId: o.provenance.agentId, role: o.provenance.role, kind: 'assertion' }),
    o.provenance.taskKey,
    o.kind === 'retraction' || o.kind === 'correction'
      ? `→ ${o.targetId ?? '?'} ${formatValue(o.fields, 40)}`
      : formatValue(o.fields, 60),
  ]);
  return renderTable(['seq', 'recorded', 'entity@version', 'type', 'kind', 'agent', 'task', 'fields'], rows);
}

/** A field's provenance as an indented tree: the winning observation, then what it came from. */
export function renderTrace(trace: FieldTrace): string {
  const lines = [
    `${trace.entity}.${trace.field} = ${formatValue(trace.value, 200)}  (${trace.policy}${trace.corrected ? ', corrected' : ''}; entity version ${trace.stateVersion})`,
    ...nodeLines(trace, 0),
  ];
  if (trace.contested.length > 0) {
    lines.push(`contested (${trace.contested.length}):`);
    for (const c of trace.contested) lines.push(`  ${formatContested(c)}`);
  }
  return lines.join('\n');
}

export function formatContested(c: ContestedValue): string {
  return `${formatValue(c.value, 80)}  by ${formatWriter(c.source)} v${c.source.entityVersion}  [${c.reason}]  ${c.source.observationId}`;
}

function nodeLines(node: TraceNode, depth: number): string[] {
  const pad = '  '.repeat(depth);
  const head = depth === 0 ? '' : '↳ ';
  const p = node.provenance;
  const lines = [
    `${pad}${head}${node.observationId}  ${node.kind} ${node.type}@${node.schemaVersion}  ${node.entity}@${node.entityVersion}`,
    `${pad}    agent ${p.agentId || '?'} (${p.role || '?'})  task ${p.taskKey || '-'}  attempt ${p.attempt}`,
    `${pad}    workflow ${p.workflowId || '-'}  run ${p.runId || '-'}  activity ${p.activityId || '-'}`,
    `${pad}    observed ${node.observedAt}  recorded ${node.recordedAt}`,
  ];
  if (p.source)
    lines.push(
      `${pad}    source ${p.source.kind} ${p.source.ref}${p.source.detail ? ` (${p.source.detail})` : ''}`,
    );
  if (node.temporalUrl) lines.push(`${pad}    ui ${node.temporalUrl}`);
  for (const child of node.derivedFrom) lines.push(...nodeLines(child, depth + 1));
  const inner = '  '.repeat(depth + 1);
  for (const id of node.missing) lines.push(`${inner}↳ ${id}  (not in the log)`);
  for (const id of node.cycles) lines.push(`${inner}↳ ${id}  (cycle: already on this path)`);
  for (const id of node.truncated) lines.push(`${inner}↳ ${id}  (depth limit reached)`);
  return lines;
}

export function renderVerifyResult(result: VerifyResult): string {
  const summary = `checked ${result.checked} observation(s) in ${result.entities} entit${result.entities === 1 ? 'y' : 'ies'}`;
  if (result.problems.length === 0) return `${summary}: log intact`;
  // One line per problem, not a table: the explanation is the point and must not be cut off.
  const lines = result.problems.map(
    (p) => `  ${p.entity}@${p.version}  ${p.observationId || '(missing rows)'}  ${p.problem}`,
  );
  return [`${summary}: ${result.problems.length} problem(s)`, ...lines].join('\n');
}

/** `--as-of`: a whole number is an entity version, anything else must be an ISO-8601 time. */
export function parseAsOf(text: string): { asOfVersion: number } | { asOfTime: Date } {
  if (/^\d+$/.test(text)) return { asOfVersion: parseCount('--as-of', text, 0) };
  // Date.parse accepts many shapes; demand something that starts like an ISO date.
  const ms = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(ms))
    throw new UsageError(`--as-of must be a version number or an ISO time, got "${text}"`);
  return { asOfTime: new Date(ms) };
}

/** A whole number option, at least `min`. */
export function parseCount(option: string, text: string, min = 1): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min)
    throw new UsageError(`${option} must be a whole number >= ${min}, got "${text}"`);
  return n;
}

/** An ISO time option. */
export function parseTime(option: string, text: string): Date {
  const ms = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(ms))
    throw new UsageError(`${option} must be an ISO time, e.g. 2025-01-31T12:00:00Z, got "${text}"`);
  return new Date(ms);
}

/** `<type>/<id>` from the command line, as a usage error when malformed. */
export function parseEntityArg(text: string | undefined): EntityRef {
  if (text === undefined) throw new UsageError('missing <type>/<id>');
  try {
    return parseEntityRef(text);
  } catch (err) {
    const issue = err instanceof z.ZodError ? err.issues[0] : undefined;
    const why = issue
      ? `${String(issue.path[0] ?? 'entity')} ${issue.message}`
      : err instanceof Error
        ? err.message
        : String(err);
    throw new UsageError(`bad entity "${text}": ${why}`);
  }
}

/** node:util parseArgs (strict, with positionals), with its errors as usage errors. */
export function parseCommandArgs<const O extends ParseArgsOptionsConfig>(
  argv: string[],
  options: O,
): ParsedCommandArgs<O> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}
