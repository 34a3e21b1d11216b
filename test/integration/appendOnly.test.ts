/**
 * The database itself refuses to rewrite the log: the application role lacks the privileges,
 * and even the owner (a superuser here) is stopped by the triggers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineObservationType, ObservationTypeRegistry } from '../../src/shared/observationTypes';
import { appendObservations, type AppendContext } from '../../src/store/observations/append';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { testDatabase, type TestDatabase } from '../helpers/database';

const note = defineObservationType({
  name: 'memo.note',
  version: 1,
  entity: 'memo',
  fields: { text: z.string() },
});
const registry = new ObservationTypeRegistry([note]);
const ctx: AppendContext = {
  provenance: {
    taskKey: 'task-1',
    workflowId: 'wf-1',
    runId: 'run-1',
    activityId: '1',
    attempt: 1,
    agentId: 'a',
    role: 'writer',
  },
  idempotencyPrefix: 'wf-1:1',
  observedAt: '2025-01-31T12:00:00.000Z',
};
const APPEND_ONLY = 'cairn.observations is append-only; write a correction or retraction instead';

let db: TestDatabase;
let snapshot: unknown[];

async function rows(): Promise<unknown[]> {
  return (await db.adminPool.query('select * from cairn.observations order by seq')).rows as unknown[];
}

beforeAll(async () => {
  db = await testDatabase();
  await registerObservationTypes(db.pool, registry);
  await appendObservations(
    db.pool,
    registry,
    [
      { entityType: 'memo', entityId: 'm1', type: 'memo.note', fields: { text: 'first' } },
      { entityType: 'memo', entityId: 'm1', type: 'memo.note', fields: { text: 'second' } },
    ],
    ctx,
  );
  snapshot = await rows();
  expect(snapshot).toHaveLength(2);
});

afterAll(async () => {
  await db?.drop();
});

describe('as the application role', () => {
  it('runs as cairn_app, and RESET ROLE does not escape to the login', async () => {
    const client = await db.pool.connect();
    try {
      expect((await client.query('select current_user as u')).rows).toEqual([{ u: 'cairn_app' }]);
      await client.query('reset role');
      expect((await client.query('select current_user as u')).rows).toEqual([{ u: 'cairn_app' }]);
    } finally {
      client.release();
    }
  });

  it.each([
    ['UPDATE', `update cairn.observations set fields = '{"text":"rewritten"}'`],
    ['DELETE', 'delete from cairn.observations'],
    ['TRUNCATE', 'truncate cairn.observations'],
    // Only cairn.append_observations writes the log, so its invariants cannot be bypassed.
    ['INSERT', `insert into cairn.observations (entity_type) values ('memo')`],
    ['UPDATE of a head', 'update cairn.entity_heads set version = 0'],
  ])('%s is refused for lack of privilege', async (_what, sql) => {
    await expect(db.pool.query(sql)).rejects.toMatchObject({
      code: '42501',
      message: expect.stringMatching(/^permission denied for table/),
    });
    expect(await rows()).toEqual(snapshot);
  });
});

describe('as the owner (superuser, no SET ROLE)', () => {
  it('really is a superuser', async () => {
    expect(
      (await db.adminPool.query('select rolsuper from pg_roles where rolname = current_user')).rows,
    ).toEqual([{ rolsuper: true }]);
  });

  it.each([
    ['UPDATE', `update cairn.observations set fields = '{"text":"rewritten"}'`],
    ['DELETE', 'delete from cairn.observations where entity_version = 2'],
    ['TRUNCATE', 'truncate cairn.observations'],
  ])('%s is refused by the append-only trigger', async (what, sql) => {
    await expect(db.adminPool.query(sql)).rejects.toMatchObject({
      code: 'CN003',
      message: APPEND_ONLY,
      detail: `refused ${what}`,
    });
    expect(await rows()).toEqual(snapshot);
  });

  it('cannot forge a row whose hash chain does not link', async () => {
    const [row] = snapshot as { content_hash: string }[];
    await expect(
      db.adminPool.query(
        `insert into cairn.observations (entity_type, entity_id, entity_version, type, schema_version, kind, fields, scope,
           task_key, workflow_id, run_id, activity_id, attempt, agent_id, role, observed_at, idempotency_key,
           content_hash, prev_hash, chain_hash)
         values ('memo', 'm1', 3, 'memo.note', 1, 'assertion', '{}', 'task', 't', 'w', 'r', 'a', 1, 'x', 'y', now(), 'forged',
           $1, 'whatever', 'not-the-hash')`,
        [row!.content_hash],
      ),
    ).rejects.toMatchObject({ code: '23514', constraint: 'observations_chain_link' });
    expect(await rows()).toEqual(snapshot);
  });
});
