/**
 * Idempotent external effects (`ctx.once(key, fn)`): the first completed result of `fn` per
 * key is stored in cairn.effects, and every later call — a retry, a replay, another agent —
 * gets it back without calling `fn` again. A failed `fn` stores nothing.
 *
 * Concurrency, by the pending-row pattern: the first caller inserts a pending row it holds
 * under a lease (renewed while `fn` runs); other callers poll until the row is completed
 * (and return its result) or gone / lapsed (a failed or crashed holder; then one of them takes
 * over). No connection or transaction is held while `fn` runs.
 *
 * At-most-once is as good as the lease: a holder paused past its lease (and its renewals) can
 * be taken over, and then both may call the outside system. Its completion is refused and it
 * returns the result that was stored, so every caller still sees one result. Pick `leaseMs`
 * well above the renewal interval (a third of it) and use the outside system's own
 * idempotency key (derived from `key`) where it has one.
 */
import { randomUUID } from 'node:crypto';
import type { Json } from '../shared/observation';
import type { PoolClient } from 'pg';

/**
 * Where runOnce sends its statements, each on its own (a pool, a client, or a task's scoped
 * runner: an agent step's `ctx.once` acts for its task, migration 016, see actingFor in scope.ts).
 */
export type EffectsDb = Pick<PoolClient, 'query'>;

export interface EffectOwner {
  /** The task the key belongs to (null for a global key). */
  taskKey: string | null;
  workflowId: string;
  activityId: string;
  attempt: number;
}

export interface OnceOptions {
  /** How long a holder's claim on the key lasts without renewal (default 60 s; renewed every third of it). */
  leaseMs?: number;
  /** Give up waiting for another holder after this long (default: wait as long as it holds the key). */
  waitMs?: number;
  /** Stops waiting (e.g. the step's cancellation). */
  signal?: AbortSignal;
}

export interface OnceResult<T extends Json> {
  result: T;
  /** True when this call ran `fn` and stored its result. */
  ran: boolean;
}

export interface StoredEffect {
  key: string;
  taskKey: string | null;
  workflowId: string;
  activityId: string;
  attempt: number;
  result: Json | undefined;
  completedAt: string | null;
}

export class EffectWaitTimeoutError extends Error {
  override readonly name = 'EffectWaitTimeoutError';
  constructor(
    readonly key: string,
    readonly holder: string,
  ) {
    super(`once(${key}): still held by ${holder}; gave up waiting`);
  }
}

const MAX_KEY = 600;

/** The stored key: task-scoped (`task:<task key>/<key>`) unless `global`. */
export function effectKey(key: string, scope: { taskKey: string } | { global: true }): string {
  if (key.length === 0 || key.length > MAX_KEY)
    throw new RangeError(`once: key must be 1..${MAX_KEY} characters`);
  return 'global' in scope ? `global/${key}` : `task:${scope.taskKey}/${key}`;
}

export async function runOnce<T extends Json>(
  db: EffectsDb,
  key: string,
  owner: EffectOwner,
  fn: () => Promise<T>,
  opts: OnceOptions = {},
): Promise<OnceResult<T>> {
  const leaseMs = opts.leaseMs ?? 60_000;
  if (!Number.isInteger(leaseMs) || leaseMs < 100)
    throw new RangeError('once: leaseMs must be an integer >= 100');
  const holder = `${owner.workflowId}/${owner.activityId}#${owner.attempt}/${randomUUID()}`;
  const started = Date.now();
  let delay = 20;
  for (;;) {
    if (await tryClaim(db, key, owner, holder, leaseMs)) break;
    const row = await readState(db, key);
    if (row?.completed) return { result: row.result as T, ran: false };
    if (row) {
      if (opts.waitMs !== undefined && Date.now() - started >= opts.waitMs)
        throw new EffectWaitTimeoutError(key, row.holder);
      await sleep(Math.min(delay, Math.max(row.leftMs, 1)), opts.signal);
      delay = Math.min(delay * 2, 500);
    }
    // No row: the holder failed and let go; claim again right away.
  }

  const renew = setInterval(
    () => {
      db.query(
        `update cairn.effects set lease_until = clock_timestamp() + $3 * interval '1 millisecond'
               where key = $1 and holder = $2 and completed_at is null`,
        [key, holder, leaseMs],
      ).catch(() => undefined);
    },
    Math.max(50, Math.floor(leaseMs / 3)),
  );
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    clearInterval(renew);
    // Nothing is stored for a failure: the next call runs fn again.
    await db
      .query('delete from cairn.effects where key = $1 and holder = $2 and completed_at is null', [
        key,
        holder,
      ])
      .catch(() => undefined);
    throw err;
  }
  clearInterval(renew);
  const stored = await db.query(
    `update cairn.effects set result = $3::jsonb, completed_at = clock_timestamp()
      where key = $1 and holder = $2 and completed_at is null`,
    [key, holder, JSON.stringify(result ?? null)],
  );
  if (stored.rowCount === 1) return { result: (result ?? null) as T, ran: true };
  // Our lease lapsed and another caller took the key over: its result is the one that stands
  // once it completes. If it fails instead, our result (already obtained) is stored.
  const value = (result ?? null) as T;
  const after = await runOnce(db, key, owner, () => Promise.resolve(value), opts);
  return { result: after.result, ran: after.ran };
}

export async function getEffect(db: EffectsDb, key: string): Promise<StoredEffect | undefined> {
  const { rows } = await db.query<{
    key: string;
    task_key: string | null;
    workflow_id: string;
    activity_id: string;
    attempt: number;
    result: Json | null;
    completed_at: Date | null;
  }>(
    'select key, task_key, workflow_id, activity_id, attempt, result, completed_at from cairn.effects where key = $1',
    [key],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    key: r.key,
    taskKey: r.task_key,
    workflowId: r.workflow_id,
    activityId: r.activity_id,
    attempt: r.attempt,
    result: r.completed_at ? r.result : undefined,
    completedAt: r.completed_at?.toISOString() ?? null,
  };
}

/** Inserts the pending row, or takes over one whose holder's lease lapsed. True when we hold it. */
async function tryClaim(
  db: EffectsDb,
  key: string,
  owner: EffectOwner,
  holder: string,
  leaseMs: number,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `insert into cairn.effects as e (key, task_key, workflow_id, activity_id, attempt, holder, lease_until)
     values ($1, $2, $3, $4, $5, $6, clock_timestamp() + $7 * interval '1 millisecond')
     on conflict (key) do update
       set task_key = excluded.task_key, workflow_id = excluded.workflow_id, activity_id = excluded.activity_id,
           attempt = excluded.attempt, holder = excluded.holder, lease_until = excluded.lease_until,
           started_at = clock_timestamp()
       where e.completed_at is null and e.lease_until < clock_timestamp()`,
    [key, owner.taskKey, owner.workflowId, owner.activityId, owner.attempt, holder, leaseMs],
  );
  return rowCount === 1;
}

async function readState(
  db: EffectsDb,
  key: string,
): Promise<{ completed: boolean; result: Json; holder: string; leftMs: number } | undefined> {
  const { rows } = await db.query<{ completed: boolean; result: Json; holder: string; left_ms: number }>(
    `select completed_at is not null as completed, result, holder,
            greatest(0, extract(epoch from (lease_until - clock_timestamp())) * 1000)::float8 as left_ms
       from cairn.effects where key = $1`,
    [key],
  );
  const r = rows[0];
  return r ? { completed: r.completed, result: r.result, holder: r.holder, leftMs: r.left_ms } : undefined;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
