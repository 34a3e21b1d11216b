/**
 * Which database errors are infrastructure faults (retried inside a step's attempt), and the
 * retry loop's bounds: a non-transient error is thrown at once, a transient one is retried until
 * it succeeds or the budget is spent, then the last error is thrown as is.
 */
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createPool, isTransientDbError, withDbRetry } from '../../src/store/pool';

const pgErr = (code: string) => Object.assign(new Error(`pg ${code}`), { code });

describe('isTransientDbError', () => {
  it.each(['57P01', '57P02', '57P03', '53300', '40001', '40P01', '08006', 'ECONNREFUSED', 'ECONNRESET'])(
    '%s is transient',
    (code) => {
      expect(isTransientDbError(pgErr(code))).toBe(true);
    },
  );

  it.each(['23505', '42501', 'CN003', 'CNS01', '22P02'])('%s is not', (code) => {
    expect(isTransientDbError(pgErr(code))).toBe(false);
  });

  it('recognises pg’s messages, wrapped causes and aggregate connect errors', () => {
    expect(isTransientDbError(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isTransientDbError(new Error('outer', { cause: pgErr('57P01') }))).toBe(true);
    expect(isTransientDbError(new AggregateError([pgErr('ECONNREFUSED')], 'connect'))).toBe(true);
    expect(isTransientDbError(new Error('agent bug'))).toBe(false);
    expect(isTransientDbError(undefined)).toBe(false);
  });
});

describe('withDbRetry', () => {
  it('retries transient faults until the call succeeds', async () => {
    let calls = 0;
    const result = await withDbRetry(
      async () => {
        if (++calls < 4) throw pgErr('57P03');
        return 'ok';
      },
      { budgetMs: 10_000, initialDelayMs: 1 },
    );
    expect([result, calls]).toEqual(['ok', 4]);
  });

  it('throws anything else at once', async () => {
    let calls = 0;
    const bug = new Error('agent bug');
    await expect(
      withDbRetry(
        async () => {
          calls++;
          throw bug;
        },
        { budgetMs: 10_000 },
      ),
    ).rejects.toBe(bug);
    expect(calls).toBe(1);
  });

  // The budget and the sleeps are timed on a fake clock: on a loaded machine a real 300 ms budget
  // could be spent by one stalled sleep (two calls, not more) or overrun by a second.
  afterEach(() => {
    vi.useRealTimers();
  });

  it('gives up with the last error once the budget is spent', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const started = Date.now();
    let calls = 0;
    const outcome = withDbRetry(
      async () => {
        calls++;
        throw pgErr('ECONNREFUSED');
      },
      { budgetMs: 300, initialDelayMs: 10, maxDelayMs: 50 },
    ).catch((e: unknown) => e);
    await vi.runAllTimersAsync();
    expect(await outcome).toMatchObject({ code: 'ECONNREFUSED' });
    // The last sleep is cut to what is left of the budget: it ends exactly when the budget does.
    expect(Date.now() - started).toBe(300);
    expect(calls).toBeGreaterThan(2);
  });

  it('stops waiting when aborted', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const started = Date.now();
    const outcome = withDbRetry(() => Promise.reject(pgErr('57P01')), {
      budgetMs: 60_000,
      initialDelayMs: 10_000,
      signal: ac.signal,
    }).catch((e: unknown) => e);
    await vi.runAllTimersAsync();
    expect(await outcome).toMatchObject({ code: '57P01' });
    // At the abort, not after the first sleep (5 to 10 s).
    expect(Date.now() - started).toBe(50);
  });
});

describe('connect timeout', () => {
  it('a server that accepts and never answers fails the connect in time, as a transient fault', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    const pool = createPool(`postgres://root@127.0.0.1:${port}/cairn`, { connectTimeoutMs: 300 });
    try {
      const started = Date.now();
      const err: unknown = await pool.query('select 1').then(
        () => undefined,
        (e: unknown) => e,
      );
      // In time: not the OS's minutes (nor forever, this server never answers), with room for a
      // loaded machine around the 300 ms timeout.
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(isTransientDbError(err)).toBe(true);
    } finally {
      await pool.end();
      silent.close();
    }
  });
});
