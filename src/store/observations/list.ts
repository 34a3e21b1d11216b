/**
 * Listing the log across entities, filtered by provenance or content, in append order (seq).
 * Pages by keyset: pass the last row's seq as `afterSeq` to get the next page.
 */
import { OBSERVATION_KINDS, type ObservationKind, type StoredObservation } from '../../shared/observation';
import type { Queryable } from '../pool';
import { observationColumns, parseObservationRow } from './rows';

export interface ListFilters {
  taskKey?: string;
  agentId?: string;
  role?: string;
  entityType?: string;
  entityId?: string;
  type?: string;
  kind?: ObservationKind;
  /** recorded_at >= since (database time). */
  since?: string | Date;
  /** recorded_at < until. */
  until?: string | Date;
  /** Default 100, at most 10000. */
  limit?: number;
  /** Only rows after this seq (keyset pagination). */
  afterSeq?: number;
}

export const LIST_LIMIT = { default: 100, max: 10_000 } as const;

export async function listObservations(
  db: Queryable,
  filters: ListFilters = {},
): Promise<StoredObservation[]> {
  const limit = filters.limit ?? LIST_LIMIT.default;
  if (!Number.isInteger(limit) || limit < 1 || limit > LIST_LIMIT.max)
    throw new RangeError(`listObservations: limit must be an integer 1..${LIST_LIMIT.max}, got ${limit}`);
  if (filters.afterSeq !== undefined && (!Number.isSafeInteger(filters.afterSeq) || filters.afterSeq < 0)) {
    throw new RangeError(`listObservations: afterSeq must be a whole number, got ${filters.afterSeq}`);
  }
  if (filters.kind !== undefined && !OBSERVATION_KINDS.includes(filters.kind))
    throw new RangeError(`listObservations: unknown kind "${String(filters.kind)}"`);

  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: (p: string) => string, value: unknown) => {
    params.push(value);
    where.push(sql(`$${params.length}`));
  };
  if (filters.taskKey !== undefined) add((p) => `o.task_key = ${p}`, filters.taskKey);
  if (filters.agentId !== undefined) add((p) => `o.agent_id = ${p}`, filters.agentId);
  if (filters.role !== undefined) add((p) => `o.role = ${p}`, filters.role);
  if (filters.entityType !== undefined) add((p) => `o.entity_type = ${p}`, filters.entityType);
  if (filters.entityId !== undefined) add((p) => `o.entity_id = ${p}`, filters.entityId);
  if (filters.type !== undefined) add((p) => `o.type = ${p}`, filters.type);
  if (filters.kind !== undefined) add((p) => `o.kind = ${p}`, filters.kind);
  if (filters.since !== undefined)
    add((p) => `o.recorded_at >= ${p}::timestamptz`, timeParam('since', filters.since));
  if (filters.until !== undefined)
    add((p) => `o.recorded_at < ${p}::timestamptz`, timeParam('until', filters.until));
  if (filters.afterSeq !== undefined) add((p) => `o.seq > ${p}::bigint`, filters.afterSeq);
  params.push(limit);
  const { rows } = await db.query<Record<string, unknown>>(
    `select ${observationColumns('o')} from cairn.observations o
      ${where.length > 0 ? `where ${where.join(' and ')}` : ''}
      order by o.seq
      limit $${params.length}`,
    params,
  );
  return rows.map(parseObservationRow);
}

function timeParam(name: string, value: string | Date): string {
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new RangeError(`listObservations: ${name} is an invalid Date`);
    return value.toISOString();
  }
  return value;
}
