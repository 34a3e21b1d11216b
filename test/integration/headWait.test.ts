/**
 * minVersion waits happen outside any transaction and are woken by NOTIFY on head changes
 * (migration 012), not by polling: with the fallback poll set to 30 s, a waiter still returns
 * right after the append commits, and meanwhile no connection of its pool is idle in a transaction.
 */
import type { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineObservationType, ObservationTypeRegistry } from '../../src/shared/observationTypes';
import { appendObservations, type AppendContext } from '../../src/store/observations/append';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { createPool } from '../../src/store/pool';
import { readEntityInScope } from '../../src/store/scope';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

const note = defineObservationType({
  name: 'wait.note',
  version: 1,
  entity: 'memo',
  fields: { text: z.string() },
});
const registry = new ObservationTypeRegistry([note]);
const policyOf = (type: string, v: number, field: string) => registry.policyOf(type, v, field);
const grant = { read: ['global'], write: ['global'] };

let db: TestDatabase;
const pools: Pool[] = [];
let calls = 0;
function ctx(): AppendContext {
  calls++;
  return {
    provenance: {
      taskKey: 't',
      workflowId: 'wf',
      runId: 'run',
      activityId: `a${calls}`,
      attempt: 1,
      agentId: 'a',
      role: 'w',
    },
    idempotencyPrefix: `wait:${calls}`,
    observedAt: new Date().toISOString(),
  };
}
const append = (entityId: string, text: string) =>
  appendObservations(
    db.pool,
    registry,
    [{ entityType: 'memo', entityId, type: 'wait.note', fields: { text }, scope: 'global' }],
    ctx(),
  );

beforeAll(async () => {
  db = await createTestDatabase();
  await registerObservationTypes(db.pool, registry);
});
afterAll(async () => {
  await Promise.allSettled(pools.map((p) => p.end()));
  await db?.drop();
});

async function inTransaction(app: string): Promise<number> {
  const { rows } = await db.adminPool.query<{ n: number }>(
    `select count(*)::int as n from pg_stat_activity where application_name = $1 and state like 'idle in transaction%'`,
    [app],
  );
  return rows[0]!.n;
}

describe('minVersion waits', () => {
  it('hold no transaction while waiting and wake on the append’s NOTIFY, not a poll', async () => {
    const app = `cairn-wait-${Date.now()}`;
    const pool = createPool(db.url, { max: 2, applicationName: app, headPollMaxMs: 30_000 });
    pools.push(pool);
    const ref = { entityType: 'memo', entityId: 'w1' };
    await append('w1', 'one');
    const started = Date.now();
    const read = readEntityInScope(pool, grant, 'w', policyOf, ref, { minVersion: 2, waitMs: 20_000 });
    // The checks back off 10, 20, 40 … ms: after 3 s the waiter is in a sleep of 2.56 s that
    // ends about 5.1 s after the start, so a poll could only see the append 2 s after it.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await inTransaction(app)).toBe(0);
    const { rows } = await db.adminPool.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity where application_name = 'cairn-listen' and query ilike 'LISTEN%'`,
    );
    expect(rows[0]!.n).toBeGreaterThanOrEqual(1);
    const appended = Date.now();
    await append('w1', 'two');
    const state = await read;
    expect(state.version).toBe(2);
    expect(state.fields.text?.value).toBe('two');
    // Only the notification explains a wake this soon.
    expect(Date.now() - appended).toBeLessThan(1_000);
    expect(Date.now() - started).toBeLessThan(4_500);
  });

  it('is bounded by waitMs, and polls outside transactions when LISTEN is off', async () => {
    const app = `cairn-poll-${Date.now()}`;
    const pool = createPool(db.url, { max: 2, applicationName: app, listenUrl: null });
    pools.push(pool);
    await append('w2', 'one');
    const started = Date.now();
    const late = readEntityInScope(
      pool,
      grant,
      'w',
      policyOf,
      { entityType: 'memo', entityId: 'w2' },
      { minVersion: 5, waitMs: 600 },
    );
    await expect(late).rejects.toMatchObject({ name: 'VersionNotReachedError', currentVersion: 1 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
    expect(Date.now() - started).toBeLessThan(3_000);
    const read = readEntityInScope(
      pool,
      grant,
      'w',
      policyOf,
      { entityType: 'memo', entityId: 'w2' },
      { minVersion: 2, waitMs: 10_000 },
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(await inTransaction(app)).toBe(0);
    await append('w2', 'two');
    expect((await read).version).toBe(2);
  });
});
