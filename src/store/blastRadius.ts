/**
 * Blast radius: everything downstream of an observation, found with one recursive query.
 *
 * An observation X is downstream of P (an edge P → X) when
 *  - derived: X names P in derived_from; or
 *  - read:    X was written by a step attempt whose read set has an entry for P's entity at a
 *             version >= P's entity_version whose fields are unknown (NULL) or include a field
 *             P wrote — the attempt saw state P had produced. Once P is retracted, reads at or
 *             above the retraction's version saw the state without P and do not count (applied
 *             to the roots of the walk, whose retraction is known up front).
 * The closure follows edges breadth-first up to `maxDepth` hops, in one recursive query
 * (cairn.downstream, migration 003). Each hop keeps one row per observation (DISTINCT ON), so a
 * node appears at most once per depth: a cycle or a diamond costs at most maxDepth + 1 rows per
 * observation, never exponentially many paths.
 *
 * Beyond the observations: the tasks, agents and runs involved, and the entity fields whose
 * current value rests on the closure (the field's winner, or a set element's contributor, is in it).
 */
import { z } from 'zod';
import type { PolicyResolver } from '../shared/entityState';
import { OBSERVATION_KINDS, type ObservationKind } from '../shared/observation';
import type { Queryable } from './pool';
import { getEntityState, storedPolicyResolver } from './observations/read';

export type BlastEdge = 'root' | 'derived' | 'read';

export interface BlastNode {
  observationId: string;
  /** Hops from the nearest root (0 for a root). */
  depth: number;
  /** One observation this one was reached from (null for a root), and how. */
  parentId: string | null;
  via: BlastEdge;
  /** The root whose walk reached it first. */
  rootId: string;
  entityType: string;
  entityId: string;
  entityVersion: number;
  type: string;
  kind: ObservationKind;
  taskKey: string;
  workflowId: string;
  runId: string;
  activityId: string;
  attempt: number;
  agentId: string;
  role: string;
}

export interface ClosureSeed {
  observationId: string;
  /** Version of the root's retraction on its entity: reads at or above it do not count. */
  retractedAtVersion: number | null;
}

export interface ClosureOptions {
  /** Hops to follow (default 10, at most 100). */
  maxDepth?: number;
  /** Nodes to return at most (default 10000); `truncated` says when the walk had more. */
  limit?: number;
}

export interface Closure {
  nodes: BlastNode[];
  truncated: boolean;
}

export const BLAST_LIMITS = { depth: 10, maxDepth: 100, limit: 10_000 } as const;

// The walk itself is cairn.downstream (migration 003): one recursive query, documented there.
const CLOSURE_SQL = {
  text: `select observation_id::text as observation_id, depth, parent_id::text as parent_id, via, root_id::text as root_id,
                entity_type, entity_id, entity_version, type, kind, task_key, workflow_id, run_id, activity_id,
                attempt, agent_id, role, walked::int as walked
           from cairn.downstream($1::uuid[], $2::int[], $3::int, $4::int)`,
};

const nodeRow = z.object({
  observation_id: z.string(),
  depth: z.number().int(),
  parent_id: z.string().nullable(),
  via: z.enum(['root', 'derived', 'read']),
  root_id: z.string(),
  entity_type: z.string(),
  entity_id: z.string(),
  entity_version: z.number().int(),
  type: z.string(),
  kind: z.enum(OBSERVATION_KINDS),
  task_key: z.string(),
  workflow_id: z.string(),
  run_id: z.string(),
  activity_id: z.string(),
  attempt: z.number().int(),
  agent_id: z.string(),
  role: z.string(),
  walked: z.number().int(),
});

/** The downstream closure of several roots at once (the taint of all active quarantines). */
export async function closureOf(
  db: Queryable,
  seeds: readonly ClosureSeed[],
  opts: ClosureOptions = {},
): Promise<Closure> {
  const { maxDepth, limit } = checkLimits(opts);
  if (seeds.length === 0) return { nodes: [], truncated: false };
  const { rows } = await db.query({
    ...CLOSURE_SQL,
    values: [seeds.map((s) => s.observationId), seeds.map((s) => s.retractedAtVersion), maxDepth, limit + 1],
  });
  let truncated = false;
  const nodes = rows.map((row) => {
    const r = nodeRow.parse(row);
    if (r.walked > limit) truncated = true;
    return {
      observationId: r.observation_id,
      depth: r.depth,
      parentId: r.parent_id,
      via: r.via,
      rootId: r.root_id,
      entityType: r.entity_type,
      entityId: r.entity_id,
      entityVersion: r.entity_version,
      type: r.type,
      kind: r.kind,
      taskKey: r.task_key,
      workflowId: r.workflow_id,
      runId: r.run_id,
      activityId: r.activity_id,
      attempt: r.attempt,
      agentId: r.agent_id,
      role: r.role,
    };
  });
  return { nodes: nodes.slice(0, limit), truncated };
}

/** The version of the first retraction of `observationId`, if it was retracted. */
export async function retractionVersionOf(db: Queryable, observationId: string): Promise<number | null> {
  // Scans the target's entity above its version (the unique version index): retractions are
  // rare, and no index on target_id is worth its cost to every append.
  const { rows } = await db.query<{ version: number | null }>(
    `select min(r.entity_version) as version
       from cairn.observations t
       join cairn.observations r
         on r.entity_type = t.entity_type and r.entity_id = t.entity_id and r.entity_version > t.entity_version
      where t.id = $1::uuid and r.kind = 'retraction' and r.target_id = t.id`,
    [observationId],
  );
  return rows[0]?.version ?? null;
}

export interface DependentField {
  entityType: string;
  entityId: string;
  field: string;
  /** The closure observation the current value rests on (winner, or a set element's contributor). */
  observationId: string;
  /** The entity version the field was read at (the current one). */
  stateVersion: number;
}

export interface BlastRadius extends Closure {
  rootId: string;
  /** Observations in the closure, the root included. */
  count: number;
  maxDepth: number;
  taskKeys: string[];
  agents: { agentId: string; role: string }[];
  runs: { workflowId: string; runId: string }[];
  /** Current field values that rest on the closure (empty when `includeFields` is false). */
  fields: DependentField[];
}

export interface BlastRadiusOptions extends ClosureOptions {
  /** Also find the current fields resting on the closure (one entity read per entity; default true). */
  includeFields?: boolean;
  /** Policies for those reads; default: the ones stored in the database. */
  policyOf?: PolicyResolver;
}

/** Everything downstream of `observationId` (see the module comment for the rule). */
export async function blastRadius(
  db: Queryable,
  observationId: string,
  opts: BlastRadiusOptions = {},
): Promise<BlastRadius> {
  const { maxDepth } = checkLimits(opts);
  const retractedAtVersion = await retractionVersionOf(db, observationId);
  const closure = await closureOf(db, [{ observationId, retractedAtVersion }], opts);
  if (closure.nodes.length === 0) throw new Error(`blastRadius: no observation ${observationId} in the log`);
  const fields =
    opts.includeFields === false
      ? []
      : await dependentFields(db, closure.nodes, opts.policyOf ?? (await storedPolicyResolver(db)));
  return {
    rootId: observationId,
    ...closure,
    ...summarize(closure.nodes),
    count: closure.nodes.length,
    maxDepth,
    fields,
  };
}

export function summarize(nodes: readonly BlastNode[]): Pick<BlastRadius, 'taskKeys' | 'agents' | 'runs'> {
  const tasks = new Set<string>();
  const agents = new Map<string, { agentId: string; role: string }>();
  const runs = new Map<string, { workflowId: string; runId: string }>();
  for (const n of nodes) {
    if (n.taskKey !== '') tasks.add(n.taskKey);
    agents.set(`${n.agentId}\u0000${n.role}`, { agentId: n.agentId, role: n.role });
    if (n.workflowId !== '')
      runs.set(`${n.workflowId}\u0000${n.runId}`, { workflowId: n.workflowId, runId: n.runId });
  }
  return { taskKeys: [...tasks].sort(), agents: [...agents.values()], runs: [...runs.values()] };
}

/** Current fields of the closure's entities whose value rests on a closure observation. */
export async function dependentFields(
  db: Queryable,
  nodes: readonly BlastNode[],
  policyOf: PolicyResolver,
): Promise<DependentField[]> {
  const ids = new Set(nodes.map((n) => n.observationId));
  const entities = new Map<string, { entityType: string; entityId: string }>();
  for (const n of nodes)
    entities.set(`${n.entityType}/${n.entityId}`, { entityType: n.entityType, entityId: n.entityId });
  const out: DependentField[] = [];
  for (const ref of entities.values()) {
    const state = await getEntityState(db, policyOf, ref, { writeSnapshots: false });
    for (const name of Object.keys(state.fields).sort()) {
      const f = state.fields[name]!;
      const rests =
        ids.has(f.winner.observationId) && f.value !== undefined
          ? f.winner.observationId
          : Object.values(f.contributors ?? {})
              .map((c) => c.first)
              .find((c) => ids.has(c.observationId))?.observationId;
      if (rests !== undefined)
        out.push({ ...ref, field: name, observationId: rests, stateVersion: state.version });
    }
  }
  return out;
}

function checkLimits(opts: ClosureOptions): { maxDepth: number; limit: number } {
  const maxDepth = opts.maxDepth ?? BLAST_LIMITS.depth;
  const limit = opts.limit ?? BLAST_LIMITS.limit;
  if (!Number.isInteger(maxDepth) || maxDepth < 0 || maxDepth > BLAST_LIMITS.maxDepth)
    throw new RangeError(
      `blast radius: maxDepth must be an integer 0..${BLAST_LIMITS.maxDepth}, got ${maxDepth}`,
    );
  if (!Number.isInteger(limit) || limit < 1)
    throw new RangeError(`blast radius: limit must be a positive integer, got ${limit}`);
  return { maxDepth, limit };
}
