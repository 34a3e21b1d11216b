/**
 * The pool pipelines (src/store/pool.ts): a lone statement's BEGIN + role, the statement and
 * COMMIT go out together, and a transaction's BEGIN travels with its first statement. What must
 * still hold: nothing runs as the login, each lone statement is a transaction of its own, a
 * failure leaves the connection outside any transaction with the right error, and a scoped
 * transaction's first statement already sees its grant.
 */
import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, withTransaction } from '../../src/store/pool';
import { withScope } from '../../src/store/scope';
import { testDatabase, type TestDatabase } from '../helpers/database';

let db: TestDatabase;
let one: pg.Pool;

beforeAll(async () => {
  db = await testDatabase();
  // One connection, so every statement below shares it and its state.
  one = createPool(db.url, { max: 1, applicationName: 'cairn-test-pipeline', scopes: 'all' });
  await db.adminPool.query('create table public.pipeline_probe (id int primary key)');
  await db.adminPool.query('grant select, insert on public.pipeline_probe to cairn_app');
});

afterAll(async () => {
  await one?.end();
  await db?.drop();
});

const txid = 'select pg_catalog.txid_current()::text as tx, current_user::text as u';

describe('lone statements, pipelined', () => {
  it('each runs as cairn_app in a transaction of its own, even when sent without waiting', async () => {
    const client = await one.connect();
    try {
      const results = await Promise.all(
        Array.from({ length: 10 }, () => client.query<{ tx: string; u: string }>(txid)),
      );
      expect(results.map((r) => r.rows[0]?.u)).toEqual(Array(10).fill('cairn_app'));
      expect(new Set(results.map((r) => r.rows[0]?.tx)).size).toBe(10);
      expect(client.getTransactionStatus()).toBe('I');
    } finally {
      client.release();
    }
  });

  it('a failing statement throws its own error, writes nothing and leaves no transaction open', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.boolean(), { minLength: 1, maxLength: 12 }), async (fails) => {
        await db.adminPool.query('truncate public.pipeline_probe');
        const client = await one.connect();
        try {
          const outcomes = await Promise.allSettled(
            fails.map((fail, i) =>
              client.query(
                fail
                  ? // A duplicate key after its own insert: the insert must roll back with it.
                    `insert into public.pipeline_probe values (${1000 + i}), (${1000 + i})`
                  : `insert into public.pipeline_probe values (${i})`,
              ),
            ),
          );
          outcomes.forEach((o, i) => {
            if (fails[i]) expect(o).toMatchObject({ status: 'rejected', reason: { code: '23505' } });
            else expect(o.status).toBe('fulfilled');
          });
          expect(client.getTransactionStatus()).toBe('I');
        } finally {
          client.release();
        }
        const { rows } = await db.adminPool.query<{ id: number }>(
          'select id from public.pipeline_probe order by id',
        );
        expect(rows.map((r) => r.id)).toEqual(fails.flatMap((f, i) => (f ? [] : [i])));
      }),
      { numRuns: 20 },
    );
  });

  it('a role that cannot be set fails the statement: it never runs as the login', async () => {
    const bad = createPool(db.url, { max: 1, applicationRole: 'cairn_no_such_role' });
    try {
      await expect(bad.query('select current_user')).rejects.toMatchObject({ code: '22023' });
      await expect(bad.query('create table public.should_not_exist (x int)')).rejects.toMatchObject({
        code: '22023',
      });
      const { rows } = await db.adminPool.query(`select to_regclass('public.should_not_exist') as t`);
      expect(rows).toEqual([{ t: null }]);
    } finally {
      await bad.end();
    }
  });
});

describe('transactions with a pipelined BEGIN', () => {
  it('withTransaction: every statement is in the one transaction; a failure rolls all of it back', async () => {
    await db.adminPool.query('truncate public.pipeline_probe');
    const txs = await withTransaction(one, async (c) => {
      const a = await c.query<{ tx: string; u: string }>(txid);
      await c.query('insert into public.pipeline_probe values (1)');
      const b = await c.query<{ tx: string; u: string }>(txid);
      return [a.rows[0], b.rows[0]];
    });
    expect(txs[0]).toEqual(txs[1]);
    expect(txs[0]?.u).toBe('cairn_app');
    await expect(
      withTransaction(one, async (c) => {
        await c.query('insert into public.pipeline_probe values (2)');
        await c.query('insert into public.pipeline_probe values (1)');
      }),
    ).rejects.toMatchObject({ code: '23505' });
    const { rows } = await db.adminPool.query<{ id: number }>(
      'select id from public.pipeline_probe order by id',
    );
    expect(rows).toEqual([{ id: 1 }]);
  });

  it("withScope: the first statement already runs under the transaction's grant", async () => {
    const seen = await withScope(one, { read: ['task:t1', 'global'], write: ['task:t1'] }, async (c) => {
      const { rows } = await c.query<{ r: string; w: string; u: string }>(
        `select current_setting('cairn.read_scopes') as r, current_setting('cairn.write_scopes') as w,
                current_user::text as u`,
      );
      return rows[0];
    });
    expect(seen).toEqual({ r: '{"task:t1","global"}', w: '{"task:t1"}', u: 'cairn_app' });
    // Transaction-local: the next lone statement has the pool's all-scopes grant again.
    const { rows } = await one.query<{ r: string }>(`select current_setting('cairn.read_scopes') as r`);
    expect(rows).toEqual([{ r: '{*}' }]);
  });

  it('withScope with a role that cannot be set throws the setup error, not a later one', async () => {
    const bad = createPool(db.url, { max: 1, applicationRole: 'cairn_no_such_role' });
    try {
      await expect(
        withScope(bad, { read: ['global'], write: [] }, (c) => c.query('select current_user')),
      ).rejects.toMatchObject({ code: '22023' });
    } finally {
      await bad.end();
    }
  });
});
