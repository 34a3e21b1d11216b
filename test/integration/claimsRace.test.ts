/**
 * 50 concurrent claimers over 100 resources with 200–500 ms leases, for a few seconds (until
 * every path was taken): most claim (a quarter of them through nextFree over a few candidates),
 * renew, write under their fence and release (or walk away); some pause past their lease
 * and then try to write; some are killed mid-write (their connection destroyed, claim left to
 * lapse) and come back as a new process. Every grant, renewal, release, held answer and write
 * attempt is recorded with the database's timestamps, and an independent checker written here
 * (it uses nothing of the claims module but its call results and raw SQL) verifies:
 *   - per resource, tokens of grants are 1, 2, 3… with no two grants of one token;
 *   - no two leases of a resource overlap (a lease runs from its grant to its last expiry or
 *     its release);
 *   - every "held" answer names a lease live at that moment: an expired or released claim is
 *     never an obstacle, so contended expired claims are taken over;
 *   - every accepted write was checked inside its own lease, before any later grant, and
 *     recorded before the next lease began; every refused write was indeed stale then;
 *   - the claim_events table tells exactly the recorded history, and killed writes left no row.
 */
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Pool, PoolClient } from 'pg';
import { z } from 'zod';
import { FencingTokenStaleError } from '../../src/shared/errors';
import { defineObservationType, ObservationTypeRegistry } from '../../src/shared/observationTypes';
import {
  checkFences,
  claim,
  nextFree,
  release,
  renew,
  type ClaimResult,
  type ReleaseResult,
  type RenewResult,
} from '../../src/store/claims';
import { appendObservations, type AppendContext } from '../../src/store/observations/append';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { createPool, withTransaction } from '../../src/store/pool';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

const RESOURCES = 100;
const HOT = 20;
const CLAIMERS = 50;
const PAUSERS = 5;
const CRASHERS = 5;
/** The run lasts RUN_MS, longer (up to MAX_RUN_MS) until it has exercised every path: see COVERAGE. */
const RUN_MS = 6000;
const MAX_RUN_MS = 40_000;
/**
 * How often each path must have been taken (more than this) for the run to count. A fixed 6 s
 * window left these counts to the machine's load (a loaded machine does less in 6 s): the run now
 * goes on until they are reached, so only a run that never gets there fails.
 */
const COVERAGE = { grants: 100, takeovers: 5, held: 50, accepted: 50, refused: 5, killed: 0 };

const raceWrite = defineObservationType({
  name: 'race.write',
  version: 1,
  entity: 'res',
  fields: { claimer: z.string(), token: z.number().int() },
});
const registry = new ObservationTypeRegistry([raceWrite]);

type Rec =
  | { kind: 'claim'; claimer: string; resource: string; result: ClaimResult }
  | { kind: 'renew'; claimer: string; resource: string; token: number; result: RenewResult }
  | { kind: 'release'; claimer: string; resource: string; token: number; result: ReleaseResult }
  | {
      kind: 'write';
      claimer: string;
      resource: string;
      token: number;
      accepted: true;
      checkedAt: string;
      recordedAt: string;
      id: string;
    }
  | {
      kind: 'write';
      claimer: string;
      resource: string;
      token: number;
      accepted: false;
      reason: string;
      checkedAt: string;
    }
  | { kind: 'killed'; claimer: string; resource: string; token: number; key: string };

let db: TestDatabase;
let pool: Pool;
const recs: Rec[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await registerObservationTypes(db.pool, registry);
  pool = createPool(db.url, { max: 24, applicationName: 'cairn-test-race', scopes: 'all' });
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const rand = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
/** Mostly the hot few, so claimers contend. */
const pickResource = () => `res/${Math.random() < 0.7 ? rand(0, HOT - 1) : rand(0, RESOURCES - 1)}`;
let writes = 0;
const appendCtx = (claimer: string): AppendContext => ({
  provenance: {
    taskKey: 'race',
    workflowId: 'race',
    runId: 'race',
    activityId: claimer,
    attempt: 1,
    agentId: claimer,
    role: 'claimer',
  },
  idempotencyPrefix: `race:${claimer}:${writes++}`,
  observedAt: new Date().toISOString(),
});

/** Checks the fence, appends, commits: appendFenced, with the check's database time kept. */
async function fencedWrite(claimer: string, resource: string, token: number): Promise<void> {
  try {
    const done = await withTransaction(pool, async (c) => {
      const checkedAt = (await checkFences(c, [{ resource, token }]))!;
      const [obs] = await appendObservations(
        c,
        registry,
        [{ entityType: 'res', entityId: resource, type: 'race.write', fields: { claimer, token } }],
        appendCtx(claimer),
      );
      return { checkedAt, obs: obs! };
    });
    recs.push({
      kind: 'write',
      claimer,
      resource,
      token,
      accepted: true,
      checkedAt: done.checkedAt,
      recordedAt: done.obs.recordedAt,
      id: done.obs.id,
    });
  } catch (err) {
    if (!(err instanceof FencingTokenStaleError)) throw err;
    recs.push({
      kind: 'write',
      claimer,
      resource,
      token,
      accepted: false,
      reason: err.reason,
      checkedAt: err.current.checkedAt!,
    });
  }
}

async function claimOne(
  db: Pool | PoolClient,
  claimer: string,
  viaNextFree = false,
): Promise<{ resource: string; token: number; ttlMs: number } | undefined> {
  const ttlMs = rand(200, 500);
  if (viaNextFree) {
    // The first free of a few candidates (SKIP LOCKED), from the same resources.
    const ids = Array.from({ length: 5 }, () => pickResource().slice('res/'.length));
    const grant = await nextFree(db, 'res', ids, { holder: claimer, ttlMs });
    if (!grant) {
      await sleep(rand(2, 20));
      return undefined;
    }
    recs.push({ kind: 'claim', claimer, resource: grant.resource, result: grant });
    return { resource: grant.resource, token: grant.token, ttlMs };
  }
  const resource = pickResource();
  const result = await claim(db, resource, { holder: claimer, ttlMs });
  recs.push({ kind: 'claim', claimer, resource, result });
  if (!result.granted) {
    await sleep(rand(2, 20));
    return undefined;
  }
  return { resource, token: result.token, ttlMs };
}

/** The paths taken so far, counted as the checker counts them (it asserts on its own counts). */
function covered(): boolean {
  const c = { grants: 0, takeovers: 0, held: 0, accepted: 0, refused: 0, killed: 0 };
  for (const r of recs) {
    if (r.kind === 'claim' && r.result.granted && r.result.outcome !== 'renewed') {
      c.grants++;
      if (r.result.outcome === 'expired-takeover') c.takeovers++;
    } else if (r.kind === 'claim' && !r.result.granted) c.held++;
    else if (r.kind === 'write') c[r.accepted ? 'accepted' : 'refused']++;
    else if (r.kind === 'killed') c.killed++;
  }
  return (Object.keys(COVERAGE) as (keyof typeof COVERAGE)[]).every((k) => c[k] > COVERAGE[k]);
}

let running = true;
const keepGoing = () => running;

async function normal(claimer: string, viaNextFree: boolean): Promise<void> {
  while (keepGoing()) {
    const got = await claimOne(pool, claimer, viaNextFree);
    if (!got) continue;
    for (let round = rand(1, 3); round > 0; round--) {
      await sleep(rand(10, got.ttlMs / 3));
      const r = await renew(pool, got.resource, { holder: claimer, token: got.token, ttlMs: got.ttlMs });
      recs.push({ kind: 'renew', claimer, resource: got.resource, token: got.token, result: r });
      await fencedWrite(claimer, got.resource, got.token);
    }
    // Mostly release; sometimes walk away and let the lease lapse.
    if (Math.random() < 0.8) {
      const r = await release(pool, got.resource, { holder: claimer, token: got.token });
      recs.push({ kind: 'release', claimer, resource: got.resource, token: got.token, result: r });
    }
  }
}

/** A holder that stalls (GC pause, partition) past its lease, then carries on as if it held it. */
async function pauser(claimer: string): Promise<void> {
  while (keepGoing()) {
    const got = await claimOne(pool, claimer);
    if (!got) continue;
    await fencedWrite(claimer, got.resource, got.token);
    await sleep(got.ttlMs + rand(50, 250));
    await fencedWrite(claimer, got.resource, got.token);
    const r = await renew(pool, got.resource, { holder: claimer, token: got.token, ttlMs: got.ttlMs });
    recs.push({ kind: 'renew', claimer, resource: got.resource, token: got.token, result: r });
  }
}

/** A process killed mid-write: its connection is destroyed inside the fenced transaction. */
async function crasher(name: string): Promise<void> {
  for (let generation = 1; keepGoing(); generation++) {
    const claimer = `${name}.g${generation}`;
    const own = createPool(db.url, { max: 1, applicationName: 'cairn-test-crasher', scopes: 'all' });
    const client = await own.connect();
    client.on('error', () => undefined);
    try {
      for (;;) {
        const got = await claimOne(client, claimer);
        if (!got) {
          if (!keepGoing()) return;
          continue;
        }
        await client.query('begin');
        try {
          await checkFences(client, [{ resource: got.resource, token: got.token }]);
        } catch (err) {
          // Its lease lapsed before it got here (a slow machine): a refused write, not a crash.
          if (!(err instanceof FencingTokenStaleError)) throw err;
          recs.push({
            kind: 'write',
            claimer,
            resource: got.resource,
            token: got.token,
            accepted: false,
            reason: err.reason,
            checkedAt: err.current.checkedAt!,
          });
          await client.query('rollback');
          continue;
        }
        const ctx = appendCtx(claimer);
        await appendObservations(
          client,
          registry,
          [
            {
              entityType: 'res',
              entityId: got.resource,
              type: 'race.write',
              fields: { claimer, token: got.token },
            },
          ],
          ctx,
        );
        recs.push({
          kind: 'killed',
          claimer,
          resource: got.resource,
          token: got.token,
          key: `${ctx.idempotencyPrefix}:0`,
        });
        (client as unknown as { connection: { stream: Socket } }).connection.stream.destroy();
        break;
      }
    } finally {
      client.release(true);
      await own.end().catch(() => undefined);
    }
    await sleep(rand(50, 150)); // the "process" restarts
  }
}

it('keeps one holder per resource, growing tokens and fenced writes under pauses and crashes', async () => {
  const started = Date.now();
  const claimers: Promise<void>[] = [];
  for (let i = 0; i < CLAIMERS - PAUSERS - CRASHERS; i++) claimers.push(normal(`normal-${i}`, i % 4 === 0));
  for (let i = 0; i < PAUSERS; i++) claimers.push(pauser(`pauser-${i}`));
  for (let i = 0; i < CRASHERS; i++) claimers.push(crasher(`crasher-${i}`));
  while (running) {
    await sleep(100);
    const elapsed = Date.now() - started;
    if ((elapsed >= RUN_MS && covered()) || elapsed >= MAX_RUN_MS) running = false;
  }
  await Promise.all(claimers);

  const { rows: events } = await db.adminPool.query<EventRow>(
    `select resource, event, token::int as token, holder, previous_holder,
            to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at,
            to_char(expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as expires_at
     from cairn.claim_events order by seq`,
  );
  const { rows: stored } = await db.adminPool.query<{ id: string; idempotency_key: string }>(
    `select id, idempotency_key from cairn.observations where type = 'race.write'`,
  );
  const report = check(recs, events, stored);

  // The run exercised every path it claims to check.
  expect(report.counts.grants).toBeGreaterThan(COVERAGE.grants);
  expect(report.counts.takeovers).toBeGreaterThan(COVERAGE.takeovers);
  expect(report.counts.held).toBeGreaterThan(COVERAGE.held);
  expect(report.counts.accepted).toBeGreaterThan(COVERAGE.accepted);
  expect(report.counts.refused).toBeGreaterThan(COVERAGE.refused);
  expect(report.counts.killed).toBeGreaterThan(COVERAGE.killed);
  expect(report.violations).toEqual([]);
  console.log(
    `claims race: ${JSON.stringify(report.counts)} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}, 60_000);

// ---------------------------------------------------------------- the independent checker

interface EventRow {
  resource: string;
  event: string;
  token: number;
  holder: string;
  previous_holder: string | null;
  at: string;
  expires_at: string;
}

interface Lease {
  token: number;
  holder: string;
  start: bigint;
  end: bigint;
  released: boolean;
}

/** Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS.ffffffZ`. */
function us(iso: string): bigint {
  const [whole, frac = ''] = iso.replace('Z', '').split('.');
  return BigInt(Date.parse(`${whole}Z`)) * 1000n + BigInt(frac.padEnd(6, '0'));
}

function check(recs: Rec[], events: EventRow[], stored: { id: string; idempotency_key: string }[]) {
  const violations: string[] = [];
  const leases = new Map<string, Map<number, Lease>>();
  const leaseOf = (resource: string, token: number) => leases.get(resource)?.get(token);
  const expected: string[] = [];
  const counts = {
    grants: 0,
    takeovers: 0,
    held: 0,
    renewals: 0,
    releases: 0,
    accepted: 0,
    refused: 0,
    killed: 0,
  };

  // 1. Leases from what the claimers were told.
  for (const r of recs) {
    if (r.kind === 'claim' && r.result.granted) {
      const g = r.result;
      if (g.outcome === 'renewed') {
        const l = leaseOf(r.resource, g.token);
        if (!l || l.holder !== r.claimer)
          violations.push(`renewal by claim of ${r.resource}#${g.token} by non-holder ${r.claimer}`);
        else l.end = l.end > us(g.expiresAt) ? l.end : us(g.expiresAt);
        expected.push(`${r.resource}|renewed|${g.token}|${r.claimer}|${g.checkedAt}`);
        continue;
      }
      counts.grants++;
      if (g.outcome === 'expired-takeover') counts.takeovers++;
      const byToken = leases.get(r.resource) ?? new Map<number, Lease>();
      leases.set(r.resource, byToken);
      if (byToken.has(g.token)) violations.push(`${r.resource}: token ${g.token} granted twice`);
      byToken.set(g.token, {
        token: g.token,
        holder: r.claimer,
        start: us(g.acquiredAt),
        end: us(g.expiresAt),
        released: false,
      });
      expected.push(`${r.resource}|${g.outcome}|${g.token}|${r.claimer}|${g.acquiredAt}`);
    } else if (r.kind === 'renew' && r.result.renewed) {
      counts.renewals++;
      const l = leaseOf(r.resource, r.token);
      if (!l || l.holder !== r.claimer)
        violations.push(`renewal of ${r.resource}#${r.token} by non-holder ${r.claimer}`);
      else {
        const until = us(r.result.grant.expiresAt);
        if (us(r.result.grant.checkedAt) >= l.end)
          violations.push(`${r.resource}#${r.token} renewed at ${r.result.grant.checkedAt}, after it ended`);
        if (until > l.end) l.end = until;
      }
      expected.push(`${r.resource}|renewed|${r.token}|${r.claimer}|${r.result.grant.checkedAt}`);
    } else if (r.kind === 'release' && r.result.released) {
      counts.releases++;
      const l = leaseOf(r.resource, r.token);
      const at = us(r.result.state.releasedAt!);
      if (!l || l.holder !== r.claimer)
        violations.push(`release of ${r.resource}#${r.token} by non-holder ${r.claimer}`);
      else {
        if (at < l.end) l.end = at;
        l.released = true;
      }
      expected.push(`${r.resource}|released|${r.token}|${r.claimer}|${r.result.state.releasedAt}`);
    }
  }

  // 2. Per resource: tokens 1..n, leases in token order, none overlapping the next.
  for (const [resource, byToken] of leases) {
    const sorted = [...byToken.values()].sort((a, b) => a.token - b.token);
    sorted.forEach((l, i) => {
      if (l.token !== i + 1)
        violations.push(`${resource}: tokens are not 1..n (${sorted.map((x) => x.token).join(',')})`);
      const prev = sorted[i - 1];
      if (prev && l.start < prev.end)
        violations.push(
          `${resource}: lease #${l.token} (${l.holder}) began before #${prev.token} (${prev.holder}) ended`,
        );
      if (prev && l.start <= prev.start)
        violations.push(`${resource}: token ${l.token} granted no later than token ${prev.token}`);
    });
  }
  /** The lease valid at time t, if any: the newest begun by t, if it has not ended. */
  const validAt = (resource: string, t: bigint) => {
    let newest: Lease | undefined;
    for (const l of leases.get(resource)?.values() ?? [])
      if (l.start <= t && (!newest || l.token > newest.token)) newest = l;
    return newest && t < newest.end ? newest : undefined;
  };

  for (const r of recs) {
    // 3. A "held" answer is only ever given for a lease live at that moment.
    if (r.kind === 'claim' && !r.result.granted) {
      counts.held++;
      const h = r.result;
      const live = validAt(r.resource, us(h.checkedAt));
      if (!live || live.token !== h.token || live.holder !== h.holder)
        violations.push(
          `${r.resource}: ${r.claimer} told it is held by ${h.holder}#${h.token} at ${h.checkedAt}, but that lease was not live`,
        );
    }
    // 4. Takeovers replace a lease that lapsed (never a released one).
    if (r.kind === 'claim' && r.result.granted && r.result.outcome === 'expired-takeover') {
      const prev = leaseOf(r.resource, r.result.token - 1);
      if (!prev || prev.released || prev.holder !== r.result.previousHolder)
        violations.push(
          `${r.resource}#${r.result.token}: takeover of ${r.result.previousHolder ?? '?'} does not match lease #${r.result.token - 1}`,
        );
    }
    // 5. Writes: accepted only inside their own lease, and recorded before the next began.
    if (r.kind === 'write' && r.accepted) {
      counts.accepted++;
      const live = validAt(r.resource, us(r.checkedAt));
      if (!live || live.token !== r.token || live.holder !== r.claimer)
        violations.push(
          `${r.resource}: write by ${r.claimer} with token ${r.token} accepted at ${r.checkedAt} outside its lease`,
        );
      const next = leaseOf(r.resource, r.token + 1);
      if (next && us(r.recordedAt) >= next.start)
        violations.push(
          `${r.resource}: write with token ${r.token} recorded at ${r.recordedAt}, after lease #${next.token} began`,
        );
    }
    // 6. …and refused only when the token was indeed stale then.
    if (r.kind === 'write' && !r.accepted) {
      counts.refused++;
      const live = validAt(r.resource, us(r.checkedAt));
      if (live && live.token === r.token)
        violations.push(
          `${r.resource}: write with live token ${r.token} refused (${r.reason}) at ${r.checkedAt}`,
        );
    }
    if (r.kind === 'killed') counts.killed++;
  }

  // 7. The audit trail is exactly the recorded history; killed writes left nothing behind.
  const logged = events.map((e) => `${e.resource}|${e.event}|${e.token}|${e.holder}|${e.at}`).sort();
  const told = [...expected].sort();
  const missing = told.filter((x) => !logged.includes(x));
  const extra = logged.filter((x) => !told.includes(x));
  if (missing.length) violations.push(`events missing: ${missing.slice(0, 5).join('; ')}`);
  if (extra.length) violations.push(`events nobody was told about: ${extra.slice(0, 5).join('; ')}`);
  const keys = new Set(stored.map((s) => s.idempotency_key));
  const ids = new Set(stored.map((s) => s.id));
  for (const r of recs) {
    if (r.kind === 'killed' && keys.has(r.key))
      violations.push(`${r.resource}: the killed write ${r.key} was stored`);
    if (r.kind === 'write' && r.accepted && !ids.has(r.id))
      violations.push(`${r.resource}: accepted write ${r.id} is not stored`);
  }
  const acceptedCount = recs.filter((r) => r.kind === 'write' && r.accepted).length;
  if (stored.length !== acceptedCount)
    violations.push(`${stored.length} race writes stored, ${acceptedCount} accepted`);
  return { violations, counts };
}
