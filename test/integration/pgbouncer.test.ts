/**
 * Cairn behind PgBouncer in transaction pooling mode: each transaction may land on any server
 * connection, and the startup packet's options are not carried, so the role and the scope
 * settings must be set per transaction. Debian's pgbouncer is started here on a private port in
 * front of the test's Postgres, with ONE server connection so that every client's transactions
 * share it (a leak of a session setting would show).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineObservationType, ObservationTypeRegistry } from '../../src/shared/observationTypes';
import { claim } from '../../src/store/claims';
import { appendObservations, type AppendContext } from '../../src/store/observations/append';
import { getEntityState } from '../../src/store/observations/read';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { createPool, withTransaction } from '../../src/store/pool';
import { readEntityInScope, withScope } from '../../src/store/scope';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

const PGBOUNCER_CANDIDATES = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer'];

const note = defineObservationType({
  name: 'bouncer.note',
  version: 1,
  entity: 'memo',
  fields: { text: z.string() },
});
const registry = new ObservationTypeRegistry([note]);
const policyOf = (type: string, v: number, field: string) => registry.policyOf(type, v, field);

let db: TestDatabase;
let dir: string;
let bouncer: ChildProcess | undefined;
let bouncerUrl: string;
const pools: Pool[] = [];

function pool(opts: Parameters<typeof createPool>[1] = {}): Pool {
  const p = createPool(bouncerUrl, { max: 3, ...opts });
  pools.push(p);
  return p;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

let calls = 0;
function ctx(taskKey = 'task-b'): AppendContext {
  calls++;
  return {
    provenance: {
      taskKey,
      workflowId: 'wf-b',
      runId: 'run',
      activityId: `a${calls}`,
      attempt: 1,
      agentId: 'a',
      role: 'writer',
    },
    idempotencyPrefix: `bouncer:${calls}`,
    observedAt: new Date().toISOString(),
  };
}

beforeAll(async () => {
  const binary = PGBOUNCER_CANDIDATES.find((p) => existsSync(p));
  if (!binary)
    throw new Error(
      `pgbouncer is not installed (looked in ${PGBOUNCER_CANDIDATES.join(', ')}); install Debian's package: apt-get install -y pgbouncer`,
    );
  db = await createTestDatabase();
  await registerObservationTypes(db.pool, registry);
  const server = new URL(db.url);
  const port = await freePort();
  dir = await mkdtemp(path.join(tmpdir(), 'cairn-pgbouncer-'));
  // pgbouncer refuses to run as root: -u drops to nobody, who must read the config.
  await chmod(dir, 0o755);
  await writeFile(path.join(dir, 'userlist.txt'), `"${decodeURIComponent(server.username)}" ""\n`);
  await writeFile(
    path.join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `${db.name} = host=${server.hostname} port=${server.port || 5432} dbname=${db.name}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'userlist.txt')}`,
      'pool_mode = transaction',
      // One server connection: every client's transactions share it.
      'default_pool_size = 1',
      'max_client_conn = 50',
      'ignore_startup_parameters = extra_float_digits',
      '',
    ].join('\n'),
  );
  const args = [path.join(dir, 'pgbouncer.ini')];
  if (process.getuid?.() === 0) args.unshift('-u', 'nobody');
  const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  bouncer = proc;
  let output = '';
  proc.stdout.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (output += d.toString()));
  server.port = String(port);
  bouncerUrl = server.toString();
  // Ready when a query answers through it.
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`pgbouncer exited with ${proc.exitCode}: ${output}`);
    const probe = createPool(bouncerUrl, { max: 1, applicationRole: null, connectTimeoutMs: 500 });
    try {
      await probe.query('select 1');
      break;
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`pgbouncer did not answer on ${port}: ${String(err)}\n${output}`);
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await probe.end();
    }
  }
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(pools.map((p) => p.end()));
  if (bouncer && bouncer.exitCode === null) {
    const exited = new Promise((r) => bouncer?.once('exit', r));
    bouncer.kill('SIGTERM');
    await exited;
  }
  if (dir) await rm(dir, { recursive: true, force: true });
  await db?.drop();
});

describe('behind PgBouncer in transaction mode', () => {
  it('runs every statement as cairn_app, the first one of a fresh pool included', async () => {
    const p = pool({ scopes: 'all' });
    const users = await Promise.all(
      Array.from({ length: 6 }, () =>
        p.query<{ u: string; s: string }>('select current_user as u, session_user as s'),
      ),
    );
    for (const r of users) expect(r.rows).toEqual([{ u: 'cairn_app', s: 'root' }]);
    // A checked-out client: a lone statement, and a statement after COMMIT, are still the role's.
    const c = await p.connect();
    try {
      expect((await c.query('select current_user as u')).rows).toEqual([{ u: 'cairn_app' }]);
      await c.query('begin');
      expect((await c.query('select current_user as u')).rows).toEqual([{ u: 'cairn_app' }]);
      await c.query('commit');
      expect((await c.query('select current_user as u')).rows).toEqual([{ u: 'cairn_app' }]);
      // The role's grants hold: the log is not the application's to rewrite.
      await expect(c.query('delete from cairn.observations')).rejects.toMatchObject({ code: '42501' });
    } finally {
      c.release();
    }
  });

  it('appends, reads, reads in scope and claims through it', async () => {
    const p = pool({ scopes: 'all' });
    const ref = { entityType: 'memo', entityId: 'm-bouncer' };
    const appended = await appendObservations(
      p,
      registry,
      [
        { ...ref, type: 'bouncer.note', fields: { text: 'one' }, scope: 'team:research' },
        { ...ref, type: 'bouncer.note', fields: { text: 'two' }, scope: 'team:research' },
      ],
      ctx(),
    );
    expect(appended).toHaveLength(2);
    const state = await getEntityState(p, policyOf, ref);
    expect(state.version).toBe(2);
    expect(state.fields.text?.value).toBe('two');

    const scoped = pool();
    const seen = await readEntityInScope(
      scoped,
      { read: ['team:research'], write: [] },
      'reader',
      policyOf,
      ref,
    );
    expect(seen.version).toBe(2);
    await expect(
      readEntityInScope(scoped, { read: ['team:finance'], write: [] }, 'reader', policyOf, ref),
    ).rejects.toMatchObject({ name: 'ScopeDeniedError', scope: 'team:research' });

    const first = await claim(p, 'doc/bouncer', { holder: 'A', ttlMs: 10_000 });
    expect(first).toMatchObject({ granted: true, token: 1, holder: 'A' });
    const second = await claim(p, 'doc/bouncer', { holder: 'B', ttlMs: 10_000 });
    expect(second).toMatchObject({ granted: false });
  });

  it('serves several client connections sharing one server connection (no named prepared statements collide)', async () => {
    // Each pool is its own client connection; PgBouncer hands all of them the one server
    // connection. A named statement prepared by one client would exist there for the next
    // ("already exists") or be missing for its own next transaction on another server connection.
    const clients = [pool({ scopes: 'all' }), pool({ scopes: 'all' }), pool({ scopes: 'all' })];
    for (let round = 0; round < 2; round++) {
      for (const [i, p] of clients.entries()) {
        const ref = { entityType: 'memo', entityId: `m-shared-${i}` };
        await appendObservations(
          p,
          registry,
          [{ ...ref, type: 'bouncer.note', fields: { text: `r${round}` } }],
          ctx(),
        );
        await appendObservations(
          p,
          registry,
          [
            { ...ref, type: 'bouncer.note', fields: { text: `a${round}` } },
            { ...ref, type: 'bouncer.note', fields: { text: `b${round}` } },
          ],
          ctx(),
        );
        const c = await claim(p, `doc/shared-${i}-${round}`, { holder: `H${i}`, ttlMs: 10_000 });
        expect(c).toMatchObject({ granted: true });
        expect((await getEntityState(p, policyOf, ref)).version).toBe(3 * (round + 1));
      }
    }
  });

  it('does not leak one transaction’s scope into another client’s transaction on the same server connection', async () => {
    const scoped = pool();
    const bare = pool();
    const ref = { entityType: 'memo', entityId: 'm-leak' };
    await appendObservations(
      pool({ scopes: 'all' }),
      registry,
      [{ ...ref, type: 'bouncer.note', fields: { text: 'secret' }, scope: 'team:finance' }],
      ctx(),
    );
    const inScope = await withScope(
      scoped,
      { read: ['team:finance'], write: ['team:finance'] },
      async (c) => {
        const r = await c.query<{ pid: number; n: number; read: string }>(
          `select pg_backend_pid() as pid, current_setting('cairn.read_scopes') as read,
                (select count(*)::int from cairn.observations where entity_id = 'm-leak') as n`,
        );
        return r.rows[0]!;
      },
    );
    expect(inScope).toMatchObject({ n: 1, read: '{"team:finance"}' });
    // Another client, same (single) server connection: no scope, no rows, no role left over.
    const after = await withTransaction(bare, async (c) => {
      const r = await c.query<{ pid: number; n: number; read: string | null; u: string }>(
        `select pg_backend_pid() as pid, nullif(current_setting('cairn.read_scopes', true), '') as read, current_user as u,
                (select count(*)::int from cairn.observations where entity_id = 'm-leak') as n`,
      );
      return r.rows[0]!;
    });
    expect(after).toEqual({ pid: inScope.pid, read: null, u: 'cairn_app', n: 0 });
    // And the login, through the same connection, is itself again: SET LOCAL ended with the transaction.
    const login = pool({ applicationRole: null });
    expect((await login.query('select current_user as u, pg_backend_pid() as pid')).rows).toEqual([
      { u: 'root', pid: inScope.pid },
    ]);
  });
});
