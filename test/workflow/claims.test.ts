/**
 * Claims inside agent steps, on the real dev server and Postgres: a step's claims are renewed by
 * its heartbeat and released when it ends (success, failure or cancellation); a step paused past
 * its lease (renewal stopped by a fault-injection hook) has its fenced append refused,
 * non-retryably, while another step has taken the resource over and written.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineAgent } from '../../src/agent';
import { listClaimEvents } from '../../src/store/claims';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';
import { note, testTypes } from './agents';

const holdInput = z.object({
  resource: z.string(),
  ttlMs: z.number(),
  holdMs: z.number(),
  /** Start after this long, so another step claims first. */
  delayMs: z.number().optional(),
  /** Poll until granted (a taker waiting for a lapsed lease). */
  wait: z.boolean().optional(),
  /** Claim only once another step has been granted the resource (so this one is the taker). */
  afterGrant: z.boolean().optional(),
  /** Hold until another step has taken the resource over, instead of for holdMs. */
  untilTakenOver: z.boolean().optional(),
  fail: z.boolean().optional(),
});

/**
 * Polls the resource's claim history until it shows `event`: steps ordered by what the store
 * recorded, not by guessed delays (a loaded machine can start a step seconds late).
 */
async function until(resource: string, event: string, signal: AbortSignal): Promise<void> {
  while (!(await listClaimEvents(db.pool, { prefix: resource })).some((e) => e.event === event))
    await sleep(50, undefined, { signal });
}

/** Claims a resource, holds it for a while, then appends a note fenced by the claim. */
const holder = defineAgent({
  role: 'holder',
  input: holdInput,
  async handle(ctx) {
    const input = ctx.step.input;
    if (input.delayMs) await sleep(input.delayMs, undefined, { signal: ctx.signal });
    if (input.afterGrant) await until(input.resource, 'granted', ctx.signal);
    let grant = await ctx.claim(input.resource, { ttlMs: input.ttlMs });
    while (!grant.granted && input.wait) {
      await sleep(50, undefined, { signal: ctx.signal });
      grant = await ctx.claim(input.resource, { ttlMs: input.ttlMs });
    }
    if (!grant.granted) throw new Error(`${input.resource} is held by ${grant.holder}`);
    if (input.untilTakenOver) await until(input.resource, 'expired-takeover', ctx.signal);
    else await sleep(input.holdMs, undefined, { signal: ctx.signal });
    if (input.fail) throw new Error('agent failed while holding a claim');
    ctx.append(
      note,
      input.resource.replace('/', '-'),
      { text: ctx.step.id, n: grant.token },
      { fence: input.resource },
    );
    return { token: grant.token, outcome: grant.outcome, holder: grant.granted ? grant.holder : null };
  },
});

let db: TestDatabase;
let stack: TestStack;

beforeAll(async () => {
  db = await createTestDatabase();
  stack = await startTestStack({
    pool: db.pool,
    databaseUrl: db.url,
    registry: testTypes,
    agents: [holder],
    // The "paused" step keeps heartbeating to Temporal but its claim lapses, as after a long GC
    // pause or a partition between the worker and Postgres.
    faults: { pauseClaimRenewal: ({ stepId }) => stepId.startsWith('paused') },
  });
});

afterAll(async () => {
  await stack?.stop();
  await db?.drop();
});

const policy = { holder: { maxAttempts: 3, initialRetryMs: 100 } };

/** [event, token, step#attempt] of a resource's history; renewals left out unless asked for. */
async function events(resource: string, opts: { renewals?: boolean } = {}) {
  return (await listClaimEvents(db.pool, { prefix: resource }))
    .filter((e) => opts.renewals || e.event !== 'renewed')
    .map((e) => [e.event, e.token, e.holder.replace(/^.*\//, '')]);
}

async function notes(taskKey: string) {
  const { rows } = await db.pool.query(
    `select fields->>'text' as text from cairn.observations where task_key = $1 order by seq`,
    [taskKey],
  );
  return rows.map((r: { text: string }) => r.text);
}

describe('claims in agent steps', () => {
  it('refuses the fenced append of a step paused past its lease, for good, while the taker writes', async () => {
    const taskKey = 'paused-holder';
    const started = await stack.client.startTask({
      taskKey,
      goal: 'a paused holder loses its lease',
      onStepFailure: 'skip',
      rolePolicies: policy,
      steps: [
        {
          id: 'paused',
          role: 'holder',
          title: 'claim, stall, write',
          // Renewal is paused, so the 500 ms lease lapses whatever the load; the step writes only
          // once the taker has taken over, so its fence is superseded, not merely expired.
          input: { resource: 'doc/paused', ttlMs: 500, holdMs: 0, untilTakenOver: true },
        },
        {
          id: 'taker',
          role: 'holder',
          title: 'take over, write',
          // Claims only after the paused step was granted, so it is the taker whichever step a
          // loaded machine starts first.
          input: { resource: 'doc/paused', ttlMs: 2000, holdMs: 100, afterGrant: true, wait: true },
        },
      ],
    });
    const result = await stack.client.result(taskKey);
    const paused = result.steps.find((s) => s.id === 'paused')!;
    const taker = result.steps.find((s) => s.id === 'taker')!;
    expect(paused.status).toBe('failed');
    expect(paused.error).toMatch(/fencing token 1 of doc\/paused is stale \(superseded\)/);
    expect(taker).toMatchObject({ status: 'completed', output: { token: 2, outcome: 'expired-takeover' } });
    expect(await notes(taskKey)).toEqual(['taker']);

    // Non-retryable: the paused step ran once, and failed with the fence type.
    const history = await stack.client.handle(taskKey).fetchHistory();
    const scheduled = history.events!.find(
      (e) => e.activityTaskScheduledEventAttributes?.activityId === 'step-paused',
    )!;
    const attempts = history.events!.filter(
      (e) =>
        e.activityTaskStartedEventAttributes?.scheduledEventId?.toString() === scheduled.eventId?.toString(),
    );
    expect(attempts.map((e) => e.activityTaskStartedEventAttributes?.attempt)).toEqual([1]);
    const failed = history.events!.find(
      (e) =>
        e.activityTaskFailedEventAttributes?.scheduledEventId?.toString() === scheduled.eventId?.toString(),
    );
    const failure = failed?.activityTaskFailedEventAttributes?.failure;
    expect(failure?.applicationFailureInfo).toMatchObject({ type: 'CairnFenceStale', nonRetryable: true });

    // The lease history: the paused step's grant, the taker's takeover, the taker's release at
    // its end (the paused step's release was refused: its token was superseded).
    expect(await events('doc/paused')).toEqual([
      ['granted', 1, 'step-paused#1'],
      ['expired-takeover', 2, 'step-taker#1'],
      ['released', 2, 'step-taker#1'],
    ]);
    expect(
      (await events('doc/paused', { renewals: true })).filter(([e, token]) => e === 'renewed' && token === 1),
    ).toEqual([]);
    const [first] = await listClaimEvents(db.pool, { prefix: 'doc/paused' });
    expect(first!.holder).toBe(`${started.workflowId}/step-paused#1`);
  });

  /**
   * The steady step's lease must never lapse between two renewals: 1.5 s is 7 heartbeats, so only
   * a stall of ~1.3 s would lose it (with 500 ms, a 300 ms stall of a loaded machine could). Its
   * hold of 3 leases makes the test ~3 s longer.
   */
  const STEADY_TTL_MS = 1500;

  it('renews a claim on heartbeats for as long as the step holds it, and releases it on success and failure', async () => {
    const taskKey = 'renewing-holder';
    await stack.client.startTask({
      taskKey,
      goal: 'a healthy holder keeps its lease',
      onStepFailure: 'skip',
      rolePolicies: { holder: { maxAttempts: 1 } },
      steps: [
        {
          id: 'steady',
          role: 'holder',
          title: 'hold 3 leases long',
          input: { resource: 'doc/steady', ttlMs: STEADY_TTL_MS, holdMs: 3 * STEADY_TTL_MS + 100 },
        },
        {
          id: 'failing',
          role: 'holder',
          title: 'fail while holding',
          input: { resource: 'doc/failing', ttlMs: STEADY_TTL_MS, holdMs: 100, fail: true },
        },
      ],
    });
    const result = await stack.client.result(taskKey);
    expect(result.steps.map((s) => [s.id, s.status])).toEqual([
      ['steady', 'completed'],
      ['failing', 'failed'],
    ]);
    expect(await notes(taskKey)).toEqual(['steady']);
    const steady = await events('doc/steady', { renewals: true });
    expect(steady[0]).toEqual(['granted', 1, 'step-steady#1']);
    // Held for more than 3 leases and still able to write: only heartbeat renewals (every 200 ms
    // here) kept it, at least 3 of them (each extends the lease by one ttl from a moment before
    // it lapsed).
    expect(steady.filter(([e]) => e === 'renewed').length).toBeGreaterThanOrEqual(3);
    expect(steady.at(-1)).toEqual(['released', 1, 'step-steady#1']);
    expect(await events('doc/failing')).toEqual(expect.arrayContaining([['released', 1, 'step-failing#1']]));
  });

  it('releases a cancelled step’s claims', async () => {
    const taskKey = 'cancelled-holder';
    await stack.client.startTask({
      taskKey,
      goal: 'cancel a holder',
      // A heartbeat timeout short enough that the cancellation reaches the step soon (heartbeats
      // are sent every 0.8 of it), long enough that a stall of a loaded machine does not time
      // the attempt out (a retry would claim again): 1 s left a 200 ms-beat step 0.8 s of slack.
      rolePolicies: { holder: { heartbeatMs: 2500 } },
      steps: [
        {
          id: 'forever',
          role: 'holder',
          title: 'hold until cancelled',
          input: { resource: 'doc/cancelled', ttlMs: 60_000, holdMs: 600_000 },
        },
      ],
    });
    // Polls with deadlines long enough for a loaded machine (each ends as soon as its condition holds).
    for (let i = 0; i < 300 && (await events('doc/cancelled')).length === 0; i++) await sleep(100);
    await stack.client.cancel(taskKey);
    await expect(stack.client.result(taskKey)).rejects.toThrow();
    for (let i = 0; i < 200 && (await events('doc/cancelled')).length < 2; i++) await sleep(100);
    expect(await events('doc/cancelled')).toEqual([
      ['granted', 1, 'step-forever#1'],
      ['released', 1, 'step-forever#1'],
    ]);
  });
});
