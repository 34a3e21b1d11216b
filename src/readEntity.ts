/**
 * The typed read for code outside agent steps (orchestrators, services, tests): entity state by
 * observation type handle, reduced under the types' policies (and the stored policies of any
 * other type that wrote to the entity), with per-field provenance. Agents read through
 * `ctx.memory.entity`, which also records their read set.
 */
import type { FieldsOf, ReadTypes, TypedEntityState } from './agent';
import { ObservationTypeRegistry, type ObservationType } from './shared/observationTypes';
import { policyResolverFor } from './shared/reducer';
import { getEntityState, type EntityStateOptions } from './store/observations/read';
import type { Queryable } from './store/pool';

/**
 * `readEntity(pool, companyProfile, 'acme')`, or several handles of one entity type. The pool
 * must hold a read grant (`createPool(url, { scopes: 'all' })`, or a scoped transaction):
 * without one the read fails with ScopeDeniedError rather than looking empty.
 */
export async function readEntity<S extends ReadTypes>(
  db: Queryable,
  types: S,
  entityId: string,
  opts: Omit<EntityStateOptions, 'stats' | 'without'> = {},
): Promise<TypedEntityState<FieldsOf<S>>> {
  const list: readonly ObservationType[] = Array.isArray(types) ? types : [types as ObservationType];
  const first = list[0];
  if (first === undefined) throw new TypeError('readEntity: give at least one observation type');
  const other = list.find((t) => t.entity !== first.entity);
  if (other !== undefined)
    throw new TypeError(
      `readEntity: ${first.key} is about ${first.entity}, ${other.key} about ${other.entity}`,
    );
  const state = await getEntityState(
    db,
    policyResolverFor(new ObservationTypeRegistry(list)),
    { entityType: first.entity, entityId },
    opts,
  );
  return state as unknown as TypedEntityState<FieldsOf<S>>;
}
