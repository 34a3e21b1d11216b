/**
 * The deterministic reducer (design invariant 5): entity state as of version v is a pure
 * function of the entity's observations 1..v. Sandbox-safe (no Node built-ins, no pg) so
 * workflows can reduce too. Nothing here mutates its inputs; states share unchanged parts.
 *
 * A fold has two passes (the laws are written down in docs/observations.md):
 * 1. Withdrawals. From the newest observation down, a retraction that is itself live withdraws
 *    its target (an earlier observation of the entity). So retracting a retraction brings its
 *    target back, and a withdrawn observation counts as never written.
 * 2. Fields. The live observations are folded in version order. Per field written (a property
 *    whose value is `undefined` takes no part; "equal" means canonical-JSON equal, and an equal
 *    value is never contested):
 *    - `null` clears the field under every policy (value null, the null's writer is the winner);
 *      the next value is written as if the field were new. A set never holds null.
 *    - a correction sets the value whatever the policy (the field keeps its policy) and pins
 *      it: later ordinary writes are contested (`pinned by correction`) until a later
 *      correction, or until the correction is retracted (then the field is refolded without it).
 *    - otherwise the policy the observation's type@version declares: last-writer-wins and
 *      reject-on-conflict replace (the store enforced reject-on-conflict's expectedVersion);
 *      first-writer-wins keeps; max/min compare numbers, or strings by UTF-16 code units, and
 *      contest values that cannot be ordered; set-union unites (a non-array is one element) and
 *      keeps per element its first contributor and a count.
 *
 * Because a withdrawn observation counts as never written, retracting one needs the log since
 * before it: a bounded state cannot know the value that was there before. A fold that is given
 * a state at version k and a retraction reaching an observation at or below k throws
 * RefoldRequiredError; the store's read path (src/store/observations/read.ts) starts such a
 * fold from an earlier snapshot instead.
 *
 * Broken input (a version gap, a duplicate version or id, an unknown kind, a policy the
 * resolver does not know) throws: folding past it would produce a state nobody can reproduce.
 */
import { canonicalJson, jsonEquals } from './canonicalJson';
import {
  MAX_CONTESTED,
  type ContestedValue,
  type ElementSource,
  type EntityState,
  type FieldState,
  type ObservationRef,
  type PolicyResolver,
} from './entityState';
import {
  FIELD_POLICIES,
  formatEntityRef,
  type EntityRef,
  type FieldPolicy,
  type Json,
  type ReducibleObservation,
} from './observation';
import type { ObservationTypeRegistry } from './observationTypes';

/** What pass 1 needs of a retraction. `targetVersion`: the target's entity version, null if it is not in the log. */
export interface RetractionLink {
  id: string;
  entityVersion: number;
  targetId: string | null;
  targetVersion?: number | null | undefined;
}

/** The outcome of pass 1 over a window of versions (after, upTo]. */
export interface Withdrawals {
  /** Observations of the window that count as never written (withdrawn, or excluded by the caller). */
  dead: ReadonlySet<string>;
  /** Live retraction id → the targets it withdraws (recorded in `state.retracted` as the fold passes it). */
  byRetraction: ReadonlyMap<string, readonly string[]>;
  /**
   * Set when a live retraction of the window reaches an observation at or below `after`: the
   * lowest version reached (1 when a target's version is unknown). The fold must start below it.
   */
  reachesBelow: number | undefined;
}

export interface ReduceOptions {
  /** Fold only up to this entity version (state "as of" v). Default: all given observations. */
  upToVersion?: number;
  /** Observations to treat as never written (e.g. tainted ones); their retractions withdraw nothing. */
  without?: ReadonlySet<string>;
  /** Pass 1, computed by the caller over the whole window when it folds it page by page. */
  withdrawals?: Withdrawals;
}

/** The fold cannot continue from the given state: a retraction reaches below it. */
export class RefoldRequiredError extends Error {
  override readonly name = 'RefoldRequiredError';
  constructor(
    readonly entity: string,
    readonly belowVersion: number,
  ) {
    super(
      `${entity}: a retraction reaches version ${belowVersion}, at or below the state folded so far; fold from before it`,
    );
  }
}

/** No policy is known for a field of a stored observation: reading it would be a guess. */
export class UnknownFieldPolicyError extends Error {
  override readonly name = 'UnknownFieldPolicyError';
  constructor(
    readonly entity: string,
    readonly observationId: string,
    readonly typeKey: string,
    readonly field: string,
  ) {
    super(
      `${entity}: observation ${observationId} has type ${typeKey}, whose policy for field "${field}" is not known to this reader (register the type, or read with the policies stored in cairn.observation_types)`,
    );
  }
}

export function emptyEntityState(ref: EntityRef): EntityState {
  return { entityType: ref.entityType, entityId: ref.entityId, version: 0, fields: {}, retracted: {} };
}

export function policyResolverFor(registry: ObservationTypeRegistry): PolicyResolver {
  return (type, schemaVersion, field) => registry.policyOf(type, schemaVersion, field);
}

/** Fold an entity's observations (any order; versions must be exactly 1..n) from the empty state. */
export function reduceEntity(
  ref: EntityRef,
  observations: readonly ReducibleObservation[],
  policyOf: PolicyResolver,
  opts: ReduceOptions = {},
): EntityState {
  return applyObservations(emptyEntityState(ref), observations, policyOf, opts);
}

/**
 * Continue a fold, e.g. from a snapshot: `observations` (any order) must carry exactly the
 * versions state.version+1 .. n. Throws RefoldRequiredError when a live retraction among them
 * reaches an observation the state already folded.
 */
export function applyObservations(
  state: EntityState,
  observations: readonly ReducibleObservation[],
  policyOf: PolicyResolver,
  opts: ReduceOptions = {},
): EntityState {
  const sorted = [...observations].sort((a, b) => a.entityVersion - b.entityVersion);
  const ids = new Map<string, number>();
  sorted.forEach((obs, i) => {
    const expected = state.version + 1 + i;
    if (obs.entityVersion !== expected) {
      const what = sorted[i - 1]?.entityVersion === obs.entityVersion ? 'duplicate version' : 'gap';
      throw new Error(
        `${label(state)}: ${what} in observations: expected entity version ${expected}, found ${obs.entityVersion} (observation ${obs.id})`,
      );
    }
    if (ids.has(obs.id)) throw new Error(`${label(state)}: observation id ${obs.id} appears twice`);
    ids.set(obs.id, obs.entityVersion);
  });
  const last = state.version + sorted.length;
  const upTo = opts.upToVersion ?? last;
  if (!Number.isInteger(upTo) || upTo < state.version || upTo > last) {
    throw new Error(
      `${label(state)}: cannot reduce to version ${upTo}: have versions ${state.version}..${last}`,
    );
  }
  const window = sorted.slice(0, upTo - state.version);
  const withdrawals =
    opts.withdrawals ??
    withdrawalsIn(
      window
        .filter((o) => o.kind === 'retraction')
        .map((o) => ({ ...linkOf(o), targetVersion: o.targetId === null ? null : ids.get(o.targetId) })),
      state.version,
      opts.without,
    );
  if (withdrawals.reachesBelow !== undefined)
    throw new RefoldRequiredError(label(state), withdrawals.reachesBelow);
  let next = state;
  for (const obs of window) next = foldOne(next, obs, policyOf, withdrawals);
  return next;
}

/** Apply one observation (the next version). A retraction of an earlier observation needs applyObservations over the log since before it. */
export function applyObservation(
  state: EntityState,
  obs: ReducibleObservation,
  policyOf: PolicyResolver,
): EntityState {
  if (obs.entityVersion !== state.version + 1) {
    throw new Error(
      `${label(state)}: observation ${obs.id} has entity version ${obs.entityVersion}, expected ${state.version + 1} (the fold must be gapless)`,
    );
  }
  return applyObservations(state, [obs], policyOf);
}

/**
 * Pass 1 over the retractions of the window (after, upTo]: which observations are withdrawn as
 * of the window's end. A target that is not earlier than its retraction, or not in the log
 * (targetVersion null, or unknown in a fold from version 0), is withdrawn by nothing.
 */
export function withdrawalsIn(
  retractions: readonly RetractionLink[],
  after: number,
  without: ReadonlySet<string> = new Set(),
): Withdrawals {
  const dead = new Set(without);
  const withdrawnBy = new Map<string, string>();
  let reachesBelow: number | undefined;
  const newestFirst = [...retractions].sort((a, b) => b.entityVersion - a.entityVersion);
  for (const r of newestFirst) {
    // Every retraction of r is newer than r, so its status is settled by now.
    if (r.entityVersion <= after || dead.has(r.id) || r.targetId === null) continue;
    const tv = r.targetVersion;
    if (tv === null || (tv === undefined && after === 0)) continue;
    if (tv !== undefined && tv >= r.entityVersion) continue;
    if (tv === undefined || tv <= after) {
      reachesBelow = Math.min(reachesBelow ?? Infinity, tv ?? 1);
      continue;
    }
    dead.add(r.targetId);
    // Newest first, so the last write is the oldest live retraction: one deterministic choice.
    withdrawnBy.set(r.targetId, r.id);
  }
  const byRetraction = new Map<string, string[]>();
  for (const [target, r] of withdrawnBy) byRetraction.set(r, [...(byRetraction.get(r) ?? []), target]);
  return { dead, byRetraction, reachesBelow };
}

function linkOf(o: ReducibleObservation): RetractionLink {
  return { id: o.id, entityVersion: o.entityVersion, targetId: o.targetId };
}

function foldOne(
  state: EntityState,
  obs: ReducibleObservation,
  policyOf: PolicyResolver,
  w: Withdrawals,
): EntityState {
  const fields: unknown = obs.fields;
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
    throw new Error(`${label(state)}: observation ${obs.id}: fields must be a JSON object`);
  }
  const next: EntityState = { ...state, version: obs.entityVersion };
  const kind = obs.kind;
  switch (kind) {
    case 'assertion':
    case 'inference':
    case 'decision':
    case 'correction':
      return w.dead.has(obs.id) ? next : { ...next, fields: writeFields(state, obs, policyOf) };
    case 'retraction': {
      const targets = w.dead.has(obs.id) ? undefined : w.byRetraction.get(obs.id);
      if (targets === undefined) return next;
      const retracted = { ...state.retracted };
      for (const t of targets) setOwn(retracted, t, obs.id);
      return { ...next, retracted };
    }
    default: {
      const unknownKind: never = kind;
      throw new Error(`${label(state)}: observation ${obs.id} has unknown kind ${String(unknownKind)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Writes

function writeFields(
  state: EntityState,
  obs: ReducibleObservation,
  policyOf: PolicyResolver,
): Record<string, FieldState> {
  const current = state.fields;
  const out = { ...current };
  const ref = refOf(obs);
  // Sorted so the key order of `fields` in the state does not depend on jsonb's key order.
  for (const name of Object.keys(obs.fields).sort()) {
    const value = obs.fields[name];
    if (value === undefined) continue;
    const declared = checkedPolicy(policyOf(obs.type, obs.schemaVersion, name), state, obs, name);
    setOwn(out, name, writeField(getOwn(current, name), value, declared, ref));
  }
  return out;
}

function writeField(
  cur: FieldState | undefined,
  value: Json,
  declared: FieldPolicy,
  ref: ObservationRef,
): FieldState {
  const contested = cur?.contested ?? [];
  // A hand-built state may leave `value` out: that reads as cleared.
  const old: Json = cur?.value ?? null;
  if (ref.kind === 'correction') {
    const after =
      cur !== undefined && old !== null && !jsonEquals(old, value)
        ? pushContested(contested, { value: old, source: cur.winner, reason: 'corrected' })
        : contested;
    return freshField(value, cur?.policy ?? declared, ref, after);
  }
  if (cur?.corrected === true) {
    if (jsonEquals(old, value)) return cur;
    return {
      ...cur,
      contested: pushContested(contested, { value, source: ref, reason: 'pinned by correction' }),
    };
  }
  if (value === null) {
    const after =
      cur !== undefined && old !== null
        ? pushContested(contested, { value: old, source: cur.winner, reason: 'cleared' })
        : contested;
    return freshField(null, declared, ref, after);
  }
  if (cur === undefined || old === null) return freshField(value, declared, ref, contested);
  if (declared === 'set-union') return uniteInto(cur, old, value, ref);
  const keepOld = (): FieldState => ({
    value: old,
    policy: declared,
    winner: cur.winner,
    corrected: false,
    contested,
  });
  if (jsonEquals(old, value)) {
    // LWW/reject credit the latest writer (it confirmed the value last); the others keep the first.
    return declared === 'last-writer-wins' || declared === 'reject-on-conflict'
      ? freshField(value, declared, ref, contested)
      : keepOld();
  }
  switch (declared) {
    case 'last-writer-wins':
    case 'reject-on-conflict':
      return freshField(
        value,
        declared,
        ref,
        pushContested(contested, { value: old, source: cur.winner, reason: declared }),
      );
    case 'first-writer-wins':
      return { ...keepOld(), contested: pushContested(contested, { value, source: ref, reason: declared }) };
    case 'max':
    case 'min': {
      const order = compareOrdered(value, old);
      const newWins = order !== undefined && (declared === 'max' ? order > 0 : order < 0);
      if (newWins)
        return freshField(
          value,
          declared,
          ref,
          pushContested(contested, { value: old, source: cur.winner, reason: declared }),
        );
      return { ...keepOld(), contested: pushContested(contested, { value, source: ref, reason: declared }) };
    }
  }
}

/** The field holding just `value` (as a set under set-union), written by `ref`. */
function freshField(
  value: Json,
  policy: FieldPolicy,
  ref: ObservationRef,
  contested: ContestedValue[],
): FieldState {
  const corrected = ref.kind === 'correction';
  if (policy !== 'set-union' || value === null) return { value, policy, winner: ref, corrected, contested };
  const set = new Map<string, { el: Json; source: ElementSource }>();
  addElements(set, value, ref);
  return { ...finishSet(set), policy, winner: ref, corrected, contested };
}

type WorkingSet = Map<string, { el: Json; source: ElementSource }>;

function uniteInto(cur: FieldState, old: Json, value: Json, ref: ObservationRef): FieldState {
  const set: WorkingSet = new Map();
  if (cur.policy === 'set-union' && cur.contributors !== undefined) {
    for (const el of asArray(old)) {
      const key = canonicalJson(el);
      const source = getOwn(cur.contributors, key);
      if (source !== undefined) set.set(key, { el, source });
    }
  } else {
    // Entering set-union from another policy: the current value is the set so far.
    addElements(set, old, cur.winner);
  }
  addElements(set, value, ref);
  return { ...finishSet(set), policy: 'set-union', winner: ref, corrected: false, contested: cur.contested };
}

function addElements(set: WorkingSet, value: Json, ref: ObservationRef): void {
  const seen = new Set<string>();
  for (const el of asArray(value)) {
    if (el === null) continue; // null clears a set; it is never an element
    const key = canonicalJson(el);
    if (seen.has(key)) continue; // one observation counts once per element
    seen.add(key);
    const had = set.get(key);
    set.set(
      key,
      had
        ? { el: had.el, source: { first: had.source.first, count: had.source.count + 1 } }
        : { el, source: { first: ref, count: 1 } },
    );
  }
}

function finishSet(set: WorkingSet): { value: Json[]; contributors: Record<string, ElementSource> } {
  const keys = [...set.keys()].sort();
  const contributors: Record<string, ElementSource> = {};
  // Built in sorted order so the state's key order is a function of its content.
  for (const key of keys) setOwn(contributors, key, set.get(key)!.source);
  return { value: keys.map((k) => set.get(k)!.el), contributors };
}

function asArray(value: Json): Json[] {
  return Array.isArray(value) ? value : [value];
}

/** Order of two values for max/min, or undefined when they cannot be ordered. */
function compareOrdered(a: Json, b: Json): number | undefined {
  if ((typeof a === 'number' && typeof b === 'number') || (typeof a === 'string' && typeof b === 'string')) {
    return a < b ? -1 : a > b ? 1 : 0;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Helpers

function refOf(obs: ReducibleObservation): ObservationRef {
  return {
    observationId: obs.id,
    entityVersion: obs.entityVersion,
    agentId: obs.provenance.agentId,
    role: obs.provenance.role,
    kind: obs.kind,
  };
}

function pushContested(list: readonly ContestedValue[], entry: ContestedValue): ContestedValue[] {
  const out = [...list, entry];
  return out.length > MAX_CONTESTED ? out.slice(out.length - MAX_CONTESTED) : out;
}

function checkedPolicy(
  policy: FieldPolicy | undefined,
  state: EntityState,
  obs: ReducibleObservation,
  field: string,
): FieldPolicy {
  if (policy === undefined)
    throw new UnknownFieldPolicyError(label(state), obs.id, `${obs.type}@${obs.schemaVersion}`, field);
  if (!FIELD_POLICIES.includes(policy)) {
    throw new Error(
      `policy resolver returned ${String(policy)} for ${obs.type}@${obs.schemaVersion}.${field}; expected one of ${FIELD_POLICIES.join(', ')}`,
    );
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

function label(state: EntityRef): string {
  return formatEntityRef(state);
}
