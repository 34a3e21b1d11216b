/**
 * Read-after-write waits (`minVersion` / `asOfVersion` with `waitMs`) outside any transaction:
 * the head is checked in short transactions of its own, and between checks the waiter sleeps
 * until migration 012's trigger NOTIFYs that the entity's head moved (delivered at commit), or
 * a fallback poll interval passes, or the deadline. No connection sits idle in a transaction,
 * and no pooled connection is held while waiting.
 *
 * The trigger notifies only for entities someone waits for (migration 018: NOTIFY serialises
 * committing transactions). A waiter whose first check falls short registers the entity's key
 * through the listener session (cairn.head_wait_begin), checks again, and removes the
 * registration when it is done (cairn.head_wait_end). A writer whose trigger ran before the
 * registration committed sends nothing: the waiter then sees the head at its next poll.
 *
 * LISTEN needs a session: it does not work through PgBouncer in transaction mode (the
 * notifications go to whichever server connection ran the LISTEN). The listener therefore uses
 * its own direct connection: the pool's URL by default, or `listenUrl` (createPool's option,
 * CAIRN_PG_LISTEN_URL) pointing past the bouncer; `listenUrl: null` turns it off. Without a
 * listener (off, or its connection failed) the wait falls back to polling, every
 * `headPollMaxMs` at most (default 250 ms; 1 s while a listener is up, as a safety net).
 */
import { createHash } from 'node:crypto';
import { Client, type Pool } from 'pg';
import { formatEntityRef, type EntityRef } from '../shared/observation';
import { VersionNotReachedError } from '../shared/errors';

export const HEADS_CHANNEL = 'cairn_heads';

export interface HeadWaitSettings {
  /** Direct connection for LISTEN; null: none (poll). */
  listenUrl: string | null;
  /** The role the listener session acts as (none: the login). */
  role: string | null;
  /** Longest sleep between two checks of the head when no notification comes. */
  pollMaxMs?: number;
}

const settings = new WeakMap<Pool, HeadWaitSettings>();
const listeners = new WeakMap<Pool, HeadListener>();

/** Called by createPool: how this pool's waiters are woken. */
export function configureHeadWait(pool: Pool, s: HeadWaitSettings): void {
  settings.set(pool, s);
}

/** The notification payload for an entity (see migration 012). */
export function headKey(ref: EntityRef): string {
  return createHash('md5').update(`${ref.entityType}\u001f${ref.entityId}`, 'utf8').digest('hex');
}

/** One LISTEN session per pool, shared by all its waiters; ended with the pool. */
class HeadListener {
  private client: Client | undefined;
  private ready: Promise<boolean> | undefined;
  private readonly waiters = new Map<string, Set<() => void>>();
  private closed = false;

  constructor(private readonly s: HeadWaitSettings) {}

  /** True when notifications are flowing; false: poll. Retried on the next wait after a failure. */
  start(): Promise<boolean> {
    if (this.closed || this.s.listenUrl === null) return Promise.resolve(false);
    this.ready ??= this.connect();
    return this.ready;
  }

  private async connect(): Promise<boolean> {
    const client = new Client({
      connectionString: this.s.listenUrl ?? undefined,
      application_name: 'cairn-listen',
    });
    const lost = () => {
      // Dropped: the next wait reconnects; the current ones keep polling.
      if (this.client === client) this.client = undefined;
      this.ready = undefined;
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (n) => {
      if (n.channel !== HEADS_CHANNEL || n.payload === undefined) return;
      for (const wake of this.waiters.get(n.payload) ?? []) wake();
    });
    try {
      await client.connect();
      // A session of its own, so a session-level role is right here; LISTEN needs no privilege.
      if (this.s.role !== null) await client.query(`SET ROLE ${this.s.role}`);
      await client.query(`LISTEN ${HEADS_CHANNEL}`);
    } catch {
      lost();
      await client.end().catch(() => undefined);
      return false;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return false;
    }
    this.client = client;
    return true;
  }

  /**
   * Tells the database that this session waits for `key` for at most `ms` (migration 018), so
   * writers notify it. Returns the function that removes the registration; undefined when the
   * session cannot register (no listener, lost, or a database without migration 018): poll.
   */
  async register(key: string, ms: number): Promise<(() => Promise<void>) | undefined> {
    const client = this.client;
    if (client === undefined) return undefined;
    // Some slack over the wait: a registration must outlive its waiter's last check.
    const span = Math.min(Math.max(Math.ceil(ms) + 5_000, 1), 86_400_000);
    let id: string;
    try {
      const { rows } = await client.query<{ id: string }>('select cairn.head_wait_begin($1, $2) as id', [
        key,
        span,
      ]);
      id = rows[0]!.id;
    } catch {
      return undefined;
    }
    return async () => {
      // A lost session's registrations expire on their own.
      if (this.client !== client) return;
      await client.query('select cairn.head_wait_end($1)', [id]).then(
        () => undefined,
        () => undefined,
      );
    };
  }

  /** Registers `wake` for the entity's notifications; returns the unregister function. */
  on(key: string, wake: () => void): () => void {
    let set = this.waiters.get(key);
    if (!set) this.waiters.set(key, (set = new Set()));
    set.add(wake);
    return () => {
      set.delete(wake);
      if (set.size === 0) this.waiters.delete(key);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => undefined);
  }
}

function listenerFor(pool: Pool): HeadListener {
  let l = listeners.get(pool);
  if (!l) {
    l = new HeadListener(settings.get(pool) ?? { listenUrl: null, role: null });
    listeners.set(pool, l);
    const end = pool.end.bind(pool);
    const listener = l;
    // The listener's connection is not the pool's: end it with the pool.
    pool.end = (async (...args: unknown[]) => {
      await listener.close();
      return (end as (...a: unknown[]) => unknown)(...args);
    }) as Pool['end'];
  }
  return l;
}

/**
 * Waits until `headOf()` (a short transaction of its own) reports at least `required`, for at
 * most `waitMs`; throws VersionNotReachedError after that. Returns the head it saw.
 */
export async function waitForHeadOutside(
  pool: Pool,
  ref: EntityRef,
  required: number,
  waitMs: number,
  headOf: () => Promise<number>,
): Promise<number> {
  const deadline = Date.now() + waitMs;
  const s = settings.get(pool);
  const listener = listenerFor(pool);
  const listening = await listener.start();
  const pollMax = s?.pollMaxMs ?? (listening ? 1000 : 250);
  let woken = false;
  let wake: (() => void) | undefined;
  const key = headKey(ref);
  // Registered before the first check: a commit between the check and the sleep still wakes us.
  const off = listener.on(key, () => {
    woken = true;
    wake?.();
  });
  let unregister: (() => Promise<void>) | undefined;
  try {
    let delay = 10;
    let checks = 0;
    for (;;) {
      woken = false;
      const head = await headOf();
      if (head >= required) return head;
      const left = deadline - Date.now();
      if (left <= 0) throw new VersionNotReachedError(formatEntityRef(ref), required, head);
      if (checks++ === 0 && listening) {
        // Most waits are answered by the first check; only a waiter that must sleep asks
        // writers to notify it, then checks again (a commit before the registration was
        // visible to its writer's trigger sent nothing).
        unregister = await listener.register(key, left);
        if (unregister !== undefined) continue;
      }
      if (!woken)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.min(delay, left));
          function done() {
            clearTimeout(timer);
            wake = undefined;
            resolve();
          }
          wake = done;
        });
      delay = Math.min(delay * 2, pollMax);
    }
  } finally {
    off();
    // Not awaited: the answer need not wait for the clean-up (the listener session runs it).
    void unregister?.();
  }
}
