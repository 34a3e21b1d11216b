/**
 * The claims of one agent-step attempt. The step is the holder
 * (`<workflow id>/<activity id>#<attempt>`); what it is granted is renewed on each heartbeat and
 * released when the step ends, whatever its outcome. Fences named by its appends and its
 * completed work items are checked inside the step's one transaction, before anything is
 * written there, so a step whose lease lapsed (paused, partitioned, slow) writes nothing.
 */
import type pg from 'pg';
import type { PoolClient } from 'pg';
import { FencingTokenStaleError } from '../src/shared/errors';
import {
  checkFences,
  claim,
  completeWorkItem,
  nextFree,
  release,
  renew,
  type ClaimResult,
  type Fence,
  type NextFreeSource,
  type WorkGrant,
} from '../src/store/claims';
import type { Queryable } from '../src/store/pool';

/** A step's identity as a claim holder: a retry is a new holder, so an old attempt cannot write. */
export function stepHolder(step: { workflowId: string; activityId: string; attempt: number }): string {
  return `${step.workflowId}/${step.activityId}#${step.attempt}`;
}

interface Held {
  token: number;
  ttlMs: number;
  /** A renewal was refused: the lease is gone (its fenced writes will be refused too). */
  lost: boolean;
}

export interface StepClaimsOptions {
  pool: pg.Pool;
  /**
   * Runs one claim call in the step's transaction shape (withScope acting for the task), so its
   * claims, events and work items belong to the task's scope (migration 013). Default: the pool.
   */
  run?: <T>(fn: (db: Queryable) => Promise<T>) => Promise<T>;
  holder: string;
  /** How often the step heartbeats (and renews); a ttl must cover two beats. */
  heartbeatEveryMs: number;
  /** Fault injection: while it returns true, heartbeats do not renew (a paused holder). */
  pauseRenewal?: () => boolean;
}

export class StepClaims {
  private readonly held = new Map<string, Held>();
  private readonly fences = new Map<string, number>();
  private readonly completed = new Map<string, number>();
  private renewing = false;

  constructor(private readonly opts: StepClaimsOptions) {}

  get holder(): string {
    return this.opts.holder;
  }

  private db<T>(fn: (db: Queryable) => Promise<T>): Promise<T> {
    return this.opts.run ? this.opts.run(fn) : fn(this.opts.pool);
  }

  async claim(resource: string, ttlMs: number): Promise<ClaimResult> {
    this.checkTtl(ttlMs);
    const result = await this.db((db) => claim(db, resource, { holder: this.opts.holder, ttlMs }));
    if (result.granted) this.held.set(resource, { token: result.token, ttlMs, lost: false });
    return result;
  }

  async nextFree(kind: string, from: NextFreeSource, ttlMs: number): Promise<WorkGrant | null> {
    this.checkTtl(ttlMs);
    const grant = await this.db((db) => nextFree(db, kind, from, { holder: this.opts.holder, ttlMs }));
    if (grant) this.held.set(grant.resource, { token: grant.token, ttlMs, lost: false });
    return grant;
  }

  /** Releases now; false when the step did not hold it (or had lost it). */
  async release(resource: string): Promise<boolean> {
    const h = this.held.get(resource);
    if (!h) return false;
    this.held.delete(resource);
    const r = await this.db((db) => release(db, resource, { holder: this.opts.holder, token: h.token }));
    return r.released;
  }

  /**
   * The fence of an append: a resource name means "the token this step holds for it now"; an
   * explicit `{ resource, token }` is taken as given. Refused at once when the step never held
   * the resource (a bug in the agent: it appended under a claim it was not granted).
   */
  fence(fence: string | Fence): Fence {
    if (typeof fence !== 'string') return fence;
    const h = this.held.get(fence);
    if (!h)
      throw new FencingTokenStaleError(fence, null, 'not-held', {
        token: null,
        holder: null,
        expiresAt: null,
        checkedAt: null,
      });
    return { resource: fence, token: h.token };
  }

  /** Remembers a fence for the step's transaction. */
  addFence(fence: Fence): void {
    const seen = this.fences.get(fence.resource);
    // Two tokens of one resource cannot both be current: keep the older, it will be refused.
    if (seen === undefined || fence.token < seen) this.fences.set(fence.resource, fence.token);
  }

  /** Marks a work item to complete in the step's transaction, fenced by the step's claim on it. */
  completeWorkItem(resource: string): void {
    const { token } = this.fence(resource);
    this.completed.set(resource, token);
  }

  /**
   * Inside the step's transaction, before its writes: checks every fence (held FOR SHARE until
   * commit) and completes the work items.
   */
  async writeGuarded(client: PoolClient): Promise<void> {
    const fences = new Map(this.fences);
    for (const [resource, token] of this.completed) if (!fences.has(resource)) fences.set(resource, token);
    await checkFences(
      client,
      [...fences].map(([resource, token]) => ({ resource, token })),
    );
    for (const [resource, token] of this.completed)
      await completeWorkItem(client, resource, { holder: this.opts.holder, token });
  }

  /** Called on every heartbeat: renews each held claim, at most one round of renewals at a time. */
  renewOnBeat(onError: (err: unknown) => void): void {
    if (this.renewing || this.held.size === 0 || this.opts.pauseRenewal?.()) return;
    this.renewing = true;
    this.renewAll()
      .catch(onError)
      .finally(() => {
        this.renewing = false;
      });
  }

  private async renewAll(): Promise<void> {
    for (const [resource, h] of [...this.held]) {
      if (h.lost) continue;
      const r = await this.db((db) =>
        renew(db, resource, { holder: this.opts.holder, token: h.token, ttlMs: h.ttlMs }),
      );
      if (!r.renewed && this.held.get(resource) === h) h.lost = true;
    }
  }

  /** Releases everything still held; never throws (a claim it cannot release simply expires). */
  async releaseAll(): Promise<void> {
    const held = [...this.held];
    this.held.clear();
    await Promise.allSettled(
      held.map(([resource, h]) =>
        this.db((db) => release(db, resource, { holder: this.opts.holder, token: h.token })),
      ),
    );
  }

  private checkTtl(ttlMs: number): void {
    // A lease shorter than two beats can lapse between renewals of a healthy step.
    const min = 2 * this.opts.heartbeatEveryMs;
    if (!Number.isInteger(ttlMs) || ttlMs < min)
      throw new RangeError(
        `claim ttlMs must be at least ${min} ms (two heartbeats of this worker), got ${ttlMs}`,
      );
  }
}
