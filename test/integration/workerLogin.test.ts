/**
 * The login docker-compose.yml gives the worker (its init script, run here against the real
 * server): a non-superuser, NOINHERIT member of cairn_app. Through createPool it works like the
 * application; with SET ROLE NONE it can do nothing at all (a superuser login could do anything).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Client, escapeIdentifier } from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { ObservationTypeRegistry, defineObservationType } from '../../src/shared/observationTypes';
import { appendObservations } from '../../src/store/observations/append';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { createPool } from '../../src/store/pool';
import { withScope } from '../../src/store/scope';
import { testDatabase, type TestDatabase } from '../helpers/database';

const note = defineObservationType({
  name: 'login.note',
  version: 1,
  entity: 'note',
  fields: { text: z.string() },
});
const registry = new ObservationTypeRegistry([note]);

// Roles are cluster-wide: a name of this run's own, dropped at the end.
const login = `cairn_worker_${randomBytes(4).toString('hex')}`;
let db: TestDatabase;

/** The compose init script with the worker's role name replaced by this run's. */
function initScript(): string {
  const compose = parse(readFileSync(path.join(__dirname, '..', '..', 'docker-compose.yml'), 'utf8')) as {
    configs: Record<string, { content: string }>;
  };
  // Compose turns `$$` into `$` when it renders the file.
  return compose.configs['cairn-worker-login']!.content.replaceAll('$$', '$').replaceAll(
    'cairn_worker',
    login,
  );
}

beforeAll(async () => {
  db = await testDatabase();
  await registerObservationTypes(db.pool, registry);
  await db.adminPool.query(initScript());
});
afterAll(async () => {
  await db?.drop();
  // The role outlives the database: drop it from the server's maintenance database.
  const url = new URL(db.url);
  url.pathname = '/postgres';
  const server = new Client({ connectionString: url.toString() });
  await server.connect();
  try {
    await server.query(`drop role if exists ${escapeIdentifier(login)}`);
  } finally {
    await server.end();
  }
});

function urlAs(user: string): string {
  const url = new URL(db.url);
  url.username = user;
  url.password = 'cairn_worker';
  return url.toString();
}

it('works as the application through createPool, and has no privileges of its own', async () => {
  const pool = createPool(urlAs(login), { max: 2 });
  try {
    const [stored] = await withScope(pool, { read: ['global'], write: ['global'] }, (c) =>
      appendObservations(
        c,
        registry,
        [
          {
            entityType: 'note',
            entityId: `n-${randomUUID()}`,
            type: 'login.note',
            fields: { text: 'hi' },
            scope: 'global',
          },
        ],
        {
          provenance: {
            taskKey: 't',
            workflowId: 'wf',
            runId: 'r',
            activityId: 'a',
            attempt: 1,
            agentId: 'a',
            role: 'r',
          },
          idempotencyPrefix: `login:${randomUUID()}`,
          observedAt: new Date().toISOString(),
        },
      ),
    );
    expect(stored?.entityVersion).toBe(1);
    // The login itself, outside Cairn's pool (which puts every statement under cairn_app): no
    // superuser, no BYPASSRLS, and once it drops the role it holds no privileges at all.
    const c = new Client({ connectionString: urlAs(login) });
    await c.connect();
    try {
      const who = await c.query<{ r: boolean; s: boolean }>(
        `select rolsuper as s, rolbypassrls as r from pg_roles where rolname = session_user`,
      );
      expect(who.rows[0]).toEqual({ s: false, r: false });
      await c.query('set role none');
      await expect(c.query('select count(*) from cairn.observations')).rejects.toMatchObject({
        code: '42501',
      });
      await expect(c.query(`update cairn.claims set token = token`)).rejects.toMatchObject({ code: '42501' });
    } finally {
      await c.end();
    }
  } finally {
    await pool.end();
  }
});
