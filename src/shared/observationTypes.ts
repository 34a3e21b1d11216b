/**
 * Observation types: `defineObservationType` declares a versioned zod schema for an
 * observation's fields and the write-ordering policy of each field. A registry holds them and
 * validates appends strictly: unknown types and undeclared fields are rejected.
 * Sandbox-safe (zod only), so workflows can reduce with the same definitions.
 */
import { z } from 'zod';
import { FIELD_POLICIES, type FieldPolicy, type Json } from './observation';

export interface ObservationTypeSpec<Shape extends z.ZodRawShape> {
  /** Dotted name, e.g. `company.profile`. */
  name: string;
  /** Schema version, starting at 1. Old versions stay registered and readable. */
  version: number;
  /** The entity type the observations are about, e.g. `company`. */
  entity: string;
  /** The fields, as a zod shape. Every field is optional in an append unless the schema says otherwise. */
  fields: Shape;
  /** Per-field policy; fields not listed use `defaultPolicy`. */
  policies?: Partial<Record<keyof Shape & string, FieldPolicy>>;
  /** Policy for fields not listed in `policies` (default: last-writer-wins). */
  defaultPolicy?: FieldPolicy;
  description?: string;
}

/**
 * A typed handle on an observation type: what agents append with and read by
 * (`ctx.append(companyProfile, 'acme', { headquarters: 'Berlin' })`). Its `Shape` carries the
 * fields' types, so a misspelt field or a wrong value type is a compile error.
 */
export interface ObservationType<Shape extends z.ZodRawShape = z.ZodRawShape> {
  readonly name: string;
  readonly version: number;
  readonly entity: string;
  readonly schema: z.ZodObject<Shape, z.core.$strict>;
  readonly policies: Readonly<Record<string, FieldPolicy>>;
  readonly description: string;
  /** `name@version`, the registry key. */
  readonly key: string;
}

/** The fields an append of `T` takes: the schema's input (optional fields may be left out). */
export type FieldsInput<T extends ObservationType> = z.input<T['schema']>;
/** The fields of `T` as stored and read back: the schema's output. */
export type FieldsOutput<T extends ObservationType> = z.output<T['schema']>;
/** The fields of several types of one entity (a read that looks at fields of each), merged. */
export type MergedFieldsOutput<Ts extends readonly ObservationType[]> = UnionToIntersection<
  FieldsOutput<Ts[number]>
>;
type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void
  ? I
  : never;

const typeNameSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/, 'must be dotted lower-case words, e.g. company.profile');

export function defineObservationType<Shape extends z.ZodRawShape>(
  spec: ObservationTypeSpec<Shape>,
): ObservationType<Shape> {
  typeNameSchema.parse(spec.name);
  if (!Number.isInteger(spec.version) || spec.version < 1) {
    throw new Error(`observation type ${spec.name}: version must be an integer >= 1`);
  }
  const defaultPolicy = spec.defaultPolicy ?? 'last-writer-wins';
  const policies: Record<string, FieldPolicy> = {};
  for (const field of Object.keys(spec.fields)) {
    // Own properties only: a field named e.g. `constructor` must not pick up Object.prototype's.
    const listed =
      spec.policies !== undefined && Object.hasOwn(spec.policies, field)
        ? spec.policies[field as keyof Shape & string]
        : undefined;
    const policy = listed ?? defaultPolicy;
    if (!FIELD_POLICIES.includes(policy))
      throw new Error(`observation type ${spec.name}: unknown policy ${String(policy)}`);
    policies[field] = policy;
  }
  for (const field of Object.keys(spec.policies ?? {})) {
    if (!Object.hasOwn(spec.fields, field))
      throw new Error(`observation type ${spec.name}: policy for undeclared field "${field}"`);
  }
  return {
    name: spec.name,
    version: spec.version,
    entity: spec.entity,
    schema: z.object(spec.fields).strict(),
    policies,
    description: spec.description ?? '',
    key: `${spec.name}@${spec.version}`,
  };
}

const REGISTRY_MARKER = Symbol.for('@cairn-memory/cairn:ObservationTypeRegistry');

/** A set of observation types; looks up by name and version (latest when no version is given). */
export class ObservationTypeRegistry {
  /** A registry made by another copy of the package (an agent module's own) is one too. */
  static [Symbol.hasInstance](value: unknown): boolean {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[REGISTRY_MARKER] === true
    );
  }

  private readonly byKey = new Map<string, ObservationType>();
  private readonly latest = new Map<string, ObservationType>();

  constructor(types: Iterable<ObservationType> = []) {
    for (const t of types) this.register(t);
  }

  register(type: ObservationType): this {
    const existing = this.byKey.get(type.key);
    if (existing && existing !== type) throw new Error(`observation type ${type.key} is already registered`);
    this.byKey.set(type.key, type);
    const cur = this.latest.get(type.name);
    if (!cur || cur.version < type.version) this.latest.set(type.name, type);
    return this;
  }

  get(name: string, version?: number): ObservationType | undefined {
    return version === undefined ? this.latest.get(name) : this.byKey.get(`${name}@${version}`);
  }

  all(): ObservationType[] {
    return [...this.byKey.values()];
  }

  /**
   * The policy of a field for a stored observation; undefined for a type@version or field this
   * registry does not know (never a guess: readers then use the stored policies, see read.ts).
   */
  policyOf(type: string, schemaVersion: number, field: string): FieldPolicy | undefined {
    const policies = this.byKey.get(`${type}@${schemaVersion}`)?.policies;
    // Own properties only, so a field named `toString` is not resolved to a function.
    return policies !== undefined && Object.hasOwn(policies, field) ? policies[field] : undefined;
  }
}

/** A JSON-safe description of a type, stored in Postgres so any reader knows the schema. */
export function describeObservationType(t: ObservationType): {
  name: string;
  version: number;
  entity: string;
  policies: Record<string, FieldPolicy>;
  jsonSchema: Json;
  description: string;
} {
  let jsonSchema: Json;
  try {
    jsonSchema = z.toJSONSchema(t.schema, { unrepresentable: 'any' }) as Json;
  } catch {
    jsonSchema = { note: 'schema not representable as JSON Schema', fields: Object.keys(t.schema.shape) };
  }
  return {
    name: t.name,
    version: t.version,
    entity: t.entity,
    policies: { ...t.policies },
    jsonSchema,
    description: t.description,
  };
}

Object.defineProperty(ObservationTypeRegistry.prototype, REGISTRY_MARKER, { value: true, enumerable: false });

/** True for a typed handle (from any copy of the package), as opposed to an entity reference. */
export function isObservationType(value: unknown): value is ObservationType {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<ObservationType>;
  return typeof v.key === 'string' && typeof v.entity === 'string' && typeof v.schema === 'object';
}
