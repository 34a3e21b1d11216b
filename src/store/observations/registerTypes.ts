/**
 * Registers observation types in cairn.observation_types, so any reader of the log knows each
 * row's schema (and the log's foreign key accepts the rows). Idempotent: registering the same
 * definition again is a no-op. A *different* definition under an existing name@version is an
 * error — bump the version instead; stored rows must keep meaning what they meant.
 * The description is documentation and may change without a new version.
 */
import {
  describeObservationType,
  type ObservationType,
  type ObservationTypeRegistry,
} from '../../shared/observationTypes';
import type { Queryable } from '../pool';

export class ObservationTypeConflictError extends Error {
  override readonly name = 'ObservationTypeConflictError';
  constructor(
    /** `name@version`. */
    readonly typeKey: string,
    /** Which parts differ: `entity`, `policies`, `json_schema`. */
    readonly differences: string[],
  ) {
    super(
      `observation type ${typeKey} is already registered with a different ${differences.join(', ')}; register the change as a new version`,
    );
  }
}

export async function registerObservationTypes(
  db: Queryable,
  types: ObservationTypeRegistry | Iterable<ObservationType>,
): Promise<{ registered: string[] }> {
  const list = isRegistry(types) ? types.all() : [...types];
  if (list.length === 0) return { registered: [] };
  const described = list.map(describeObservationType);
  const params = [
    described.map((d) => d.name),
    described.map((d) => d.version),
    described.map((d) => d.entity),
    described.map((d) => JSON.stringify(d.policies)),
    described.map((d) => JSON.stringify(d.jsonSchema)),
    described.map((d) => d.description),
  ];
  const input = `unnest($1::text[], $2::int[], $3::text[], $4::jsonb[], $5::jsonb[], $6::text[])
                   as u(name, version, entity, policies, json_schema, description)`;
  const inserted = await db.query<{ name: string; version: number }>(
    `insert into cairn.observation_types (name, version, entity, policies, json_schema, description)
     select * from ${input}
     on conflict (name, version) do nothing
     returning name, version`,
    params,
  );
  // A separate statement, so rows a concurrent registrar committed meanwhile are compared too.
  const differing = await db.query<{ name: string; version: number; differences: string[] }>(
    `select t.name, t.version,
            array_remove(array[case when t.entity <> u.entity then 'entity' end,
                               case when t.policies <> u.policies then 'policies' end,
                               case when t.json_schema <> u.json_schema then 'json_schema' end], null) as differences
     from ${input}
     join cairn.observation_types t on t.name = u.name and t.version = u.version
     where t.entity <> u.entity or t.policies <> u.policies or t.json_schema <> u.json_schema
     order by t.name, t.version`,
    params,
  );
  const first = differing.rows[0];
  if (first) throw new ObservationTypeConflictError(`${first.name}@${first.version}`, first.differences);
  return { registered: inserted.rows.map((r) => `${r.name}@${r.version}`) };
}

function isRegistry(
  types: ObservationTypeRegistry | Iterable<ObservationType>,
): types is ObservationTypeRegistry {
  return typeof (types as Partial<ObservationTypeRegistry>).all === 'function';
}
