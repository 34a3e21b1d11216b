import { describe, it, expect } from 'vitest';
import { z } from 'zod';
import {
  ObservationTypeRegistry,
  defineObservationType,
  describeObservationType,
} from '../../src/shared/observationTypes';
import type { FieldPolicy } from '../../src/shared/observation';

const profileV1 = defineObservationType({
  name: 'company.profile',
  version: 1,
  entity: 'company',
  fields: {
    name: z.string(),
    employees: z.number().int().nonnegative().optional(),
    tags: z.array(z.string()).optional(),
  },
  policies: { employees: 'max', tags: 'set-union' },
  description: 'What we know about a company',
});
const profileV2 = defineObservationType({
  name: 'company.profile',
  version: 2,
  entity: 'company',
  fields: {
    name: z.string().optional(),
    headcount: z.number().int().optional(),
    tags: z.array(z.string()).optional(),
  },
  policies: { tags: 'last-writer-wins' },
  defaultPolicy: 'first-writer-wins',
});

describe('defineObservationType', () => {
  it('rejects bad names', () => {
    for (const name of [
      '',
      'Company',
      'company..profile',
      '1company',
      'company.',
      'company-profile',
      'company profile',
    ]) {
      expect(() => defineObservationType({ name, version: 1, entity: 'company', fields: {} }), name).toThrow(
        /dotted lower-case/,
      );
    }
  });

  it('rejects bad versions', () => {
    for (const version of [0, -1, 1.5, NaN, Infinity]) {
      expect(() => defineObservationType({ name: 'x', version, entity: 'x', fields: {} })).toThrow(
        /x: version must be an integer >= 1/,
      );
    }
  });

  it('rejects a policy for an undeclared field, including one named like an Object.prototype member', () => {
    const policies = { nope: 'max' } as Partial<Record<'a', FieldPolicy>>;
    expect(() =>
      defineObservationType({ name: 'x', version: 1, entity: 'x', fields: { a: z.number() }, policies }),
    ).toThrow(/policy for undeclared field "nope"/);
    const sneaky = { toString: 'max' } as Partial<Record<'a', FieldPolicy>>;
    expect(() =>
      defineObservationType({
        name: 'x',
        version: 1,
        entity: 'x',
        fields: { a: z.number() },
        policies: sneaky,
      }),
    ).toThrow(/undeclared field "toString"/);
  });

  it('rejects unknown policies', () => {
    const policies = { a: 'newest' as FieldPolicy };
    expect(() =>
      defineObservationType({ name: 'x', version: 1, entity: 'x', fields: { a: z.number() }, policies }),
    ).toThrow(/unknown policy newest/);
    expect(() =>
      defineObservationType({
        name: 'x',
        version: 1,
        entity: 'x',
        fields: { a: z.number() },
        defaultPolicy: 'oldest' as FieldPolicy,
      }),
    ).toThrow(/unknown policy oldest/);
  });

  it('fills in the default policy, also for fields named like Object.prototype members', () => {
    expect(profileV1.policies).toStrictEqual({
      name: 'last-writer-wins',
      employees: 'max',
      tags: 'set-union',
    });
    expect(profileV2.policies).toStrictEqual({
      name: 'first-writer-wins',
      headcount: 'first-writer-wins',
      tags: 'last-writer-wins',
    });
    const odd = defineObservationType({
      name: 'odd',
      version: 1,
      entity: 'x',
      fields: { constructor: z.string(), toString: z.number() },
      policies: { toString: 'min' } as unknown as Partial<Record<'toString' | 'constructor', FieldPolicy>>,
    });
    expect(odd.policies).toEqual({ constructor: 'last-writer-wins', toString: 'min' });
    expect(profileV1.key).toBe('company.profile@1');
    expect(profileV2.description).toBe('');
  });
});

describe('strict schemas', () => {
  it('accept declared fields and reject undeclared ones, naming them', () => {
    expect(profileV1.schema.parse({ name: 'Acme', employees: 12 })).toStrictEqual({
      name: 'Acme',
      employees: 12,
    });
    const extra = profileV1.schema.safeParse({ name: 'Acme', headcount: 12 });
    expect(extra.success).toBe(false);
    expect(extra.error?.issues[0]).toMatchObject({ code: 'unrecognized_keys', keys: ['headcount'] });
  });

  it('report invalid values with the field path', () => {
    const bad = profileV1.schema.safeParse({ name: 'Acme', employees: -1 });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.path).toStrictEqual(['employees']);
  });
});

describe('ObservationTypeRegistry', () => {
  it('finds the latest version by name, whatever the registration order', () => {
    for (const order of [
      [profileV1, profileV2],
      [profileV2, profileV1],
    ]) {
      const registry = new ObservationTypeRegistry(order);
      expect(registry.get('company.profile')).toBe(profileV2);
      expect(registry.get('company.unknown')).toBeUndefined();
    }
  });

  it('keeps old versions readable', () => {
    const registry = new ObservationTypeRegistry([profileV1, profileV2]);
    expect(registry.get('company.profile', 1)).toBe(profileV1);
    expect(registry.get('company.profile', 3)).toBeUndefined();
    // A row written under v1 still validates against v1, though v2 dropped `employees`.
    expect(registry.get('company.profile', 1)?.schema.safeParse({ name: 'Acme', employees: 3 }).success).toBe(
      true,
    );
    expect(registry.get('company.profile')?.schema.safeParse({ name: 'Acme', employees: 3 }).success).toBe(
      false,
    );
    expect(registry.all()).toHaveLength(2);
  });

  it('refuses a different type under a registered key, but re-registering the same one is fine', () => {
    const registry = new ObservationTypeRegistry([profileV1]);
    expect(() => registry.register(profileV1)).not.toThrow();
    const clash = defineObservationType({
      name: 'company.profile',
      version: 1,
      entity: 'company',
      fields: {},
    });
    expect(() => registry.register(clash)).toThrow(/company.profile@1 is already registered/);
  });

  it('resolves policies per schema version, and never guesses one for what it does not know', () => {
    const registry = new ObservationTypeRegistry([profileV1, profileV2]);
    expect(registry.policyOf('company.profile', 1, 'tags')).toBe('set-union');
    expect(registry.policyOf('company.profile', 2, 'tags')).toBe('last-writer-wins');
    expect(registry.policyOf('company.profile', 2, 'headcount')).toBe('first-writer-wins');
    // Unknown: undefined, so readers use the stored policies (never a last-writer-wins guess).
    expect(registry.policyOf('company.profile', 1, 'undeclared')).toBeUndefined();
    expect(registry.policyOf('company.unknown', 1, 'tags')).toBeUndefined();
    // Not Object.prototype.toString / constructor.
    expect(registry.policyOf('company.profile', 1, 'toString')).toBeUndefined();
    expect(registry.policyOf('company.profile', 1, 'constructor')).toBeUndefined();
  });
});

describe('describeObservationType', () => {
  it('produces a JSON description with a JSON Schema of the fields', () => {
    const d = describeObservationType(profileV1);
    expect(JSON.parse(JSON.stringify(d))).toStrictEqual(d);
    expect(d).toMatchObject({
      name: 'company.profile',
      version: 1,
      entity: 'company',
      description: 'What we know about a company',
      policies: profileV1.policies,
    });
    expect(d.policies).not.toBe(profileV1.policies);
    expect(d.jsonSchema).toMatchObject({
      type: 'object',
      required: ['name'],
      additionalProperties: false,
      properties: { name: { type: 'string' }, tags: { type: 'array' } },
    });
  });

  it('still describes a type whose schema has parts JSON Schema cannot express', () => {
    const odd = defineObservationType({
      name: 'odd',
      version: 1,
      entity: 'x',
      fields: { when: z.date(), big: z.bigint(), n: z.number() },
    });
    const d = describeObservationType(odd);
    expect(JSON.parse(JSON.stringify(d))).toStrictEqual(d);
    expect(JSON.stringify(d.jsonSchema)).toContain('"n"');
  });
});
