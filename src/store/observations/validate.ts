/**
 * Validation of a whole batch before any SQL runs: item shape, entity reference, registered
 * type, the type's strict field schema, kind rules, sizes, and strings Postgres cannot store.
 * The first problem found is thrown, naming the item's index and the field's path; a valid
 * batch comes back as `PreparedItem`s with defaults resolved and content hashes computed.
 */
import { z } from 'zod';
import {
  ObservationValidationError,
  PayloadTooLargeError,
  UnknownObservationTypeError,
} from '../../shared/errors';
import {
  ENTITY_ID_MAX_LENGTH,
  ENTITY_TYPE_PATTERN,
  entityRefSchema,
  OBSERVATION_KINDS,
  type ExternalSource,
  type ObservationKind,
} from '../../shared/observation';
import type { ObservationType, ObservationTypeRegistry } from '../../shared/observationTypes';
import { contentHashOfCanonicalFields } from './hash';
import { canonicalJsonValue, JsonValueError, stringProblem } from './jsonValue';
import { APPEND_LIMITS, type AppendContext, type AppendItem } from './types';

/** A validated item, ready to become one element of each parameter array. */
export interface PreparedItem {
  index: number;
  entityType: string;
  entityId: string;
  type: string;
  schemaVersion: number;
  kind: ObservationKind;
  /** Canonical JSON text of the fields (what the content hash covers; jsonb normalizes key order anyway). */
  fieldsJson: string;
  /** Its size in UTF-8 bytes. */
  fieldsBytes: number;
  scope: string;
  derivedFrom: string[];
  source: ExternalSource | null;
  targetId: string | null;
  expectedVersion: number | null;
  idempotencyKey: string;
  contentHash: string;
  observedAt: string;
}

/** Index used for problems with the batch or the context rather than one item. */
export const BATCH_INDEX = -1;

const shortText = z.string().min(1).max(APPEND_LIMITS.maxKeyLength);
const isoTime = z.iso.datetime({
  offset: true,
  message: 'must be an ISO 8601 timestamp, e.g. 2025-01-31T12:00:00Z',
});
const pgInt = z.int().min(0).max(2_147_483_647);

const sourceSchema = z.strictObject({
  kind: z.enum(['url', 'document', 'tool-call', 'human', 'other']),
  ref: z.string().min(1).max(APPEND_LIMITS.maxStringLength),
  detail: z.string().max(APPEND_LIMITS.maxStringLength).optional(),
});

const itemSchema = z.strictObject({
  entityType: z.string(),
  entityId: z.string(),
  type: z.string().min(1).max(200),
  schemaVersion: z.int().min(1).max(2_147_483_647).optional(),
  kind: z.enum(OBSERVATION_KINDS).optional(),
  fields: z.record(z.string(), z.unknown()),
  scope: shortText.optional(),
  derivedFrom: z.array(z.guid()).max(APPEND_LIMITS.maxDerivedFrom).optional(),
  source: sourceSchema.optional(),
  targetId: z.guid().optional(),
  expectedVersion: pgInt.optional(),
  idempotencyKey: shortText.optional(),
  observedAt: isoTime.optional(),
});

type ParsedItem = z.infer<typeof itemSchema>;

const ITEM_KEYS = new Set(Object.keys(itemSchema.shape));
const MAX_INT = 2_147_483_647;
const optionalInt = (v: unknown, min: number) =>
  v === undefined || (Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= MAX_INT);
const optionalText = (v: unknown, max: number) =>
  v === undefined || (typeof v === 'string' && v.length >= 1 && v.length <= max);

/**
 * The common item (no derivedFrom, source, targetId or observedAt) checked by hand: a batch of
 * thousands spends most of its validation time in the generic object parser otherwise. Only
 * ever answers true for items `itemSchema` accepts unchanged; anything else, valid or not, goes
 * through `itemSchema`, which also words the errors.
 */
function isPlainValidItem(raw: unknown): raw is ParsedItem {
  if (typeof raw !== 'object' || raw === null || Object.getPrototypeOf(raw) !== Object.prototype)
    return false;
  const r = raw as Record<string, unknown>;
  for (const key of Object.keys(r)) if (!ITEM_KEYS.has(key)) return false;
  const fields = r.fields;
  return (
    typeof r.entityType === 'string' &&
    typeof r.entityId === 'string' &&
    optionalText(r.type, 200) &&
    r.type !== undefined &&
    typeof fields === 'object' &&
    fields !== null &&
    Object.getPrototypeOf(fields) === Object.prototype &&
    optionalInt(r.schemaVersion, 1) &&
    (r.kind === undefined || (OBSERVATION_KINDS as readonly unknown[]).includes(r.kind)) &&
    optionalText(r.scope, APPEND_LIMITS.maxKeyLength) &&
    optionalInt(r.expectedVersion, 0) &&
    optionalText(r.idempotencyKey, APPEND_LIMITS.maxKeyLength) &&
    r.derivedFrom === undefined &&
    r.source === undefined &&
    r.targetId === undefined &&
    r.observedAt === undefined
  );
}

/** The append context's schema (exported for the property that `isPlainValidContext` never accepts more). */
export const contextSchema = z.strictObject({
  provenance: z.strictObject({
    taskKey: z.string().max(APPEND_LIMITS.maxKeyLength),
    workflowId: z.string().max(APPEND_LIMITS.maxKeyLength),
    runId: z.string().max(APPEND_LIMITS.maxKeyLength),
    activityId: z.string().max(APPEND_LIMITS.maxKeyLength),
    attempt: pgInt,
    agentId: z.string().max(APPEND_LIMITS.maxKeyLength),
    role: z.string().max(APPEND_LIMITS.maxKeyLength),
  }),
  idempotencyPrefix: shortText,
  observedAt: isoTime,
});

const PROVENANCE_KEYS = ['taskKey', 'workflowId', 'runId', 'activityId', 'agentId', 'role'] as const;
const ISO_TIME = z.core.regexes.datetime({ offset: true });

function isPlainRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

/**
 * The common context checked by hand (a single append spent a quarter of its validation in the
 * generic object parser here). Only ever answers true for contexts `contextSchema` accepts
 * unchanged (test/unit/appendValidation.test.ts, a property); anything else, valid or not, goes
 * through `contextSchema`, which also words the errors.
 */
export function isPlainValidContext(ctx: unknown): ctx is AppendContext {
  if (!isPlainRecord(ctx)) return false;
  const keys = Object.keys(ctx);
  if (keys.length !== 3) return false;
  const p = ctx.provenance;
  const prefix = ctx.idempotencyPrefix;
  const observedAt = ctx.observedAt;
  if (
    !isPlainRecord(p) ||
    typeof prefix !== 'string' ||
    prefix.length < 1 ||
    prefix.length > APPEND_LIMITS.maxKeyLength ||
    typeof observedAt !== 'string' ||
    !ISO_TIME.test(observedAt)
  )
    return false;
  if (Object.keys(p).length !== PROVENANCE_KEYS.length + 1) return false;
  for (const key of PROVENANCE_KEYS) {
    const v = p[key];
    if (typeof v !== 'string' || v.length > APPEND_LIMITS.maxKeyLength) return false;
  }
  const attempt = p.attempt;
  return Number.isSafeInteger(attempt) && (attempt as number) >= 0 && (attempt as number) <= MAX_INT;
}

// eslint-disable-next-line no-control-regex
const CONTROL_UNIT = /[\u0000-\u001F]/;

/**
 * What `entityRefSchema` accepts, checked without building its input object and issues: only
 * ever true when the schema accepts the reference (a property in test/unit/appendValidation.test.ts);
 * false sends the reference through the schema, which words the error.
 */
export function isValidEntityRef(entityType: string, entityId: string): boolean {
  return (
    ENTITY_TYPE_PATTERN.test(entityType) &&
    entityId.length >= 1 &&
    entityId.length <= ENTITY_ID_MAX_LENGTH &&
    !CONTROL_UNIT.test(entityId)
  );
}

const jsonLimits = { maxStringLength: APPEND_LIMITS.maxStringLength, maxDepth: APPEND_LIMITS.maxDepth };

export function prepareBatch(
  registry: ObservationTypeRegistry,
  items: readonly AppendItem[],
  ctx: AppendContext,
): PreparedItem[] {
  validateContext(ctx);
  if (!Array.isArray(items)) throw new ObservationValidationError(BATCH_INDEX, 'items', 'must be an array');
  if (items.length > APPEND_LIMITS.maxBatch) {
    throw new ObservationValidationError(
      BATCH_INDEX,
      'items',
      `a batch holds at most ${APPEND_LIMITS.maxBatch} observations, got ${items.length}`,
    );
  }
  const prepared: PreparedItem[] = [];
  const keys = new Map<string, number>();
  // Items of a batch mostly share a few entities: check each reference once.
  const validRefs = new Set<string>();
  let batchBytes = 0;
  for (let index = 0; index < items.length; index++) {
    const item = prepareItem(registry, items[index], index, ctx, validRefs);
    const earlier = keys.get(item.idempotencyKey);
    if (earlier !== undefined) {
      throw new ObservationValidationError(
        index,
        'idempotencyKey',
        `"${item.idempotencyKey}" is also the key of observation [${earlier}]`,
      );
    }
    keys.set(item.idempotencyKey, index);
    batchBytes += item.fieldsBytes;
    if (batchBytes > APPEND_LIMITS.maxBatchBytes)
      throw new PayloadTooLargeError(index, batchBytes, APPEND_LIMITS.maxBatchBytes);
    prepared.push(item);
  }
  return prepared;
}

function validateContext(ctx: AppendContext): void {
  if (!isPlainValidContext(ctx)) {
    const parsed = contextSchema.safeParse(ctx);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new ObservationValidationError(BATCH_INDEX, issuePath('context', issue), issue.message);
    }
  }
  const p = ctx.provenance;
  for (const name of PROVENANCE_KEYS) checkString(BATCH_INDEX, `context.provenance.${name}`, p[name]);
  checkString(BATCH_INDEX, 'context.idempotencyPrefix', ctx.idempotencyPrefix);
}

function prepareItem(
  registry: ObservationTypeRegistry,
  raw: unknown,
  index: number,
  ctx: AppendContext,
  validRefs: Set<string>,
): PreparedItem {
  let item: ParsedItem;
  if (isPlainValidItem(raw)) {
    item = raw;
  } else {
    const parsed = itemSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new ObservationValidationError(index, issuePath('', issue), issue.message);
    }
    item = parsed.data;
  }
  const refKey = `${item.entityType}\u0000${item.entityId}`;
  if (!validRefs.has(refKey)) {
    if (!isValidEntityRef(item.entityType, item.entityId)) {
      const ref = entityRefSchema.safeParse({ entityType: item.entityType, entityId: item.entityId });
      if (!ref.success) {
        const issue = ref.error.issues[0]!;
        throw new ObservationValidationError(index, issuePath('', issue), issue.message);
      }
    }
    checkString(index, 'entityId', item.entityId);
    validRefs.add(refKey);
  }

  const type = registry.get(item.type, item.schemaVersion);
  if (!type) throw new UnknownObservationTypeError(index, item.type, item.schemaVersion);
  if (type.entity !== item.entityType) {
    throw new ObservationValidationError(
      index,
      'entityType',
      `observation type ${type.key} is about "${type.entity}" entities, not "${item.entityType}"`,
    );
  }

  const kind = item.kind ?? 'assertion';
  const targets = kind === 'correction' || kind === 'retraction';
  if (targets && item.targetId === undefined) {
    throw new ObservationValidationError(
      index,
      'targetId',
      `a ${kind} must name the observation it ${kind === 'correction' ? 'corrects' : 'retracts'}`,
    );
  }
  if (!targets && item.targetId !== undefined) {
    throw new ObservationValidationError(
      index,
      'targetId',
      `only corrections and retractions have a targetId, not a ${kind}`,
    );
  }

  const fields = validateFields(type, kind, item.fields, index);
  if (!targets && item.expectedVersion === undefined && hasGuardedFields(type)) {
    // Of the fields written: a property whose value is undefined is not stored.
    const guarded = Object.keys(fields.data).find(
      (f) => type.policies[f] === 'reject-on-conflict' && fields.data[f] !== undefined,
    );
    if (guarded !== undefined) {
      throw new ObservationValidationError(
        index,
        'expectedVersion',
        `required: field "${guarded}" of ${type.key} is reject-on-conflict`,
      );
    }
  }
  // Canonical JSON is JSON like any other (jsonb normalizes key order anyway), and the same
  // text the content hash covers.
  const fieldsJson = fields.json;
  const bytes = Buffer.byteLength(fieldsJson, 'utf8');
  if (bytes > APPEND_LIMITS.maxFieldsBytes)
    throw new PayloadTooLargeError(index, bytes, APPEND_LIMITS.maxFieldsBytes);

  const scope = item.scope ?? 'task';
  checkString(index, 'scope', scope);
  const source = item.source ?? null;
  if (source) {
    checkString(index, 'source.ref', source.ref);
    if (source.detail !== undefined) checkString(index, 'source.detail', source.detail);
  }
  const idempotencyKey = item.idempotencyKey ?? `${ctx.idempotencyPrefix}:${index}`;
  if (idempotencyKey.length > APPEND_LIMITS.maxKeyLength) {
    throw new ObservationValidationError(
      index,
      'idempotencyKey',
      `"${idempotencyKey.slice(0, 40)}…" is longer than ${APPEND_LIMITS.maxKeyLength} characters`,
    );
  }
  checkString(index, 'idempotencyKey', idempotencyKey);
  // Postgres prints uuids in lower case; hash what will be stored.
  const derivedFrom = (item.derivedFrom ?? []).map((id) => id.toLowerCase());
  const targetId = item.targetId?.toLowerCase() ?? null;
  const expectedVersion = item.expectedVersion ?? null;

  return {
    index,
    entityType: item.entityType,
    entityId: item.entityId,
    type: type.name,
    schemaVersion: type.version,
    kind,
    fieldsJson,
    fieldsBytes: bytes,
    scope,
    derivedFrom,
    source,
    targetId,
    expectedVersion,
    idempotencyKey,
    contentHash: contentHashOfCanonicalFields(
      {
        entityType: item.entityType,
        entityId: item.entityId,
        type: type.name,
        schemaVersion: type.version,
        kind,
        scope,
        derivedFrom,
        source,
        targetId,
        expectedVersion,
      },
      fieldsJson,
    ),
    observedAt: item.observedAt ?? ctx.observedAt,
  };
}

const guardedTypes = new WeakMap<ObservationType, boolean>();

/** Whether any field of the type is reject-on-conflict (computed once per type). */
function hasGuardedFields(type: ObservationType): boolean {
  let guarded = guardedTypes.get(type);
  if (guarded === undefined) {
    guarded = Object.values(type.policies).some((p) => p === 'reject-on-conflict');
    guardedTypes.set(type, guarded);
  }
  return guarded;
}

const partialSchemas = new WeakMap<ObservationType, z.ZodType>();

/** An empty object with no prototype, frozen: the prototype of every shielded copy. */
const NO_PROTOTYPE: object = Object.freeze(Object.create(null) as object);

/**
 * The fields as zod must read them: zod reads each declared key from its input, and a plain
 * object answers `constructor` (and other Object.prototype names, polluted ones too) even when
 * the key is absent. The copy's prototype chain ends in NO_PROTOTYPE, so an absent key reads
 * undefined, as in a null-prototype copy; unlike `Object.create(null)`, which V8 builds in
 * dictionary mode, the copy keeps a fast shape (zod's parse of a null-prototype copy cost 2-3×
 * its parse of the fields). Same own properties, same answers (a property in
 * test/unit/appendValidation.test.ts).
 */
export function shieldedCopy(raw: Record<string, unknown>): Record<string, unknown> {
  return Object.assign(Object.create(NO_PROTOTYPE) as Record<string, unknown>, raw);
}

/**
 * Assertions, inferences and decisions must satisfy the type's schema. A correction overrides
 * only the fields it names, so it is checked against the schema with every field optional; a
 * retraction may carry no fields at all.
 */
function validateFields(
  type: ObservationType,
  kind: ObservationKind,
  raw: Record<string, unknown>,
  index: number,
): { data: Record<string, unknown>; json: string } {
  let schema: z.ZodType = type.schema;
  if (kind === 'correction' || kind === 'retraction') {
    schema = partialSchemas.get(type) ?? type.schema.partial();
    partialSchemas.set(type, schema);
  }
  const parsed = schema.safeParse(shieldedCopy(raw));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ObservationValidationError(index, issuePath('fields', issue), issue.message);
  }
  const data = parsed.data as Record<string, unknown>;
  try {
    return { data, json: canonicalJsonValue(data, 'fields', jsonLimits) };
  } catch (err) {
    if (err instanceof JsonValueError) throw new ObservationValidationError(index, err.path, err.problem);
    throw err;
  }
}

function checkString(index: number, path: string, value: string): void {
  const problem = stringProblem(value, APPEND_LIMITS.maxStringLength);
  if (problem) throw new ObservationValidationError(index, path, problem);
}

/** `fields.tags[2]`; for unrecognized keys, the first offending key. */
function issuePath(prefix: string, issue: z.core.$ZodIssue): string {
  const segments: PropertyKey[] = [...issue.path];
  if (issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined) segments.push(issue.keys[0]);
  let path = prefix;
  for (const segment of segments) {
    if (typeof segment === 'number') path += `[${segment}]`;
    else path += path === '' ? String(segment) : `.${String(segment)}`;
  }
  return path === '' ? '(item)' : path;
}
