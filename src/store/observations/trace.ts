/**
 * `cairn trace`: where a field's current value came from. Starts at the observation that won the
 * field in the entity's current state, then follows derived_from back through the log (one
 * recursive query, depth-limited and cycle-safe) to the observations it was derived from, each
 * with its full provenance and a link to its Temporal run.
 */
import type { ContestedValue, ElementSource, PolicyResolver } from '../../shared/entityState';
import {
  formatEntityRef,
  type EntityRef,
  type FieldPolicy,
  type Json,
  type ObservationKind,
  type Provenance,
  type StoredObservation,
} from '../../shared/observation';
import type { Queryable } from '../pool';
import { getEntityState } from './read';
import { observationColumns, parseObservationRow } from './rows';

export interface TraceNode {
  observationId: string;
  /** `type/id` of the entity the observation is about. */
  entity: string;
  entityVersion: number;
  type: string;
  schemaVersion: number;
  kind: ObservationKind;
  fields: Record<string, Json>;
  targetId: string | null;
  provenance: Provenance;
  observedAt: string;
  recordedAt: string;
  /** The Temporal UI page of the run that wrote it; null when written outside a workflow. */
  temporalUrl: string | null;
  /** 0 for the winning observation, +1 per derived_from hop. */
  depth: number;
  /** The observations named in derived_from, in that order (those that could be followed). */
  derivedFrom: TraceNode[];
  /** derived_from ids with no row in the log. */
  missing: string[];
  /** derived_from ids already on the path from the root (a cycle): not followed again. */
  cycles: string[];
  /** derived_from ids not followed because of maxDepth or the node limit. */
  truncated: string[];
}

/** The root of a trace: the winning observation plus the field's state. */
export interface FieldTrace extends TraceNode {
  field: string;
  /** Absent when a retraction cleared the field (the root is then the retraction). */
  value?: Json;
  policy: FieldPolicy;
  corrected: boolean;
  /** The entity version the state was read at. */
  stateVersion: number;
  /** Values that lost, with who wrote them and why. */
  contested: ContestedValue[];
  /** For set-union fields: each element (canonical JSON) → its first contributor and count. */
  contributors?: Record<string, ElementSource>;
}

export interface TraceOptions {
  /** Temporal UI base URL, e.g. http://127.0.0.1:8233. */
  uiUrl: string;
  namespace: string;
  /** derived_from hops to follow (default 10, at most 100). */
  maxDepth?: number;
  /** Nodes to load at most (default 1000): a wide, diamond-shaped ancestry is cut here. */
  maxNodes?: number;
}

/** The Temporal UI page of a workflow run (the workflow's latest run when runId is empty). */
export function temporalRunUrl(
  uiUrl: string,
  namespace: string,
  workflowId: string,
  runId: string,
): string | null {
  if (workflowId === '') return null;
  const base = `${uiUrl.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return runId === '' ? base : `${base}/${encodeURIComponent(runId)}/history`;
}

/** Null when the entity has no such field. */
export async function traceField(
  db: Queryable,
  policyOf: PolicyResolver,
  ref: EntityRef,
  field: string,
  opts: TraceOptions,
): Promise<FieldTrace | null> {
  const maxDepth = opts.maxDepth ?? 10;
  const maxNodes = opts.maxNodes ?? 1000;
  if (!Number.isInteger(maxDepth) || maxDepth < 0 || maxDepth > 100)
    throw new RangeError(`traceField: maxDepth must be an integer 0..100, got ${maxDepth}`);
  if (!Number.isInteger(maxNodes) || maxNodes < 1)
    throw new RangeError(`traceField: maxNodes must be a positive integer, got ${maxNodes}`);
  const state = await getEntityState(db, policyOf, ref);
  const fieldState = Object.hasOwn(state.fields, field) ? state.fields[field] : undefined;
  if (!fieldState) return null;

  const root = await loadDerivationTree(db, fieldState.winner.observationId, maxDepth, maxNodes, opts);
  if (!root)
    throw new Error(
      `${formatEntityRef(ref)}.${field}: winning observation ${fieldState.winner.observationId} is not in the log`,
    );
  return {
    ...root,
    field,
    ...(fieldState.value === undefined ? {} : { value: fieldState.value }),
    policy: fieldState.policy,
    corrected: fieldState.corrected,
    stateVersion: state.version,
    contested: fieldState.contested,
    ...(fieldState.contributors === undefined ? {} : { contributors: fieldState.contributors }),
  };
}

/** The observation and, recursively, what it was derived from; undefined if it is not stored. */
export async function loadDerivationTree(
  db: Queryable,
  observationId: string,
  maxDepth: number,
  maxNodes: number,
  ui: { uiUrl: string; namespace: string },
): Promise<TraceNode | undefined> {
  // Breadth-first: the node limit keeps the nearest ancestors. `path` (root … node) makes each
  // tree position unique and stops cycles; a diamond appears once per path that reaches it.
  const { rows } = await db.query<
    Record<string, unknown> & { node_id: string; depth: number; path: string[]; found: boolean }
  >(
    `with recursive chain (id, depth, path) as (
         select $1::uuid, 0, array[$1::uuid]
       union all
         select d.ref, c.depth + 1, c.path || d.ref
           from chain c
           join cairn.observations p on p.id = c.id
           cross join lateral unnest(p.derived_from) as d(ref)
          where c.depth < $2 and d.ref <> all (c.path)
     )
     select c.id::text as node_id, c.depth, c.path::text[] as path, o.id is not null as found, ${observationColumns('o')}
       from (select * from chain limit $3) c
       left join cairn.observations o on o.id = c.id`,
    [observationId, maxDepth, maxNodes],
  );
  const byPath = new Map<
    string,
    { found: boolean; observation?: StoredObservation; depth: number; path: string[] }
  >();
  for (const row of rows) {
    const entry = {
      found: row.found,
      depth: row.depth,
      path: row.path,
      ...(row.found ? { observation: parseObservationRow(row) } : {}),
    };
    byPath.set(row.path.join('/'), entry);
  }
  const build = (pathKey: string): TraceNode | undefined => {
    const entry = byPath.get(pathKey);
    if (!entry?.observation) return undefined;
    const o = entry.observation;
    const node: TraceNode = {
      observationId: o.id,
      entity: formatEntityRef(o),
      entityVersion: o.entityVersion,
      type: o.type,
      schemaVersion: o.schemaVersion,
      kind: o.kind,
      fields: o.fields,
      targetId: o.targetId,
      provenance: o.provenance,
      observedAt: o.observedAt,
      recordedAt: o.recordedAt,
      temporalUrl: temporalRunUrl(ui.uiUrl, ui.namespace, o.provenance.workflowId, o.provenance.runId),
      depth: entry.depth,
      derivedFrom: [],
      missing: [],
      cycles: [],
      truncated: [],
    };
    for (const id of o.provenance.derivedFrom) {
      const childKey = `${pathKey}/${id}`;
      const child = byPath.get(childKey);
      if (child?.found) node.derivedFrom.push(build(childKey) as TraceNode);
      else if (child) node.missing.push(id);
      else if (entry.path.includes(id)) node.cycles.push(id);
      else node.truncated.push(id);
    }
    return node;
  };
  return build(observationId.toLowerCase());
}
