/**
 * Content and chain hashes of observations.
 *
 * The content hash covers what an observation *says* — not who wrote it or when — so a retry
 * of the same activity (a new attempt, maybe a new run) hashes the same and replays the stored
 * row, while any change of content under the same idempotency key is caught. Who wrote it is
 * covered by the provenance hash, which the chain links in as well (hash format 2).
 */
import * as crypto from 'node:crypto';
import { canonicalJson } from '../../shared/canonicalJson';
import type { ExternalSource, Json, ObservationKind } from '../../shared/observation';

export interface HashedContent {
  entityType: string;
  entityId: string;
  type: string;
  schemaVersion: number;
  kind: ObservationKind;
  fields: { [key: string]: Json };
  scope: string;
  derivedFrom: string[];
  source: ExternalSource | null;
  targetId: string | null;
  expectedVersion: number | null;
}

export function contentHash(c: HashedContent): string {
  let fields: string;
  try {
    fields = canonicalJson(c.fields);
  } catch {
    // The error canonicalJson gives for the whole content (its path starts $.fields).
    return sha256Hex(canonicalJson(contentObject(c, c.fields)));
  }
  return sha256Hex(contentText(c, fields, c.fields));
}

/**
 * The content hash of an item whose fields' canonical JSON text is already known (the append
 * path produces it while validating the fields): the same hash as `contentHash` gives for
 * fields of that canonical text.
 */
export function contentHashOfCanonicalFields(
  c: Omit<HashedContent, 'fields'>,
  fieldsCanonical: string,
): string {
  return sha256Hex(contentText(c, fieldsCanonical, undefined));
}

/**
 * canonicalJson of the content object, built directly: the envelope's keys are fixed, so their
 * sorted order is too, and only the fields need a generic encoder. Anything in the envelope
 * that is not the plain value its type says (only a caller outside the validated append path
 * could pass one) goes through canonicalJson of the whole object, which encodes or rejects it
 * exactly as it always has.
 */
function contentText(
  c: Omit<HashedContent, 'fields'>,
  fieldsCanonical: string,
  fields: HashedContent['fields'] | undefined,
): string {
  const s = c.source;
  if (
    typeof c.entityType === 'string' &&
    typeof c.entityId === 'string' &&
    typeof c.type === 'string' &&
    Number.isFinite(c.schemaVersion) &&
    typeof c.kind === 'string' &&
    typeof c.scope === 'string' &&
    Array.isArray(c.derivedFrom) &&
    (c.targetId === null || typeof c.targetId === 'string') &&
    (c.expectedVersion === null || Number.isFinite(c.expectedVersion)) &&
    (s === null ||
      (typeof s === 'object' &&
        typeof s.kind === 'string' &&
        typeof s.ref === 'string' &&
        (s.detail === undefined || typeof s.detail === 'string')))
  ) {
    let derivedFrom = '[';
    for (let i = 0; i < c.derivedFrom.length; i++) {
      const id: unknown = c.derivedFrom[i];
      if (typeof id !== 'string') return slowContentText(c, fieldsCanonical, fields);
      derivedFrom += (i === 0 ? '' : ',') + JSON.stringify(id);
    }
    derivedFrom += ']';
    const source =
      s === null
        ? 'null'
        : `{${s.detail === undefined ? '' : `"detail":${JSON.stringify(s.detail)},`}"kind":${JSON.stringify(s.kind)},"ref":${JSON.stringify(s.ref)}}`;
    const expectedVersion = c.expectedVersion === null ? 'null' : JSON.stringify(c.expectedVersion);
    const targetId = c.targetId === null ? 'null' : JSON.stringify(c.targetId);
    // Keys in canonicalJson's order (UTF-16 code units); numbers as JSON.stringify writes them.
    return (
      `{"derivedFrom":${derivedFrom},"entityId":${JSON.stringify(c.entityId)},` +
      `"entityType":${JSON.stringify(c.entityType)},"expectedVersion":${expectedVersion},` +
      `"fields":${fieldsCanonical},"kind":${JSON.stringify(c.kind)},` +
      `"schemaVersion":${JSON.stringify(c.schemaVersion)},"scope":${JSON.stringify(c.scope)},` +
      `"source":${source},"targetId":${targetId},"type":${JSON.stringify(c.type)}}`
    );
  }
  return slowContentText(c, fieldsCanonical, fields);
}

/** canonicalJson of the content object: the definition, and what rejects a bad envelope. */
function slowContentText(
  c: Omit<HashedContent, 'fields'>,
  fieldsCanonical: string,
  fields: HashedContent['fields'] | undefined,
): string {
  // canonicalJson(JSON.parse(text)) === text for canonical text.
  return canonicalJson(contentObject(c, fields ?? (JSON.parse(fieldsCanonical) as HashedContent['fields'])));
}

function contentObject(c: Omit<HashedContent, 'fields'>, fields: HashedContent['fields']): Json {
  // Built field by field (no spread), so only the documented properties are hashed.
  const source: Json =
    c.source === null
      ? null
      : c.source.detail === undefined
        ? { kind: c.source.kind, ref: c.source.ref }
        : { kind: c.source.kind, ref: c.source.ref, detail: c.source.detail };
  return {
    entityType: c.entityType,
    entityId: c.entityId,
    type: c.type,
    schemaVersion: c.schemaVersion,
    kind: c.kind,
    fields,
    scope: c.scope,
    derivedFrom: c.derivedFrom,
    source,
    targetId: c.targetId,
    expectedVersion: c.expectedVersion,
  };
}

/**
 * The link of one row: sha256_hex(prev_hash || content_hash || provenance_hash); prev of
 * version 1 is ''. Rows of hash format 1 (written before migration 010) have no provenance hash.
 * Mirrors the SQL.
 */
export function chainHash(prevHash: string, contentHashHex: string, provenanceHashHex = ''): string {
  return sha256Hex(prevHash + contentHashHex + provenanceHashHex);
}

/** Who wrote a row and under which key; in the chain of rows of hash format 2 (migration 010). */
export interface HashedProvenance {
  taskKey: string;
  workflowId: string;
  runId: string;
  activityId: string;
  attempt: number;
  agentId: string;
  role: string;
  idempotencyKey: string;
}

/** cairn.provenance_hash: each part as `<UTF-8 byte length>:<text>`, concatenated, hashed. */
export function provenanceHash(p: HashedProvenance): string {
  const parts = [
    p.taskKey,
    p.workflowId,
    p.runId,
    p.activityId,
    String(p.attempt),
    p.agentId,
    p.role,
    p.idempotencyKey,
  ];
  return sha256Hex(parts.map((x) => `${Buffer.byteLength(x, 'utf8')}:${x}`).join(''));
}

// crypto.hash (Node >= 20.12) is about twice as fast as a Hash object for small inputs.
const oneShot = typeof crypto.hash === 'function' ? crypto.hash : undefined;

function sha256Hex(text: string): string {
  return oneShot
    ? oneShot('sha256', text, 'hex')
    : crypto.createHash('sha256').update(text, 'utf8').digest('hex');
}
