/**
 * The pool pipelines (src/store/pool.ts): a lone statement's BEGIN + role, the statement and
 * COMMIT go out together, and a transaction's BEGIN travels with its first statement. What must
 * still hold: nothing runs as the login, each lone statement is a transaction of its own, a
 * failure leaves the connection outside any transaction with the right error, and a scoped
 * transaction's first statement already sees its grant. queryInline (a read sent with its setup
 * in one message, no BEGIN / COMMIT) keeps the same rules.
 */
import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, inlineInt, inlineText, queryInline, withTransaction } from '../../src/store/pool';
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

describe('writes coalesced per tick', () => {
  /** Counts the socket's write dispatches (one syscall each) while `fn` runs on `client`. */
  async function writesOf(client: pg.PoolClient, fn: () => Promise<unknown>): Promise<number> {
    const socket = (client as unknown as { connection: { stream: Record<string, unknown> } }).connection
      .stream as unknown as { _write: (...a: unknown[]) => unknown; _writev: (...a: unknown[]) => unknown };
    const write = socket._write;
    const writev = socket._writev;
    let n = 0;
    socket._write = function (this: unknown, ...a: unknown[]) {
      n++;
      return write.apply(this, a);
    };
    socket._writev = function (this: unknown, ...a: unknown[]) {
      n++;
      return writev.apply(this, a);
    };
    try {
      await fn();
    } finally {
      socket._write = write;
      socket._writev = writev;
    }
    return n;
  }

  it("a lone statement's BEGIN + setup, statement and COMMIT go out in one write", async () => {
    const client = await one.connect();
    try {
      expect(await writesOf(client, () => client.query(txid))).toBe(1);
      // Two lone statements sent in the same tick: still one write, two transactions.
      let results: pg.QueryResult<{ tx: string }>[] = [];
      const n = await writesOf(client, async () => {
        results = await Promise.all([client.query<{ tx: string }>(txid), client.query<{ tx: string }>(txid)]);
      });
      expect(n).toBe(1);
      expect(results[0]!.rows[0]!.tx).not.toBe(results[1]!.rows[0]!.tx);
    } finally {
      client.release();
    }
  });

  it("withTransaction's BEGIN travels with the statements sent before the first await; COMMIT after", async () => {
    await db.adminPool.query('truncate public.pipeline_probe');
    const client = await one.connect();
    client.release();
    // The pool hands out the same client (max 1): count its writes through withTransaction.
    const n = await writesOf(client, () =>
      withTransaction(one, async (c) => {
        const a = c.query('insert into public.pipeline_probe values (7)');
        const b = c.query<{ tx: string }>(txid);
        await Promise.all([a, b]);
      }),
    );
    expect(n).toBe(2); // BEGIN + setup with both statements, then COMMIT
    const { rows } = await db.adminPool.query<{ id: number }>('select id from public.pipeline_probe');
    expect(rows).toEqual([{ id: 7 }]);
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

describe('queryInline: the setup and one statement in one message, no BEGIN / COMMIT', () => {
  const probe = `select pg_catalog.txid_current()::text as tx, current_user::text as u,
                        current_setting('cairn.read_scopes', true) as r, current_setting('cairn.write_scopes', true) as w`;
  type Probe = { tx: string; u: string; r: string; w: string };

  it("runs as cairn_app with the pool's grant or the given one, transaction-local, in a transaction of its own", async () => {
    const a = (await queryInline<Probe>(one, probe)).rows[0];
    expect(a).toMatchObject({ u: 'cairn_app', r: '{*}', w: '{*}' });
    const b = (await queryInline<Probe>(one, probe, { read: '{"task:t1"}', write: '{}' })).rows[0];
    expect(b).toMatchObject({ u: 'cairn_app', r: '{"task:t1"}', w: '{}' });
    expect(b?.tx).not.toBe(a?.tx);
    // Nothing outlives the message: the connection (the pool's only one) is outside any
    // transaction, and a statement sent past the role guard (a message starting with COMMIT
    // passes it as is) runs as the login with no grant.
    const client = await one.connect();
    try {
      expect(client.getTransactionStatus()).toBe('I');
      const raw = (await client.query(`commit; ${probe}, session_user::text as login`)) as unknown as
        pg.QueryResult<Probe & { login: string }>[] | pg.QueryResult<Probe & { login: string }>;
      const after = (Array.isArray(raw) ? raw.at(-1) : raw)?.rows[0];
      expect(after?.u).toBe(after?.login);
      expect(after?.u).not.toBe('cairn_app');
      expect([null, '']).toContain(after?.r);
    } finally {
      client.release();
    }
    const { rows } = await db.adminPool.query<{ n: string }>(
      `select count(*)::text as n from pg_stat_activity where application_name = 'cairn-test-pipeline' and state like 'idle in transaction%'`,
    );
    expect(rows).toEqual([{ n: '0' }]);
  });

  it('row-level security applies with the given grant', async () => {
    await db.adminPool.query(
      `create table if not exists public.inline_probe (id int primary key, scope text not null);
       alter table public.inline_probe enable row level security;
       drop policy if exists inline_probe_in_scope on public.inline_probe;
       create policy inline_probe_in_scope on public.inline_probe for select to cairn_app
         using (scope = any (current_setting('cairn.read_scopes', true)::text[]) or '*' = any (current_setting('cairn.read_scopes', true)::text[]));
       grant select on public.inline_probe to cairn_app;
       truncate public.inline_probe;
       insert into public.inline_probe values (1, 'task:a'), (2, 'task:b');`,
    );
    const ids = async (read?: string) =>
      (
        await queryInline<{ id: number }>(
          one,
          'select id from public.inline_probe order by id',
          read === undefined ? undefined : { read, write: '{}' },
        )
      ).rows.map((r) => r.id);
    expect(await ids()).toEqual([1, 2]);
    expect(await ids('{"task:a"}')).toEqual([1]);
    expect(await ids('{"task:c"}')).toEqual([]);
  });

  it('a role that cannot be set fails the message: the statement never runs as the login', async () => {
    const bad = createPool(db.url, { max: 1, applicationRole: 'cairn_no_such_role' });
    try {
      await expect(
        queryInline(bad, 'create table public.inline_should_not_exist (x int)'),
      ).rejects.toMatchObject({
        code: '22023',
      });
      const { rows } = await db.adminPool.query(`select to_regclass('public.inline_should_not_exist') as t`);
      expect(rows).toEqual([{ t: null }]);
      // The connection is usable and outside any transaction afterwards.
      await expect(bad.query('select 1')).rejects.toMatchObject({ code: '22023' });
    } finally {
      await bad.end();
    }
  });

  it('a failing statement throws its own error and leaves the connection outside any transaction', async () => {
    await expect(queryInline(one, 'select 1 / 0')).rejects.toMatchObject({ code: '22012' });
    const client = await one.connect();
    try {
      expect(client.getTransactionStatus()).toBe('I');
    } finally {
      client.release();
    }
    expect((await queryInline<{ u: string }>(one, 'select current_user::text as u')).rows).toEqual([
      { u: 'cairn_app' },
    ]);
  });

  it('literals: any text round-trips as itself (property); NUL and unsafe integers are refused', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: 'binary' }).filter((t) => !t.includes('\0')),
        async (text) => {
          const { rows } = await queryInline<{ t: string; n: string }>(
            one,
            `select ${inlineText(text)}::text as t, ${inlineInt(text.length)}::text as n`,
          );
          // Lone surrogates are not UTF-8: both protocols send them as U+FFFD.
          expect(rows).toEqual([{ t: Buffer.from(text).toString(), n: String(text.length) }]);
        },
      ),
      { numRuns: 200 },
    );
    expect(() => inlineText('a\0b')).toThrow(RangeError);
    expect(() => inlineInt(1.5)).toThrow(RangeError);
    expect(() => inlineInt(2 ** 60)).toThrow(RangeError);
  });
});
