/**
 * Step payloads by reference (migration 013; src/shared/payloadRefs.ts): stored by the step's
 * commit transaction, resolved for the steps that depend on it and for CairnClient.result().
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from '../shared/canonicalJson';
import type { Json } from '../shared/observation';
import { isPayloadRef, looksLikePayloadRef, PAYLOAD_REF_KIND, type PayloadRef } from '../shared/payloadRefs';
import type { Queryable } from './pool';

export interface PayloadOwner {
  taskKey: string;
  workflowId: string;
  activityId: string;
}

/** A reference that cannot be resolved: its row is missing, of another task, or does not match its hash. */
export class PayloadRefError extends Error {
  override readonly name = 'PayloadRefError';
  constructor(
    readonly ref: PayloadRef,
    readonly taskKey: string,
    problem: string,
  ) {
    super(`step payload ${ref.id} of task ${taskKey} (${ref.bytes} bytes): ${problem}`);
  }
}

/**
 * The value as it should travel through history: itself when small, else a reference to the
 * row stored here (call inside the step's commit transaction, so the row commits with the step).
 */
export async function storeIfLarge(
  client: Queryable,
  owner: PayloadOwner,
  part: string,
  value: Json,
  inlineMaxBytes: number,
): Promise<Json> {
  const text = JSON.stringify(value);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes <= inlineMaxBytes && !looksLikePayloadRef(value)) return value;
  const sha256 = hashOf(value);
  const { rows } = await client.query<{ id: string }>(
    'select cairn.record_step_payload($1, $2, $3, $4, $5::int, $6, $7::jsonb) as id',
    [owner.taskKey, owner.workflowId, owner.activityId, part, bytes, sha256, text],
  );
  const ref: PayloadRef = { $cairnRef: PAYLOAD_REF_KIND, id: rows[0]!.id, bytes, sha256 };
  return ref as unknown as Json;
}

/**
 * Replaces every reference among `values` with the value it stands for (one query for all of
 * them); other values come back as they are.
 */
export async function resolvePayloads<T extends readonly unknown[]>(
  db: Queryable,
  taskKey: string,
  values: T,
): Promise<{ [K in keyof T]: unknown }> {
  const refs = values.filter(isPayloadRef);
  if (refs.length === 0) return values;
  const { rows } = await db.query<{ id: string; content: Json }>(
    'select id, content from cairn.step_payloads_of($1, $2::uuid[])',
    [taskKey, [...new Set(refs.map((r) => r.id))]],
  );
  const byId = new Map(rows.map((r) => [r.id, r.content]));
  return values.map((v) => {
    if (!isPayloadRef(v)) return v;
    const content = byId.get(v.id);
    if (content === undefined) throw new PayloadRefError(v, taskKey, 'not stored for this task');
    if (hashOf(content) !== v.sha256)
      throw new PayloadRefError(v, taskKey, 'content does not match its sha256');
    return content;
  }) as unknown as { [K in keyof T]: unknown };
}

function hashOf(value: Json): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}
