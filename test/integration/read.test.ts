import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { entityCommand } from '../../src/cli/commands/entity';
import { logCommand } from '../../src/cli/commands/log';
import type { CliContext } from '../../src/cli/command';
import { loadConfig } from '../../src/config';
import { VersionNotReachedError } from '../../src/shared/errors';
import type { EntityRef } from '../../src/shared/observation';
import { ObservationTypeRegistry, defineObservationType } from '../../src/shared/observationTypes';
import { policyResolverFor, reduceEntity } from '../../src/shared/reducer';
import { appendObservations, type AppendContext, type AppendItem } from '../../src/store/observations/append';
import { listObservations } from '../../src/store/observations/list';
import {
  getEntityHistory,
  getEntityState,
  getEntityVersion,
  storedPolicyResolver,
} from '../../src/store/observations/read';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { testDatabase, type TestDatabase } from '../helpers/database';

const profile = defineObservationType({
  name: 'company.profile',
  version: 1,
  entity: 'company',
  fields: {
    name: z.string().optional(),
    employees: z.number().int().optional(),
    tags: z.array(z.string()).optional(),
    hq: z.string().optional(),
  },
  policies: { employees: 'max', tags: 'set-union' },
});
const registry = new ObservationTypeRegistry([profile]);
const policyOf = policyResolverFor(registry);

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
  await registerObservationTypes(db.pool, registry);
});
afterAll(async () => {
  await db?.drop();
});

let calls = 0;
type Prov = Partial<AppendContext['provenance']>;
async function append(
  ref: EntityRef,
  fieldsList: Record<string, unknown>[],
  prov: Prov = {},
  extra: Partial<AppendItem> = {},
) {
  calls++;
  const ctx: AppendContext = {
    provenance: {
      taskKey: 'task-1',
      workflowId: 'wf-1',
      runId: 'run-1',
      activityId: `${calls}`,
      attempt: 1,
      agentId: 'agent-1',
      role: 'researcher',
      ...prov,
    },
    idempotencyPrefix: `read-test:${calls}:${randomUUID()}`,
    observedAt: new Date().toISOString(),
  };
  const items = fieldsList.map((fields) => ({ ...ref, type: 'company.profile', fields, ...extra }));
  return appendObservations(db.pool, registry, items, ctx);
}

const company = (id: string): EntityRef => ({
  entityType: 'company',
  entityId: `${id}-${randomUUID().slice(0, 8)}`,
});

async function fullHistory(ref: EntityRef) {
  return getEntityHistory(db.pool, ref, { limit: 10_000 });
}

describe('getEntityState', () => {
  it('reduces the current state, equal to a full fold of the history', async () => {
    const ref = company('acme');
    await append(
      ref,
      [
        { name: 'Acme', employees: 10, tags: ['a'] },
        { employees: 7, tags: ['b'] },
      ],
      { agentId: 'agent-1' },
    );
    await append(ref, [{ name: 'Acme Corp', employees: 12, hq: 'Berlin' }], {
      agentId: 'agent-2',
      role: 'analyst',
    });

    const state = await getEntityState(db.pool, policyOf, ref);
    expect(state.version).toBe(3);
    expect(state.fields.name?.value).toBe('Acme Corp');
    expect(state.fields.name?.winner).toMatchObject({
      agentId: 'agent-2',
      role: 'analyst',
      entityVersion: 3,
    });
    expect(state.fields.employees?.value).toBe(12);
    expect(state.fields.employees?.contested.map((c) => c.value)).toEqual([7, 10]);
    expect(state.fields.tags?.value).toEqual(['a', 'b']);
    expect(state).toStrictEqual(reduceEntity(ref, await fullHistory(ref), policyOf));
  });

  it('returns the empty state for an entity without observations', async () => {
    const ref = company('nobody');
    expect(await getEntityState(db.pool, policyOf, ref)).toStrictEqual({
      ...ref,
      version: 0,
      fields: {},
      retracted: {},
    });
    expect(await getEntityVersion(db.pool, ref)).toBe(0);
  });

  it('reads refs whose text needs quoting as themselves; a NUL in a ref is refused by Postgres as before', async () => {
    // The current-state read on the pool carries the ref as SQL literals (queryInline).
    for (const id of [`o'brien`, `back\\slash'; select 1; --`, `ü$$ \\' e'x`]) {
      const ref = company(id);
      await append(ref, [{ name: ref.entityId }]);
      const state = await getEntityState(db.pool, policyOf, ref);
      expect(state).toMatchObject({ ...ref, version: 1, fields: { name: { value: ref.entityId } } });
    }
    await expect(getEntityState(db.pool, policyOf, company('nul\0id'))).rejects.toMatchObject({
      code: '22021',
    });
  });

  it('reads as of a version', async () => {
    const ref = company('versions');
    await append(ref, [{ hq: 'Paris' }, { hq: 'Lyon' }, { hq: 'Nice' }]);
    const history = await fullHistory(ref);
    for (const v of [0, 1, 2, 3]) {
      const state = await getEntityState(db.pool, policyOf, ref, { asOfVersion: v });
      expect(state.version).toBe(v);
      expect(state).toStrictEqual(reduceEntity(ref, history, policyOf, { upToVersion: v }));
    }
    await expect(getEntityState(db.pool, policyOf, ref, { asOfVersion: 4 })).rejects.toBeInstanceOf(
      VersionNotReachedError,
    );
  });

  it('reads as of a time: the last version recorded at or before it', async () => {
    const ref = company('times');
    const before = new Date(Date.now() - 60_000);
    const first = await append(ref, [{ hq: 'Oslo' }, { hq: 'Bergen' }]);
    await new Promise((r) => setTimeout(r, 20));
    const second = await append(ref, [{ hq: 'Tromsø' }]);

    const atFirst = await getEntityState(db.pool, policyOf, ref, { asOfTime: first[1]!.recordedAt });
    expect(atFirst.version).toBe(2);
    expect(atFirst.fields.hq?.value).toBe('Bergen');
    // Microsecond precision is kept when the time is given as the database's ISO string.
    const oneMicroBefore = second[0]!.recordedAt.replace(
      /(\d{6})Z$/,
      (_m, us: string) => `${String(Number(us) - 1).padStart(6, '0')}Z`,
    );
    if (!second[0]!.recordedAt.endsWith('000000Z'))
      expect((await getEntityState(db.pool, policyOf, ref, { asOfTime: oneMicroBefore })).version).toBe(2);
    expect((await getEntityState(db.pool, policyOf, ref, { asOfTime: second[0]!.recordedAt })).version).toBe(
      3,
    );
    expect((await getEntityState(db.pool, policyOf, ref, { asOfTime: new Date() })).version).toBe(3);
    expect((await getEntityState(db.pool, policyOf, ref, { asOfTime: before })).version).toBe(0);
  });

  it('minVersion: returns at once when reached, waits for a concurrent append, times out otherwise', async () => {
    const ref = company('raw');
    await append(ref, [{ hq: 'Rome' }]);
    expect((await getEntityState(db.pool, policyOf, ref, { minVersion: 1 })).version).toBe(1);

    // Fail fast by default: one check of the head, no poll. (Counted rather than timed: a loaded
    // machine can take a second over one query, and a wait of any length would check again.)
    const queries = vi.spyOn(db.pool, 'query');
    const headChecks = () =>
      queries.mock.calls.filter(([q]) => String(q).startsWith('select version from cairn.entity_heads'))
        .length;
    try {
      await expect(getEntityState(db.pool, policyOf, ref, { minVersion: 2 })).rejects.toMatchObject({
        name: 'VersionNotReachedError',
        minVersion: 2,
        currentVersion: 1,
      });
      expect(headChecks()).toBe(1);
    } finally {
      queries.mockRestore();
    }

    // It sees the append at its next check (the polls back off to 250 ms), not at the end of the
    // wait: well under half of waitMs, a bound no loaded machine comes near (5 s could be).
    const started = Date.now();
    const waiting = getEntityState(db.pool, policyOf, ref, { minVersion: 2, waitMs: 50_000 });
    await new Promise((r) => setTimeout(r, 150));
    await append(ref, [{ hq: 'Milan' }]);
    const state = await waiting;
    expect(state.version).toBe(2);
    expect(state.fields.hq?.value).toBe('Milan');
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(Date.now() - started).toBeLessThan(25_000);

    const t0 = Date.now();
    const err = await getEntityState(db.pool, policyOf, ref, { minVersion: 5, waitMs: 200 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(VersionNotReachedError);
    expect(err).toMatchObject({ code: 'CairnVersionNotReached', minVersion: 5, currentVersion: 2 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
  });

  it('refuses contradictory or malformed options', async () => {
    const ref = company('opts');
    await expect(
      getEntityState(db.pool, policyOf, ref, { asOfVersion: 1, asOfTime: new Date() }),
    ).rejects.toThrow(/not both/);
    await expect(getEntityState(db.pool, policyOf, ref, { minVersion: -1 })).rejects.toThrow(RangeError);
    await expect(getEntityState(db.pool, policyOf, ref, { asOfVersion: 1.5 })).rejects.toThrow(RangeError);
  });

  it('reduces with the policies stored in cairn.observation_types', async () => {
    const ref = company('stored');
    await append(ref, [{ employees: 50 }, { employees: 5 }, { name: 'x' }]);
    const stored = await storedPolicyResolver(db.pool);
    expect(stored('company.profile', 1, 'employees')).toBe('max');
    // Never a guess: what the stored types do not declare is unknown (the reducer refuses it).
    expect(stored('company.profile', 1, 'constructor')).toBeUndefined();
    expect(stored('unknown.type', 1, 'a')).toBeUndefined();
    expect(await getEntityState(db.pool, stored, ref, { writeSnapshots: false })).toStrictEqual(
      await getEntityState(db.pool, policyOf, ref),
    );
  });
});

describe('getEntityHistory', () => {
  it('returns stored observations in version order, with ranges and limits', async () => {
    const ref = company('history');
    await append(ref, [{ hq: 'a' }, { hq: 'b' }, { hq: 'c' }, { hq: 'd' }, { hq: 'e' }], {
      agentId: 'hist-agent',
      workflowId: 'wf-h',
      runId: 'run-h',
    });
    const all = await getEntityHistory(db.pool, ref);
    expect(all.map((o) => o.entityVersion)).toEqual([1, 2, 3, 4, 5]);
    expect(all.map((o) => o.fields.hq)).toEqual(['a', 'b', 'c', 'd', 'e']);
    const first = all[0]!;
    expect(typeof first.seq).toBe('number');
    expect(first.provenance).toMatchObject({
      agentId: 'hist-agent',
      workflowId: 'wf-h',
      runId: 'run-h',
      derivedFrom: [],
    });
    expect(first.recordedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(first.prevHash).toBe('');
    expect(all[1]!.prevHash).toBe(first.chainHash);

    expect(
      (await getEntityHistory(db.pool, ref, { fromVersion: 2, toVersion: 4 })).map((o) => o.entityVersion),
    ).toEqual([2, 3, 4]);
    expect(
      (await getEntityHistory(db.pool, ref, { fromVersion: 4, limit: 10 })).map((o) => o.entityVersion),
    ).toEqual([4, 5]);
    expect((await getEntityHistory(db.pool, ref, { limit: 2 })).map((o) => o.entityVersion)).toEqual([1, 2]);
    await expect(getEntityHistory(db.pool, ref, { limit: 0 })).rejects.toThrow(RangeError);
  });
});

describe('listObservations', () => {
  const task = `list-${randomUUID()}`;
  const a = company('list-a');
  const b = company('list-b');
  let ids: string[] = [];
  let middle = '';

  beforeAll(async () => {
    const first = await append(a, [{ hq: 'x' }, { hq: 'y' }], {
      taskKey: task,
      agentId: 'lister-1',
      role: 'scout',
    });
    await new Promise((r) => setTimeout(r, 20));
    const second = await append(b, [{ hq: 'z' }], { taskKey: task, agentId: 'lister-2', role: 'analyst' });
    middle = second[0]!.recordedAt;
    await new Promise((r) => setTimeout(r, 20));
    const third = await append(
      a,
      [{}],
      { taskKey: task, agentId: 'lister-2', role: 'analyst' },
      { kind: 'retraction', targetId: first[0]!.id },
    );
    ids = [...first, ...second, ...third].map((o) => o.id);
  });

  it('filters by task, agent, role, entity, type, kind and time, in seq order', async () => {
    const byTask = await listObservations(db.pool, { taskKey: task });
    expect(byTask.map((o) => o.id)).toEqual(ids);
    expect(byTask.map((o) => o.seq)).toEqual([...byTask.map((o) => o.seq)].sort((x, y) => x - y));
    expect(
      (await listObservations(db.pool, { taskKey: task, agentId: 'lister-2' })).map((o) => o.id),
    ).toEqual(ids.slice(2));
    expect((await listObservations(db.pool, { taskKey: task, role: 'scout' })).map((o) => o.id)).toEqual(
      ids.slice(0, 2),
    );
    expect(
      (await listObservations(db.pool, { entityType: a.entityType, entityId: a.entityId })).map((o) => o.id),
    ).toEqual([ids[0], ids[1], ids[3]]);
    expect(
      (await listObservations(db.pool, { taskKey: task, type: 'company.profile', kind: 'retraction' })).map(
        (o) => o.id,
      ),
    ).toEqual([ids[3]]);
    expect(await listObservations(db.pool, { taskKey: task, type: 'other.type' })).toEqual([]);
    expect((await listObservations(db.pool, { taskKey: task, since: middle })).map((o) => o.id)).toEqual(
      ids.slice(2),
    );
    expect((await listObservations(db.pool, { taskKey: task, until: middle })).map((o) => o.id)).toEqual(
      ids.slice(0, 2),
    );
  });

  it('pages by seq (keyset) through exactly the rows of one unpaged listing', async () => {
    const seen: string[] = [];
    let afterSeq: number | undefined;
    for (;;) {
      const page = await listObservations(db.pool, {
        taskKey: task,
        limit: 1,
        ...(afterSeq === undefined ? {} : { afterSeq }),
      });
      if (page.length === 0) break;
      expect(page).toHaveLength(1);
      seen.push(page[0]!.id);
      afterSeq = page[0]!.seq;
    }
    expect(seen).toEqual(ids);
    await expect(listObservations(db.pool, { limit: 10_001 })).rejects.toThrow(RangeError);
    expect(await listObservations(db.pool, { limit: 10_000, afterSeq: 0 })).not.toHaveLength(0);
  });
});

describe('CLI: entity and log', () => {
  function cli() {
    const out: string[] = [];
    const err: string[] = [];
    const ctx: CliContext = {
      config: () => loadConfig({ DATABASE_URL: db.url }),
      io: { out: (l) => out.push(l), err: (l) => err.push(l) },
      root: process.cwd(),
    };
    return { ctx, out, err };
  }

  it('cairn entity prints a table, as of a version, and JSON', async () => {
    const ref = company('cli');
    await append(
      ref,
      [
        { name: 'One', employees: 3 },
        { name: 'Two', employees: 2 },
      ],
      { agentId: 'cli-agent', role: 'scout' },
    );
    const arg = `${ref.entityType}/${ref.entityId}`;

    const table = cli();
    expect(await entityCommand.run([arg], table.ctx)).toBe(0);
    const text = table.out.join('\n');
    expect(text).toContain(`${arg}  version 2`);
    expect(text).toMatch(/employees\s+3\s+max\s+cli-agent \(scout\)\s+v1\s+1/);
    expect(text).toMatch(/name\s+"Two"\s+last-writer-wins\s+cli-agent \(scout\)\s+v2\s+1/);

    const asOf = cli();
    expect(await entityCommand.run([arg, '--as-of', '1'], asOf.ctx)).toBe(0);
    expect(asOf.out.join('\n')).toMatch(/version 1 {2}\(as of 1\)/);

    const json = cli();
    expect(await entityCommand.run([arg, '--json'], json.ctx)).toBe(0);
    expect(JSON.parse(json.out.join('\n'))).toStrictEqual(await getEntityState(db.pool, policyOf, ref));

    await expect(entityCommand.run([arg, '--min-version', '9'], cli().ctx)).rejects.toBeInstanceOf(
      VersionNotReachedError,
    );
    await expect(entityCommand.run(['no-slash'], cli().ctx)).rejects.toMatchObject({ name: 'UsageError' });
    await expect(entityCommand.run([arg, '--bogus'], cli().ctx)).rejects.toMatchObject({
      name: 'UsageError',
    });
  });

  it('cairn log filters and prints JSON', async () => {
    const ref = company('cli-log');
    const task = `cli-log-${randomUUID()}`;
    await append(ref, [{ hq: 'a' }, { hq: 'b' }], { taskKey: task, agentId: 'log-agent' });
    const table = cli();
    expect(await logCommand.run(['--task', task], table.ctx)).toBe(0);
    expect(table.out.join('\n')).toContain(`${ref.entityType}/${ref.entityId}@2`);
    const json = cli();
    expect(await logCommand.run(['--task', task, '--limit', '1', '--json'], json.ctx)).toBe(0);
    const listed = JSON.parse(json.out.join('\n')) as { entityVersion: number }[];
    expect(listed.map((o) => o.entityVersion)).toEqual([1]);
    await expect(logCommand.run(['--kind', 'nonsense'], cli().ctx)).rejects.toMatchObject({
      name: 'UsageError',
    });
  });
});
