/**
 * Names of Cairn's spans, span attributes and metrics. Where the OpenTelemetry GenAI memory
 * conventions (development status) have a name for the idea, Cairn uses it (`gen_ai.*`); the
 * rest is Cairn's own (`cairn.*`). Listed in docs/production.md#observability.
 */

/** The instrumentation scope of Cairn's spans and metrics. */
export const INSTRUMENTATION_SCOPE = '@cairn-memory/cairn';

export const SPAN = {
  /** appendObservations: one batch written (observations, corrections, retractions). */
  append: 'cairn.append',
  /** A batch made only of retractions. */
  retract: 'cairn.retract',
  /** An entity read (fold of the log, from a snapshot). */
  read: 'cairn.read',
  /** A claim (lease with a fencing token) asked for. */
  claim: 'cairn.claim',
  /** A step's commit transaction with its read receipt (where a stale decision is refused). */
  commit: 'cairn.commit',
} as const;

export const EVENT = {
  /** On the commit span: a strict decision refused because what it read moved on. */
  staleRefusal: 'cairn.stale_refusal',
  /** On the append span: one retraction in the batch. */
  retraction: 'cairn.retraction',
  /** On the span active when a step fails with one of Cairn's refusals. */
  refusal: 'cairn.refusal',
} as const;

export const ATTR = {
  // OpenTelemetry GenAI conventions (memory operations, agents).
  operationName: 'gen_ai.operation.name',
  memoryStoreId: 'gen_ai.memory.store.id',
  memoryRecordId: 'gen_ai.memory.record.id',
  memoryRecordCount: 'gen_ai.memory.record.count',
  agentName: 'gen_ai.agent.name',
  agentId: 'gen_ai.agent.id',
  errorType: 'error.type',
  // Cairn's own.
  taskKey: 'cairn.task.key',
  entityType: 'cairn.entity.type',
  entityId: 'cairn.entity.id',
  entityVersion: 'cairn.entity.version',
  observationKind: 'cairn.observation.kind',
  observationType: 'cairn.observation.type',
  replayed: 'cairn.replayed',
  retractionCount: 'cairn.retraction.count',
  retractionTarget: 'cairn.retraction.target_id',
  readMinVersion: 'cairn.read.min_version',
  readAsOfVersion: 'cairn.read.as_of_version',
  /** How many tainted observations (active quarantines) the read left out. */
  tainted: 'cairn.tainted',
  claimResource: 'cairn.claim.resource',
  claimOutcome: 'cairn.claim.outcome',
  fencingToken: 'cairn.fencing_token',
  refusalReason: 'cairn.refusal.reason',
  staleOutcome: 'cairn.stale.outcome',
  staleVersionRead: 'cairn.stale.version_read',
  staleCurrentVersion: 'cairn.stale.current_version',
  staleFields: 'cairn.stale.fields',
  readSetId: 'cairn.read_set.id',
  conflictKind: 'cairn.conflict.kind',
} as const;

/** GenAI memory operation names. */
export const OPERATION = {
  create: 'create_memory',
  delete: 'delete_memory',
  search: 'search_memory',
} as const;

/** The memory store id Cairn reports (its observation log). */
export const STORE_ID = 'cairn.observations';

export const METRIC = {
  /** Observations appended (replays of the same content not counted). */
  appends: 'cairn.observations.appended',
  /** Entity reads. */
  reads: 'cairn.reads',
  /** Refusals by reason (the failure type: CairnStaleRead, CairnFenceStale, …). */
  refusals: 'cairn.refusals',
  /** Stale decisions: refused (strict) or written and flagged (warn). */
  staleDecisions: 'cairn.stale_decisions',
  /** Write conflicts: an idempotency key reused for other content, an expectedVersion behind. */
  conflicts: 'cairn.conflicts',
  /** Claims asked for, by outcome (granted, renewed, expired-takeover, held). */
  claims: 'cairn.claims',
} as const;
