/**
 * Scopes, enforced by Postgres (migration NNN_scopes): row-level security on reads, a trigger on
 * appends, one scope per entity. Proved through raw SQL as the application role as well as
 * through the store's functions.
 */
import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Pool, PoolClient } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { IdempotencyConflictError, ScopeDeniedError, VersionNotReachedError } from '../../src/shared/errors';
import type { EntityRef } from '../../src/shared/observation';
import { ObservationTypeRegistry, defineObservationType } from '../../src/shared/observationTypes';
import { policyResolverFor } from '../../src/shared/reducer';
import type { ScopeGrant } from '../../src/shared/scopes';
import { DEFAULT_MIGRATIONS_DIR, migrate, readMigrations } from '../../src/store/migrate';
import { appendObservations, type AppendContext, type AppendItem } from '../../src/store/observations/append';
import { listObservations } from '../../src/store/observations/list';
import { getEntityState } from '../../src/store/observations/read';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { SNAPSHOT_EVERY } from '../../src/store/observations/snapshots';
import { createPool, withTransaction } from '../../src/store/pool';
import { entityScope, readEntityInScope, scopeErrorFrom, withScope } from '../../src/store/scope';
import { createEmptyDatabase, createTestDatabase, type TestDatabase } from '../helpers/database';

const note = defineObservationType({
  name: 'scope.note',
  version: 1,
  entity: 'note',
  fields: { text: z.string() },
});
const registry = new ObservationTypeRegistry([note]);
const policyOf = policyResolverFor(registry);

let db: TestDatabase;
/** The application role with no session grant: what a worker's pool is. */
let appPool: Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  appPool = createPool(db.url, { max: 4, applicationName: 'cairn-test-scoped' });
  await registerObservationTypes(db.pool, registry);
});

afterAll(async () => {
  await appPool?.end();
  await db?.drop();
});

const run = randomUUID().slice(0, 8);
const ref = (id: string): EntityRef => ({ entityType: 'note', entityId: `${id}-${run}` });
let calls = 0;
function ctx(taskKey: string, role = 'writer'): AppendContext {
  calls++;
  return {
    provenance: {
      taskKey,
      workflowId: `wf-${taskKey}`,
      runId: 'run',
      activityId: `a${calls}`,
      attempt: 1,
      agentId: 'agent',
      role,
    },
    idempotencyPrefix: `scopes:${run}:${calls}`,
    observedAt: new Date().toISOString(),
  };
}
const item = (r: EntityRef, text: string, scope?: string): AppendItem => ({
  ...r,
  type: 'scope.note',
  fields: { text },
  ...(scope !== undefined ? { scope } : {}),
});

/** Raw SQL as the application role: SET ROLE cairn_app plus the settings, on the login's own connection. */
async function asApp<T>(
  settings: { read?: string; write?: string },
  fn: (c: PoolClient) => Promise<T>,
): Promise<T> {
  return withTransaction(db.adminPool, async (c) => {
    await c.query('set local role cairn_app');
    if (settings.read !== undefined)
      await c.query("select set_config('cairn.read_scopes', $1, true)", [settings.read]);
    if (settings.write !== undefined)
      await c.query("select set_config('cairn.write_scopes', $1, true)", [settings.write]);
    return fn(c);
  });
}

/** One observation through cairn.append_observations (the batch entry point), as raw SQL. */
function rawAppend(c: PoolClient, r: EntityRef, scope: string, taskKey: string, key = randomUUID()) {
  return c.query(
    `select idx, entity_version, replayed from cairn.append_observations(
       array[$1], array[$2], array['scope.note'], array[1], array['assertion'], array['{"text":"raw"}']::jsonb[],
       array[$3], array['{}'], array[null]::jsonb[], array[null]::uuid[], array[null]::int[], array[$4],
       array[repeat('ab', 32)], array[now()], $5, 'wf', 'run', 'act', 1, 'agent', 'writer')`,
    [r.entityType, r.entityId, scope, key, taskKey],
  );
}

// Seed: one entity per scope, written with the helper pool's explicit all-scopes grant.
const t1 = `t1-${run}`;
const t2 = `t2-${run}`;
const seed = {
  task1: ref('task1'),
  task2: ref('task2'),
  research: ref('research'),
  finance: ref('finance'),
  global: ref('global'),
};
beforeAll(async () => {
  await appendObservations(db.pool, registry, [item(seed.task1, 'mine')], ctx(t1));
  await appendObservations(db.pool, registry, [item(seed.task2, 'theirs')], ctx(t2));
  await appendObservations(
    db.pool,
    registry,
    [item(seed.research, 'team', 'team:research'), item(seed.research, 'again', 'team:research')],
    ctx(t1),
  );
  await appendObservations(db.pool, registry, [item(seed.finance, 'money', 'team:finance')], ctx(t2));
  await appendObservations(db.pool, registry, [item(seed.global, 'everyone', 'global')], ctx(t2));
});

const seededIds = () => Object.values(seed).map((r) => r.entityId);
async function visibleEntities(c: PoolClient, table: 'observations' | 'entity_heads'): Promise<string[]> {
  const { rows } = await c.query<{ entity_id: string }>(
    `select distinct entity_id from cairn.${table} where entity_id = any($1) order by entity_id`,
    [seededIds()],
  );
  return rows.map((r) => r.entity_id);
}
const sorted = (...refs: EntityRef[]) => refs.map((r) => r.entityId).sort();

describe('reads: row-level security for the application role', () => {
  it('with no read setting the application role sees no rows at all', async () => {
    await asApp({}, async (c) => {
      expect((await c.query('select count(*)::int as n from cairn.observations')).rows[0].n).toBe(0);
      expect((await c.query('select count(*)::int as n from cairn.entity_heads')).rows[0].n).toBe(0);
      expect((await c.query('select count(*)::int as n from cairn.entity_snapshots')).rows[0].n).toBe(0);
    });
    // The same through the store, on a pool without a session grant.
    expect(await listObservations(appPool, { limit: 10_000 })).toEqual([]);
    // An entity read does not pass that off as "no observations yet": it names the fix.
    const err = await getEntityState(appPool, policyOf, seed.global).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScopeDeniedError);
    expect(err).toMatchObject({ reason: 'no-grant', access: 'read', role: 'cairn_app' });
    expect((err as Error).message).toContain(`createPool(url, { scopes: 'all' })`);
    // An explicit grant, even an empty one, is a deliberate choice: no error, just nothing.
    await asApp({ read: '{}' }, async (c) => {
      expect((await getEntityState(c, policyOf, seed.global)).version).toBe(0);
    });
  });

  it('SELECT * FROM cairn.observations returns only the granted scopes (bare `task` rows count as their task’s)', async () => {
    await asApp({ read: `{task:${t1},global}` }, async (c) => {
      expect(await visibleEntities(c, 'observations')).toEqual(sorted(seed.task1, seed.global));
      expect(await visibleEntities(c, 'entity_heads')).toEqual(sorted(seed.task1, seed.global));
      const { rows } = await c.query<{ scope: string }>(
        'select distinct scope from cairn.observations where entity_id = any($1)',
        [seededIds()],
      );
      expect(rows.map((r) => r.scope).sort()).toEqual(['global', 'task']);
    });
    await asApp({ read: '{team:research,team:finance}' }, async (c) => {
      expect(await visibleEntities(c, 'observations')).toEqual(sorted(seed.finance, seed.research));
    });
  });

  it('an explicit all-scopes grant sees everything; so does the owner acting as itself', async () => {
    const all = sorted(...Object.values(seed));
    await asApp({ read: '{*}' }, async (c) => expect(await visibleEntities(c, 'observations')).toEqual(all));
    const c = await db.adminPool.connect();
    try {
      expect(await visibleEntities(c, 'observations')).toEqual(all);
    } finally {
      c.release();
    }
  });

  it('snapshots are visible, storable and deletable only with the entity’s scope', async () => {
    const big = ref('big');
    const items = Array.from({ length: SNAPSHOT_EVERY }, (_, i) => item(big, `v${i + 1}`));
    await appendObservations(db.pool, registry, items, ctx(t1));
    const mine: ScopeGrant = { read: [`task:${t1}`], write: [] };
    const stats = { snapshotVersion: 0, folded: 0, snapshotsWritten: 0 };
    await withScope(appPool, mine, (c) => getEntityState(c, policyOf, big, { stats }));
    expect(stats.snapshotsWritten).toBe(1);
    await withScope(appPool, mine, async (c) => {
      expect(
        (
          await c.query('select count(*)::int as n from cairn.entity_snapshots where entity_id = $1', [
            big.entityId,
          ])
        ).rows[0].n,
      ).toBe(1);
    });
    await withScope(appPool, { read: [`task:${t2}`], write: [] }, async (c) => {
      expect(
        (
          await c.query('select count(*)::int as n from cairn.entity_snapshots where entity_id = $1', [
            big.entityId,
          ])
        ).rows[0].n,
      ).toBe(0);
      // Deleting what it cannot see deletes nothing.
      expect(
        (await c.query('delete from cairn.entity_snapshots where entity_id = $1', [big.entityId])).rowCount,
      ).toBe(0);
    });
    // Storing a snapshot of an entity outside the grant violates the policy.
    await expect(
      withScope(appPool, { read: [`task:${t2}`], write: [] }, (c) =>
        c.query(
          `insert into cairn.entity_snapshots (entity_type, entity_id, version, state) values ('note', $1, 1, '{}')`,
          [seed.task1.entityId],
        ),
      ),
    ).rejects.toMatchObject({ code: '42501' });
  });
});

describe('writes: the trigger on the log', () => {
  it('an append through cairn.append_observations outside the write grant is refused, naming role, scope and grant', async () => {
    const r = ref('raw-denied');
    const err = await asApp({ write: `{task:${t1}}` }, (c) => rawAppend(c, r, 'team:finance', t1)).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      code: 'CNS01',
      message: `role writer may not write scope team:finance (granted: task:${t1})`,
    });
    expect(await entityScope(db.pool, r)).toBeNull();
    // Inside the grant it is written.
    const ok = await asApp({ write: `{task:${t1}}` }, (c) => rawAppend(c, r, `task:${t1}`, t1));
    expect(ok.rows).toEqual([{ idx: 0, entity_version: 1, replayed: false }]);
  });

  it('with no write setting the application role writes nothing; the owner acting as itself is not bound', async () => {
    const err = await asApp({}, (c) => rawAppend(c, ref('raw-nogrant'), `task:${t1}`, t1)).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      code: 'CNS01',
      message: `role writer may not write scope task:${t1} (no write scopes granted)`,
    });
    await expect(
      appendObservations(appPool, registry, [item(ref('pool-nogrant'), 'x')], ctx(t1)),
    ).rejects.toMatchObject({ code: 'CNS01' });
    // Maintenance: a superuser (or the owner) without SET ROLE.
    const c = await db.adminPool.connect();
    try {
      expect((await rawAppend(c, ref('raw-owner'), 'global', t1)).rows).toHaveLength(1);
    } finally {
      c.release();
    }
  });

  it('an entity belongs to the scope of its first observation, even for an all-scopes writer', async () => {
    const r = ref('one-scope');
    await appendObservations(db.pool, registry, [item(r, 'first', 'team:research')], ctx(t1));
    expect(await entityScope(db.pool, r)).toBe('team:research');
    const err = await appendObservations(db.pool, registry, [item(r, 'moved', 'global')], ctx(t1)).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      code: 'CNS02',
      message: `${r.entityType}/${r.entityId} belongs to scope team:research; role writer cannot append to it in scope global`,
    });
    // A batch that starts a new entity in two scopes is refused whole.
    const fresh = ref('two-scopes');
    const batch = await appendObservations(
      db.pool,
      registry,
      [item(fresh, 'a', 'global'), item(fresh, 'b', 'team:research')],
      ctx(t1),
    ).catch((e: unknown) => e);
    expect(batch).toMatchObject({ code: 'CNS02' });
    expect(await entityScope(db.pool, fresh)).toBeNull();
    // Bare `task` is the writer's task: another task's default scope is another scope.
    const taskEntity = ref('task-default');
    await appendObservations(db.pool, registry, [item(taskEntity, 'mine')], ctx(t1));
    await expect(
      appendObservations(db.pool, registry, [item(taskEntity, 'also mine')], ctx(t1)),
    ).resolves.toHaveLength(1);
    await expect(
      appendObservations(db.pool, registry, [item(taskEntity, 'yours')], ctx(t2)),
    ).rejects.toMatchObject({ code: 'CNS02' });
  });

  it('a name that is not a scope is refused', async () => {
    const err = await appendObservations(
      db.pool,
      registry,
      [item(ref('bad-name'), 'x', 'team')],
      ctx(t1),
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CNS03', message: expect.stringMatching(/"team" is not a scope/) });
  });

  it('a replay needs no write grant (it writes nothing), only the right to read what it replays', async () => {
    const r = ref('replayed');
    const c = ctx(t1);
    const [first] = await appendObservations(db.pool, registry, [item(r, 'once')], c);
    const again = await withScope(appPool, { read: [`task:${t1}`], write: [] }, (client) =>
      appendObservations(client, registry, [item(r, 'once')], c),
    );
    expect(again).toMatchObject([{ id: first!.id, replayed: true }]);
    // Without the read grant the key is taken, and which observation holds it is not said.
    const err = await appendObservations(appPool, registry, [item(r, 'once')], c).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdempotencyConflictError);
    expect((err as Error).message).not.toContain(first!.id);
  });
});

describe('withScope and scoped reads', () => {
  const mine: ScopeGrant = { read: [`task:${t1}`, 'global'], write: [`task:${t1}`] };

  it('bounds every query of the transaction; its grant replaces a session’s all-scopes grant', async () => {
    for (const pool of [appPool, db.pool]) {
      const seen = await withScope(pool, mine, async (c) =>
        (await listObservations(c, { limit: 10_000 })).map((o) => o.entityId),
      );
      expect(seen).toContain(seed.task1.entityId);
      expect(seen).toContain(seed.global.entityId);
      expect(seen).not.toContain(seed.task2.entityId);
      expect(seen).not.toContain(seed.research.entityId);
      const err = await withScope(pool, mine, (c) =>
        appendObservations(c, registry, [item(ref('ws'), 'x', 'team:research')], ctx(t1)),
      ).catch((e: unknown) => e);
      expect(scopeErrorFrom(err)).toMatchObject({
        reason: 'not-granted',
        access: 'write',
        role: 'writer',
        scope: 'team:research',
        granted: [`task:${t1}`],
      });
    }
    // The settings end with the transaction.
    expect(await listObservations(appPool, { limit: 10 })).toEqual([]);
  });

  it('an entity of another scope is refused by name, not read as empty', async () => {
    const state = await readEntityInScope(appPool, mine, 'reader', policyOf, seed.task1);
    expect(state.fields.text?.value).toBe('mine');
    const err = await readEntityInScope(appPool, mine, 'reader', policyOf, seed.task2).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ScopeDeniedError);
    expect(err).toMatchObject({
      reason: 'not-granted',
      access: 'read',
      entityScope: `task:${t2}`,
      message: `role reader may not read note/${seed.task2.entityId}: it belongs to scope task:${t2} (granted: task:${t1}, global)`,
    });
    // Waiting for a version of it is refused the same way, not after the wait.
    const waited = await readEntityInScope(appPool, mine, 'reader', policyOf, seed.task2, {
      minVersion: 1,
      waitMs: 50,
    }).catch((e: unknown) => e);
    expect(waited).toBeInstanceOf(ScopeDeniedError);
    // A new entity is simply empty, and a real wait on it still times out as before.
    expect((await readEntityInScope(appPool, mine, 'reader', policyOf, ref('nobody'))).version).toBe(0);
    await expect(
      readEntityInScope(appPool, mine, 'reader', policyOf, ref('nobody'), { minVersion: 1, waitMs: 20 }),
    ).rejects.toBeInstanceOf(VersionNotReachedError);
  });
});

describe('migration', () => {
  it('backfills each existing entity’s scope from its first observation', async () => {
    const files = await readMigrations();
    const scopes = files.find((f) => f.name.endsWith('_scopes'))!;
    const dir = mkdtempSync(path.join(tmpdir(), 'cairn-before-scopes-'));
    for (const f of files.filter((f) => f.version < scopes.version))
      copyFileSync(path.join(DEFAULT_MIGRATIONS_DIR, `${f.name}.sql`), path.join(dir, `${f.name}.sql`));
    const empty = await createEmptyDatabase();
    const owner = createPool(empty.url, { max: 2, applicationRole: null });
    try {
      await migrate(empty.url, { migrationsDir: dir });
      await registerObservationTypes(owner, registry);
      const a = ref('old-a');
      const b = ref('old-b');
      await appendObservations(owner, registry, [item(a, '1'), item(a, '2')], ctx('old-task'));
      await appendObservations(owner, registry, [item(b, '1', 'team:research')], ctx('old-task'));
      await migrate(empty.url);
      const { rows } = await owner.query<{ entity_id: string; scope: string }>(
        'select entity_id, scope from cairn.entity_heads order by entity_id',
      );
      expect(rows).toEqual([
        { entity_id: a.entityId, scope: 'task:old-task' },
        { entity_id: b.entityId, scope: 'team:research' },
      ]);
    } finally {
      await owner.end();
      await empty.drop();
    }
  });
});
