/**
 * Tool results as compact JSON a model can act on: the values and who stands behind them,
 * without the bookkeeping a person debugging would want (that is what `cairn trace` is for).
 */
import type { EntityState } from '../shared/entityState';
import type { BlastRadius } from '../store/blastRadius';
import type { ClaimResult } from '../store/claims';
import type { FoundEpisode } from '../store/episodeSearch';
import type { FieldTrace, TraceNode } from '../store/observations/trace';
import type { ReadNotes } from './session';

export function compactState(state: EntityState, notes: ReadNotes) {
  const tainted = new Map(notes.tainted.map((t) => [t.field, t]));
  const fields: Record<string, unknown> = {};
  for (const name of Object.keys(state.fields).sort()) {
    const f = state.fields[name]!;
    const t = tainted.get(name);
    fields[name] = {
      ...(f.value === undefined ? { cleared: true } : { value: f.value }),
      policy: f.policy,
      by: {
        agentId: f.winner.agentId,
        role: f.winner.role,
        kind: f.winner.kind,
        version: f.winner.entityVersion,
        observationId: f.winner.observationId,
      },
      ...(f.corrected ? { corrected: true } : {}),
      ...(f.contested.length > 0
        ? { contested: f.contested.map((c) => ({ value: c.value, by: c.source.agentId, reason: c.reason })) }
        : {}),
      ...(t ? { tainted: { observationId: t.observationId, quarantineId: t.quarantineId } } : {}),
      ...(notes.writtenStale.includes(name) ? { writtenOnStaleReads: true } : {}),
    };
  }
  return { entity: `${state.entityType}/${state.entityId}`, version: state.version, fields };
}

function node(n: TraceNode): unknown {
  const p = n.provenance;
  return {
    observationId: n.observationId,
    entity: n.entity,
    version: n.entityVersion,
    type: n.type,
    kind: n.kind,
    fields: n.fields,
    by: { agentId: p.agentId, role: p.role, task: p.taskKey, ...(p.source ? { source: p.source } : {}) },
    recordedAt: n.recordedAt,
    ...(n.derivedFrom.length > 0 ? { derivedFrom: n.derivedFrom.map(node) } : {}),
    ...(n.missing.length > 0 ? { missing: n.missing } : {}),
  };
}

export function compactTrace(t: FieldTrace) {
  return {
    field: t.field,
    ...(t.value === undefined ? { cleared: true } : { value: t.value }),
    policy: t.policy,
    stateVersion: t.stateVersion,
    winner: node(t),
    contested: t.contested.map((c) => ({ value: c.value, by: c.source.agentId, reason: c.reason })),
  };
}

export function compactBlast(b: BlastRadius) {
  return {
    root: b.rootId,
    count: b.count,
    truncated: b.truncated,
    observations: b.nodes.map((n) => ({
      observationId: n.observationId,
      entity: `${n.entityType}/${n.entityId}`,
      version: n.entityVersion,
      via: n.via,
      depth: n.depth,
      agentId: n.agentId,
      role: n.role,
    })),
    fields: b.fields.map((f) => ({
      entity: `${f.entityType}/${f.entityId}`,
      field: f.field,
      restsOn: f.observationId,
    })),
    agents: b.agents,
    tasks: b.taskKeys,
  };
}

export function compactEpisode(e: FoundEpisode) {
  return {
    id: e.id,
    kind: e.kind,
    taskKey: e.taskKey,
    goal: e.goal,
    outcome: e.outcome,
    endedAt: e.endedAt,
    steps: e.stepCount,
    tags: e.tags,
    observations: e.observationIds.length,
  };
}

export function compactClaim(c: ClaimResult) {
  return c.granted
    ? {
        granted: true,
        resource: c.resource,
        token: c.token,
        expiresAt: c.expiresAt,
        expiresInMs: c.expiresInMs,
        outcome: c.outcome,
      }
    : {
        granted: false,
        resource: c.resource,
        heldBy: c.holder,
        token: c.token,
        expiresAt: c.expiresAt,
        expiresInMs: c.expiresInMs,
        // Held under a scope you may not read: who holds it and until when are not said.
        ...(c.hidden ? { hidden: true } : {}),
      };
}
