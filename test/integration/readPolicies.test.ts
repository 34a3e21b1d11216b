/**
 * The read policies of the log, the heads and the snapshots (migration 022's one-InitPlan form)
 * show exactly the rows migration 006's form showed, for any cairn.read_scopes setting: random
 * grants over entities of task, team and global scopes (a task-scoped log row is visible under
 * `task:<key>`), with '*', unknown scopes, duplicates, NULL elements, an empty setting and none.
 * The 006 expression is evaluated verbatim as the owner (whom RLS does not filter) in the same
 * transaction and with the same setting as the application role's SELECT.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import type { PoolClient } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { EntityRef } from '../../src/shared/observation';
import { ObservationTypeRegistry, defineObservationType } from '../../src/shared/observationTypes';
import { policyResolverFor } from '../../src/shared/reducer';
import { scopeListLiteral } from '../../src/shared/scopes';
import { appendObservations, type AppendContext, type AppendItem } from '../../src/store/observations/append';
import { getEntityState } from '../../src/store/observations/read';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { SNAPSHOT_EVERY } from '../../src/store/observations/snapshots';
import { withTransaction } from '../../src/store/pool';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

const note = defineObservationType({
  name: 'policy.note',
  version: 1,
  entity: 'pnote',
  fields: { text: z.string() },
});
const registry = new ObservationTypeRegistry([note]);
const policyOf = policyResolverFor(registry);

let db: TestDatabase;
const run = randomUUID().slice(0, 8);
const t1 = `t1-${run}`;
const t2 = `t2-${run}`;
let calls = 0;
function ctx(taskKey: string): AppendContext {
  calls++;
  return {
    provenance: {
      taskKey,
      workflowId: `wf-${taskKey}`,
      runId: 'run',
      activityId: `a${calls}`,
      attempt: 1,
      agentId: 'agent',
      role: 'writer',
    },
    idempotencyPrefix: `policies:${run}:${calls}`,
    observedAt: new Date().toISOString(),
  };
}
const ref = (id: string): EntityRef => ({ entityType: 'pnote', entityId: `${id}-${run}` });
const item = (r: EntityRef, text: string, scope?: string): AppendItem => ({
  ...r,
  type: 'policy.note',
  fields: { text },
  ...(scope !== undefined ? { scope } : {}),
});

// 006's policies, verbatim (migration 006_scopes.sql), as WHERE clauses.
const grant006 = `(select coalesce('*' = any (nullif(pg_catalog.current_setting('cairn.read_scopes', true), '')::text[]), false))`;
const list006 = `(select nullif(pg_catalog.current_setting('cairn.read_scopes', true), '')::text[])::text[]`;
const tables = {
  observations: {
    key: `id::text`,
    where006: `${grant006} or (case when scope = 'task' then 'task:' || task_key else scope end) = any (${list006})`,
  },
  entity_heads: {
    key: `entity_type || '/' || entity_id`,
    where006: `${grant006} or scope = any (${list006})`,
  },
  entity_snapshots: {
    key: `entity_type || '/' || entity_id || '@' || version`,
    where006: `${grant006} or scope = any (${list006})`,
  },
} as const;

const scopeNames = [`task:${t1}`, `task:${t2}`, 'team:research', 'global', 'task', '*', 'team:other', ''];

beforeAll(async () => {
  db = await createTestDatabase();
  await registerObservationTypes(db.pool, registry);
  await appendObservations(db.pool, registry, [item(ref('task1'), 'mine')], ctx(t1));
  await appendObservations(db.pool, registry, [item(ref('task2'), 'theirs')], ctx(t2));
  await appendObservations(db.pool, registry, [item(ref('research'), 'team', 'team:research')], ctx(t1));
  await appendObservations(db.pool, registry, [item(ref('global'), 'all', 'global')], ctx(t2));
  // Entities with snapshots (a read past SNAPSHOT_EVERY writes one): a task one and a team one.
  for (const [r, scope, task] of [
    [ref('bigTask'), undefined, t1],
    [ref('bigTeam'), 'team:research', t2],
  ] as const) {
    const items = Array.from({ length: SNAPSHOT_EVERY + 3 }, (_, i) => item(r, `n${i}`, scope));
    await appendObservations(db.pool, registry, items, ctx(task));
    await getEntityState(db.pool, policyOf, r);
  }
}, 120_000);

afterAll(async () => {
  await db?.drop();
});

/** Keys of each table's rows of this run: as the owner under 006's expression, and as cairn_app. */
async function compare(setting: string | undefined): Promise<void> {
  await withTransaction(db.adminPool, async (c: PoolClient) => {
    if (setting !== undefined) await c.query("select set_config('cairn.read_scopes', $1, true)", [setting]);
    const mine = `entity_type = 'pnote' and entity_id like '%-' || $1`;
    for (const [table, t] of Object.entries(tables)) {
      const expected = await c.query<{ k: string }>(
        `select ${t.key} as k from cairn.${table} where ${mine} and (${t.where006}) order by 1`,
        [run],
      );
      await c.query('set local role cairn_app');
      const visible = await c.query<{ k: string }>(
        `select ${t.key} as k from cairn.${table} where ${mine} order by 1`,
        [run],
      );
      await c.query('reset role');
      expect({ table, setting, keys: visible.rows.map((r) => r.k) }).toEqual({
        table,
        setting,
        keys: expected.rows.map((r) => r.k),
      });
    }
  });
}

describe('read policies (migration 022) show what 006 showed', () => {
  it('the seed has rows of every kind, snapshots included', async () => {
    const { rows } = await db.adminPool.query<{ n: string }>(
      `select count(*) as n from cairn.entity_snapshots where entity_id like '%-' || $1`,
      [run],
    );
    expect(Number(rows[0]?.n)).toBeGreaterThanOrEqual(2);
  });

  it('for fixed grants: none, empty, {}, {*}, one task, NULL elements', async () => {
    for (const setting of [
      undefined,
      '',
      '{}',
      '{*}',
      scopeListLiteral([`task:${t1}`]),
      scopeListLiteral(['team:research', 'global']),
      '{NULL}',
      `{NULL,"task:${t2}"}`,
      '{"*",NULL}',
      '{task}',
    ])
      await compare(setting);
  });

  it('for random grants', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.constant(undefined),
          fc
            .array(fc.oneof(fc.constantFrom(...scopeNames), fc.string({ maxLength: 6 })), { maxLength: 6 })
            .map((names) => scopeListLiteral(names)),
        ),
        (setting) => compare(setting),
      ),
      { numRuns: 60 },
    );
  });
});
