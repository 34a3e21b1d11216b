/**
 * The read set a step's view records, without a database: which fields count as read, and
 * what the defaults of dependsOnReads are.
 */
import { describe, expect, it } from 'vitest';
import { ReadTracker } from '../../activities/readTracking';
import type { EntityState, FieldState } from '../../src/shared/entityState';
import type { EntityRef } from '../../src/shared/observation';
import { resolveDependsOnReads } from '../../src/shared/readSets';

const field = (value: string): FieldState => ({
  value,
  policy: 'last-writer-wins',
  winner: { observationId: 'o1', entityVersion: 1, agentId: 'a', role: 'r', kind: 'assertion' },
  corrected: false,
  contested: [],
});

function fakeTracker(version = 3) {
  return new ReadTracker({
    policyOf: () => 'last-writer-wins',
    read: async (ref: EntityRef): Promise<EntityState> => ({
      ...ref,
      version,
      fields: { hq: field('Berlin'), ceo: field('Ada'), toString: field('odd name') },
      retracted: {},
    }),
    withDb: () => Promise.reject(new Error('no database in unit tests')),
  });
}
const acme = { entityType: 'company', entityId: 'acme' };

describe('ReadTracker', () => {
  it('records the fields the agent reads, present or absent, and not the ones it does not', async () => {
    const t = fakeTracker();
    const s = await t.entity(acme);
    expect(s.fields.hq?.value).toBe('Berlin');
    expect(s.fields.missing).toBeUndefined();
    expect('ceo' in s.fields).toBe(true);
    const odd: string = 'toString';
    expect(s.fields[odd]?.value).toBe('odd name'); // a field, even with a prototype's name
    expect(t.entries()).toEqual([
      { entityType: 'company', entityId: 'acme', version: 3, fields: ['ceo', 'hq', 'missing', 'toString'] },
    ]);
  });

  it('records every field when the agent enumerates or serializes them', async () => {
    for (const use of [
      (s: EntityState) => Object.keys(s.fields),
      (s: EntityState) => Object.values(s.fields),
      (s: EntityState) => JSON.stringify(s),
      (s: EntityState) => ({ ...s.fields }),
    ]) {
      const t = fakeTracker();
      use(await t.entity(acme));
      expect(t.entries()[0]!.fields).toBeNull();
    }
  });

  it('does not count a JSON walk or a promise check of the state as field reads', async () => {
    const t = fakeTracker();
    const s = await t.entity(acme);
    await Promise.resolve(s.fields);
    expect(t.entries()[0]!.fields).toEqual([]);
  });

  it('with `fields`, returns and records exactly those', async () => {
    const t = fakeTracker();
    const s = await t.entity(acme, { fields: ['hq', 'founded'] });
    expect(Object.keys(s.fields)).toEqual(['hq']);
    expect(t.entries()[0]!.fields).toEqual(['founded', 'hq']);
  });

  it('keeps one entry per entity version, uniting fields', async () => {
    const t = fakeTracker();
    void (await t.entity(acme)).fields.hq;
    void (await t.entity(acme)).fields.ceo;
    expect(t.entries()).toEqual([
      { entityType: 'company', entityId: 'acme', version: 3, fields: ['ceo', 'hq'] },
    ]);
  });
});

describe('dependsOnReads defaults', () => {
  it('is strict for decisions and off for the rest, unless the type or the item says otherwise', () => {
    expect(resolveDependsOnReads({ kind: 'decision', type: 't' })).toBe('strict');
    expect(resolveDependsOnReads({ kind: 'assertion', type: 't' })).toBe('off');
    expect(resolveDependsOnReads({ type: 't' })).toBe('off');
    expect(resolveDependsOnReads({ kind: 'assertion', type: 't' }, { t: 'warn' })).toBe('warn');
    expect(resolveDependsOnReads({ kind: 'decision', type: 't', dependsOnReads: 'off' }, { t: 'warn' })).toBe(
      'off',
    );
    expect(() => resolveDependsOnReads({ type: 't', dependsOnReads: 'maybe' as 'off' })).toThrow(
      /strict, warn, off/,
    );
  });
});
