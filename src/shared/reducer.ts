/**
 * The deterministic reducer (design invariant 5): entity state as of version v is a pure
 * function of the entity's observations 1..v, folded in entity-version order under per-field
 * policies. Sandbox-safe (no Node built-ins, no pg) so workflows can reduce too.
 *
 * Purity: nothing here mutates its inputs. New states share unchanged FieldStates (and the JSON
 * values of observations) with their inputs; treat every state as read-only.
 *
 * Semantics, per field named in an observation's `fields` (properties whose value is
 * `undefined` are skipped, as JSON would drop them). "Equal" always means canonical-JSON equal,
 * and equal values never produce a contested entry.
 * - assertion / inference / decision: merged under the policy the observation's own type and
 *   schema version declare for the field (so a schema version may change a field's policy):
 *   - last-writer-wins, reject-on-conflict: the new value replaces; the old one is contested
 *     (reject-on-conflict is enforced by the store's expected-version check, so every write that
 *     reached the log was accepted). An equal value credits the newer writer as winner.
 *   - first-writer-wins: the current value stays; a different value is contested.
 *   - max / min: numbers compare numerically, strings by UTF-16 code units; the loser is
 *     contested. Values that cannot be ordered against each other (mixed types, booleans,
 *     objects…) are a conflict: the current value stays, the new one is contested. An equal
 *     value keeps the earlier winner.
 *   - set-union: the value (a non-array counts as a one-element array) is united into the set;
 *     `value` is the distinct elements sorted by canonical JSON, `contributors` maps each
 *     element's canonical JSON to the observations that wrote it, `winner` is the latest writer.
 *     Nothing is contested. If the field held a non-set value, that value seeds the set,
 *     credited to its winner; leaving set-union drops `contributors`.
 *   A field whose value was cleared by a retraction is written as if it were new.
 * - correction: sets the value whatever the policy (the previous value is contested with reason
 *   `corrected`). It keeps the field's existing policy, because a correction may be written with
 *   a type that does not declare the field; for a set-union field it replaces the whole set and
 *   makes the correction the sole contributor. A correction is not sticky: later writes merge
 *   with the corrected value under the field's policy as usual. Invariant:
 *   `corrected === (winner.kind === 'correction')`.
 * - retraction: withdraws `targetId` (its `fields` are ignored). `retracted[targetId]` records the
 *   retraction; contested entries written by the target are dropped. A scalar field whose winner
 *   is the target is cleared (value absent, winner = the retraction, the withdrawn value contested
 *   with reason `retracted`): the losing values needed for an exact fallback are not all kept
 *   (contested is bounded), so no fallback is guessed; an agent re-asserts if it wants one. A
 *   set-union field loses the target as a contributor, elements left without contributors are
 *   dropped (contested together, reason `retracted`), and if the target was the winner the
 *   retraction becomes it. Retracting an already retracted observation, or a retraction without
 *   a target, changes nothing but the version; retractions are final (retracting a retraction
 *   does not bring values back). The store checks that a target exists in the same entity; the
 *   reducer cannot (it sees one entity's log) and records any id.
 * - `contested` keeps the newest MAX_CONTESTED entries per field.
 *
 * Broken input (a version gap, a duplicate version or id, an unknown kind, a policy resolver
 * that returns a non-policy) throws: folding past it would produce a state nobody can reproduce.
 */
import { canonicalJson, jsonEquals } from './canonicalJson';
import { MAX_CONTESTED, type ContestedValue, type EntityState, type FieldState, type ObservationRef, type PolicyResolver } from './entityState';
import { FIELD_POLICIES, formatEntityRef, type EntityRef, type FieldPolicy, type Json, type ReducibleObservation } from './observation';
import type { ObservationTypeRegistry } from './observationTypes';

export interface ReduceOptions {
  /** Fold only up to this entity version (state "as of" v). Default: all given observations. */
  upToVersion?: number;
}

export function emptyEntityState(ref: EntityRef): EntityState {
  return { entityType: ref.entityType, entityId: ref.entityId, version: 0, fields: {}, retracted: {} };
}

export function policyResolverFor(registry: ObservationTypeRegistry): PolicyResolver {
  return (type, schemaVersion, field) => registry.policyOf(type, schemaVersion, field);
}

/** Fold an entity's observations (any order; versions must be exactly 1..n) from the empty state. */
export function reduceEntity(ref: EntityRef, observations: readonly ReducibleObservation[], policyOf: PolicyResolver, opts: ReduceOptions = {}): EntityState {
  return applyObservations(emptyEntityState(ref), observations, policyOf, opts);
}

/**
 * Continue a fold, e.g. from a snapshot: `observations` (any order) must carry exactly the
 * versions state.version+1 .. n, without gaps or duplicates.
 */
export function applyObservations(state: EntityState, observations: readonly ReducibleObservation[], policyOf: PolicyResolver, opts: ReduceOptions = {}): EntityState {
  const sorted = [...observations].sort((a, b) => a.entityVersion - b.entityVersion);
  const ids = new Set<string>();
  sorted.forEach((obs, i) => {
    const expected = state.version + 1 + i;
    if (obs.entityVersion !== expected) {
      const what = sorted[i - 1]?.entityVersion === obs.entityVersion ? 'duplicate version' : 'gap';
      throw new Error(`${label(state)}: ${what} in observations: expected entity version ${expected}, found ${obs.entityVersion} (observation ${obs.id})`);
    }
    if (ids.has(obs.id)) throw new Error(`${label(state)}: observation id ${obs.id} appears twice`);
    ids.add(obs.id);
  });
  const last = state.version + sorted.length;
  const upTo = opts.upToVersion ?? last;
  if (!Number.isInteger(upTo) || upTo < state.version || upTo > last) {
    throw new Error(`${label(state)}: cannot reduce to version ${upTo}: have versions ${state.version}..${last}`);
  }
  let next = state;
  for (const obs of sorted.slice(0, upTo - state.version)) next = applyObservation(next, obs, policyOf);
  return next;
}

/** Apply one observation; it must carry the next entity version. Returns a new state. */
export function applyObservation(state: EntityState, obs: ReducibleObservation, policyOf: PolicyResolver): EntityState {
  if (obs.entityVersion !== state.version + 1) {
    throw new Error(`${label(state)}: observation ${obs.id} has entity version ${obs.entityVersion}, expected ${state.version + 1} (the fold must be gapless)`);
  }
  const fields: unknown = obs.fields;
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
    throw new Error(`${label(state)}: observation ${obs.id}: fields must be a JSON object`);
  }
  const next: EntityState = { ...state, version: obs.entityVersion };
  // Cannot happen with a well-behaved store (a retraction names an earlier observation), but
  // a withdrawn observation must never take effect.
  if (Object.hasOwn(state.retracted, obs.id)) return next;
  const kind = obs.kind;
  switch (kind) {
    case 'assertion':
    case 'inference':
    case 'decision':
    case 'correction':
      return { ...next, fields: writeFields(state.fields, obs, policyOf) };
    case 'retraction':
      return retract(next, obs);
    default: {
      const unknownKind: never = kind;
      throw new Error(`${label(state)}: observation ${obs.id} has unknown kind ${String(unknownKind)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Writes

function writeFields(current: Readonly<Record<string, FieldState>>, obs: ReducibleObservation, policyOf: PolicyResolver): Record<string, FieldState> {
  const out = { ...current };
  const ref = refOf(obs);
  // Sorted so the key order of `fields` in the state does not depend on the key order jsonb
  // happened to return the observation's fields in.
  for (const name of Object.keys(obs.fields).sort()) {
    const value = obs.fields[name];
    if (value === undefined) continue;
    const cur = getOwn(current, name);
    const declared = checkedPolicy(policyOf(obs.type, obs.schemaVersion, name), obs, name);
    const field = obs.kind === 'correction' ? correctField(cur, value, cur?.policy ?? declared, ref) : mergeField(cur, value, declared, ref);
    setOwn(out, name, field);
  }
  return out;
}

function mergeField(cur: FieldState | undefined, value: Json, policy: FieldPolicy, ref: ObservationRef): FieldState {
  if (policy === 'set-union') return unionField(cur, value, ref);
  const contested = cur?.contested ?? [];
  if (cur?.value === undefined) return scalarField(value, policy, ref, contested);
  const old = cur.value;
  const keepOld = (): FieldState => ({ value: old, policy, winner: cur.winner, corrected: cur.corrected, contested });
  if (jsonEquals(old, value)) {
    // Nothing is contested. LWW/reject credit the latest writer (it confirms the value last);
    // FWW/max/min keep the first writer (it set the value that is still the answer).
    return policy === 'last-writer-wins' || policy === 'reject-on-conflict' ? scalarField(value, policy, ref, contested) : keepOld();
  }
  switch (policy) {
    case 'last-writer-wins':
    case 'reject-on-conflict':
      return scalarField(value, policy, ref, pushContested(contested, { value: old, source: cur.winner, reason: policy }));
    case 'first-writer-wins':
      return { ...keepOld(), contested: pushContested(contested, { value, source: ref, reason: policy }) };
    case 'max':
    case 'min': {
      const order = compareOrdered(value, old);
      const newWins = order !== undefined && (policy === 'max' ? order > 0 : order < 0);
      if (newWins) return scalarField(value, policy, ref, pushContested(contested, { value: old, source: cur.winner, reason: policy }));
      return { ...keepOld(), contested: pushContested(contested, { value, source: ref, reason: policy }) };
    }
  }
}

function scalarField(value: Json, policy: FieldPolicy, winner: ObservationRef, contested: ContestedValue[]): FieldState {
  return { value, policy, winner, corrected: winner.kind === 'correction', contested };
}

/** Order of two values for max/min, or undefined when they cannot be ordered. */
function compareOrdered(a: Json, b: Json): number | undefined {
  if ((typeof a === 'number' && typeof b === 'number') || (typeof a === 'string' && typeof b === 'string')) {
    return a < b ? -1 : a > b ? 1 : 0;
  }
  return undefined;
}

/** A set under construction: canonical JSON → element, and canonical JSON → contributors. */
interface WorkingSet {
  elements: Map<string, Json>;
  contributors: Record<string, ObservationRef[]>;
}

function unionField(cur: FieldState | undefined, value: Json, ref: ObservationRef): FieldState {
  const set = seedSet(cur);
  addElements(set, value, ref);
  return { ...finishSet(set), policy: 'set-union', winner: ref, corrected: ref.kind === 'correction', contested: cur?.contested ?? [] };
}

function seedSet(cur: FieldState | undefined): WorkingSet {
  const set: WorkingSet = { elements: new Map(), contributors: {} };
  if (cur?.value === undefined) return set;
  if (cur.policy !== 'set-union' || cur.contributors === undefined) {
    // Entering set-union from another policy: the current value is the set so far.
    addElements(set, cur.value, cur.winner);
    return set;
  }
  for (const el of asArray(cur.value)) set.elements.set(canonicalJson(el), el);
  // Shallow copy: the arrays are replaced, never pushed to, when a contributor is added.
  set.contributors = { ...cur.contributors };
  return set;
}

function addElements(set: WorkingSet, value: Json, ref: ObservationRef): void {
  for (const el of asArray(value)) {
    const key = canonicalJson(el);
    if (!set.elements.has(key)) set.elements.set(key, el);
    const refs = getOwn(set.contributors, key) ?? [];
    if (!refs.some((r) => r.observationId === ref.observationId)) setOwn(set.contributors, key, [...refs, ref]);
  }
}

function finishSet(set: WorkingSet): { value: Json[]; contributors: Record<string, ObservationRef[]> } {
  const keys = [...set.elements.keys()].sort();
  const contributors: Record<string, ObservationRef[]> = {};
  // Rebuilt in sorted order so the state's key order is a function of its content.
  for (const key of keys) setOwn(contributors, key, getOwn(set.contributors, key) ?? []);
  return { value: keys.map((k) => set.elements.get(k) as Json), contributors };
}

function asArray(value: Json): Json[] {
  return Array.isArray(value) ? value : [value];
}

function correctField(cur: FieldState | undefined, value: Json, policy: FieldPolicy, ref: ObservationRef): FieldState {
  let field: FieldState;
  if (policy === 'set-union') {
    const set: WorkingSet = { elements: new Map(), contributors: {} };
    addElements(set, value, ref);
    field = { ...finishSet(set), policy, winner: ref, corrected: true, contested: [] };
  } else {
    field = scalarField(value, policy, ref, []);
  }
  let contested = cur?.contested ?? [];
  if (cur?.value !== undefined && !jsonEquals(cur.value, field.value as Json)) {
    contested = pushContested(contested, { value: cur.value, source: cur.winner, reason: 'corrected' });
  }
  return { ...field, contested };
}

// ---------------------------------------------------------------------------------------------
// Retractions

function retract(next: EntityState, obs: ReducibleObservation): EntityState {
  const targetId = obs.targetId;
  if (targetId === null || Object.hasOwn(next.retracted, targetId)) return next;
  const ref = refOf(obs);
  const fields = { ...next.fields };
  for (const name of Object.keys(fields)) {
    const field = fields[name] as FieldState;
    const after = retractFromField(field, targetId, ref);
    if (after !== field) setOwn(fields, name, after);
  }
  const retracted = { ...next.retracted };
  setOwn(retracted, targetId, obs.id);
  return { ...next, fields, retracted };
}

/** The field without the target's effects; the same object when the target had none. */
function retractFromField(field: FieldState, targetId: string, ref: ObservationRef): FieldState {
  const kept = field.contested.filter((c) => c.source.observationId !== targetId);
  let contested = kept.length === field.contested.length ? field.contested : kept;
  const winnerRetracted = field.winner.observationId === targetId;

  if (field.policy === 'set-union' && field.contributors !== undefined) {
    const contributors: Record<string, ObservationRef[]> = {};
    const dropped: Json[] = [];
    let targetRef: ObservationRef | undefined;
    let changed = false;
    const elements = asArray(field.value ?? []);
    for (const el of elements) {
      const key = canonicalJson(el);
      const refs = getOwn(field.contributors, key) ?? [];
      const left = refs.filter((r) => r.observationId !== targetId);
      if (left.length !== refs.length) {
        changed = true;
        targetRef = refs.find((r) => r.observationId === targetId);
      }
      if (left.length > 0) setOwn(contributors, key, left);
      else dropped.push(el);
    }
    if (!changed && !winnerRetracted && contested === field.contested) return field;
    if (dropped.length > 0 && targetRef !== undefined) {
      contested = pushContested(contested, { value: dropped, source: targetRef, reason: 'retracted' });
    }
    const value = elements.filter((el) => Object.hasOwn(contributors, canonicalJson(el)));
    const winner = winnerRetracted ? ref : field.winner;
    return { value, policy: field.policy, winner, contributors, corrected: winner.kind === 'correction', contested };
  }

  if (winnerRetracted) {
    // Cleared: `value` is left out entirely (see FieldState.value).
    if (field.value !== undefined) contested = pushContested(contested, { value: field.value, source: field.winner, reason: 'retracted' });
    const cleared: FieldState = { policy: field.policy, winner: ref, corrected: false, contested };
    return cleared;
  }
  return contested === field.contested ? field : { ...field, contested };
}

// ---------------------------------------------------------------------------------------------
// Helpers

function refOf(obs: ReducibleObservation): ObservationRef {
  return { observationId: obs.id, entityVersion: obs.entityVersion, agentId: obs.provenance.agentId, role: obs.provenance.role, kind: obs.kind };
}

function pushContested(list: readonly ContestedValue[], entry: ContestedValue): ContestedValue[] {
  const out = [...list, entry];
  return out.length > MAX_CONTESTED ? out.slice(out.length - MAX_CONTESTED) : out;
}

function checkedPolicy(policy: FieldPolicy, obs: ReducibleObservation, field: string): FieldPolicy {
  if (!FIELD_POLICIES.includes(policy)) {
    throw new Error(`policy resolver returned ${String(policy)} for ${obs.type}@${obs.schemaVersion}.${field}; expected one of ${FIELD_POLICIES.join(', ')}`);
  }
  return policy;
}

/**
 * Field names come from observation data: read and write them as own properties only, so a
 * field called `constructor` or `__proto__` is just a field, never the prototype's.
 */
function getOwn<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

function setOwn<T>(record: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
}

function label(state: EntityState): string {
  return formatEntityRef(state);
}
