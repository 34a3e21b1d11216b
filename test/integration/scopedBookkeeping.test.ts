/**
 * A task's bookkeeping is scoped like its observations (migration 013): context messages,
 * episodes (goals and step outputs), read sets and their evidence, claims, claim events and
 * work items. Each leak is probed through raw SQL as the application role with a narrow grant,
 * as a program holding a cairn_app connection would see it; and the worker's own paths (a
 * transaction acting for its task) keep working.
 */
import { randomUUID } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkFences,
  claim,
  listClaimEvents,
  listClaims,
  listWorkItems,
  nextFree,
  registerWorkItems,
  release,
  renew,
} from '../../src/store/claims';
import { FencingTokenStaleError } from '../../src/shared/errors';
import { effectKey, runOnce } from '../../src/store/effects';
import { bindTaskKey, recordEpisode } from '../../src/store/episodes';
import { tagEpisode } from '../../src/store/episodeSearch';
import { admitMessages, listMessages, persistMessages } from '../../src/store/messages';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { createPool, pgError, withTransaction } from '../../src/store/pool';
import { actingFor, withScope, withTaskBookkeeping } from '../../src/store/scope';
import { appendWithReads } from '../../src/store/staleness';
import { testDatabase, type TestDatabase } from '../helpers/database';
import { receiptTypes, stepContext } from '../helpers/readReceipts';

let db: TestDatabase;
/** The application role with no session grant: a worker's pool. */
let appPool: Pool;

const run = randomUUID().slice(0, 8);
const t1 = `mine-${run}`;
const t2 = `theirs-${run}`;
const tasks = [t1, t2];
const holderOf = (t: string) => `wf-${t}/step#1`;
const resourceOf = (t: string) => `doc-${run}/${t}`;
const kind = `src-${run}`;
const tokens: Record<string, number> = {};
const effectOwner = (t: string | null) => ({
  taskKey: t,
  workflowId: `wf-${t}`,
  activityId: 'step',
  attempt: 1,
});

/** Raw SQL as the application role: SET ROLE cairn_app plus the given settings, nothing else. */
function asApp<T>(
  settings: { read?: string; write?: string; task?: string },
  fn: (c: PoolClient) => Promise<T>,
): Promise<T> {
  return withTransaction(db.adminPool, async (c) => {
    await c.query('set local role cairn_app');
    await c.query(
      `select set_config('cairn.read_scopes', $1, true), set_config('cairn.write_scopes', $2, true),
              set_config('cairn.task_key', $3, true)`,
      [settings.read ?? '', settings.write ?? '', settings.task ?? ''],
    );
    return fn(c);
  });
}

/** Which of the two tasks' rows `sql` (selecting one task key per row) returns. */
async function tasksSeen(c: PoolClient, sql: string): Promise<string[]> {
  const { rows } = await c.query<{ t: string }>(sql, [tasks]);
  return [...new Set(rows.map((r) => r.t))].sort();
}

const PROBES: Record<string, string> = {
  context_messages: 'select task_key as t from cairn.context_messages where task_key = any($1)',
  episodes: 'select task_key as t from cairn.episodes where task_key = any($1)',
  // The binding keeps the task's result (step outputs) for re-runs of the key (migration 016).
  task_keys: 'select task_key as t from cairn.task_keys where task_key = any($1)',
  // ctx.once results of each task (migration 016).
  effects: 'select task_key as t from cairn.effects where task_key = any($1)',
  episode_tags: 'select task_key as t from cairn.episode_tags where task_key = any($1)',
  episode_summary_members: `select e.task_key as t from cairn.episode_summary_members m
                              join cairn.episodes e on e.id = m.episode_id where e.task_key = any($1)`,
  read_sets: 'select task_key as t from cairn.read_sets where task_key = any($1)',
  // The evidence tables carry no task of their own: which read set they hang off, by its
  // workflow id (each task's steps have their own), so a hidden read set cannot hide them.
  read_set_entries: `select substr(entity_id, 5) as t from cairn.read_set_entries where entity_id = any(array(select 'rse-' || x from unnest($1::text[]) x))`,
  // Where read_set_entries' rows are stored since migration 023 (one row per recording).
  read_set_parts: `select substr(i, 5) as t from cairn.read_set_parts p cross join unnest(p.entity_ids) i
                     where i = any(array(select 'rse-' || x from unnest($1::text[]) x))`,
  // The blast radius' per-entity lookup (a definer function): the read sets that read rse-<task>.
  read_set_readers: `select x as t from unnest($1::text[]) x
                       cross join lateral cairn.read_set_readers('deal', 'rse-' || x, 0, null, '{price}') r`,
  observation_read_sets: `select substr(split_part(idempotency_key, ':', 1), 4) as t from cairn.observation_read_sets
                            where split_part(idempotency_key, ':', 1) = any(array(select 'wf-' || x from unnest($1::text[]) x))`,
  claims: `select split_part(resource, '/', 2) as t from cairn.claims where split_part(resource, '/', 2) = any($1)`,
  claim_events: `select split_part(resource, '/', 2) as t from cairn.claim_events where split_part(resource, '/', 2) = any($1)`,
  work_items: 'select id as t from cairn.work_items where kind = $$' + kind + '$$ and id = any($1)',
};

beforeAll(async () => {
  db = await testDatabase();
  appPool = createPool(db.url, { max: 4, applicationName: 'cairn-test-bookkeeping' });
  await registerObservationTypes(db.pool, receiptTypes);
  // Each task's bookkeeping, written as the worker writes it: acting for the task.
  for (const t of tasks) {
    await withTaskBookkeeping(appPool, t, async (c) => {
      await persistMessages(
        c,
        [
          {
            id: 'm1',
            fromRole: 'lead',
            toRole: 'analyst',
            type: 'brief',
            content: { secret: `brief of ${t}` },
          },
        ],
        { taskKey: t },
      );
      await bindTaskKey(c, { taskKey: t, workflowId: `wf-${t}`, firstRunId: 'r1' });
      const steps = [
        {
          id: 's1',
          role: 'analyst',
          status: 'completed' as const,
          attempts: 1,
          output: { found: `output of ${t}` },
        },
      ];
      await recordEpisode(c, {
        result: { taskKey: t, status: 'completed', steps, observations: 0, messages: 1, continuedAsNew: 0 },
        taskKey: t,
        workflowId: `wf-${t}`,
        runId: 'r1',
        goal: `goal of ${t}`,
        outcome: 'completed',
        startedAt: new Date().toISOString(),
        endedAt: new Date().toISOString(),
        steps: [
          {
            id: 's1',
            role: 'analyst',
            status: 'completed',
            attempts: 1,
            output: { found: `output of ${t}` },
          },
        ],
        observationIds: [],
        messages: 1,
      });
    });
    await tagEpisode(db.pool, t, ['probe']);
    // A read set with an entry, and the observation linked to it.
    await appendWithReads(
      db.pool,
      receiptTypes,
      [{ entityType: 'deal', entityId: `out-${t}`, type: 'deal.facts', fields: { price: 1 } }],
      stepContext(t, 1, t),
      [{ entityType: 'deal', entityId: `rse-${t}`, version: 0, fields: ['price'] }],
    );
    // A claim and a work item, taken and registered by a step of the task (acting for it).
    const step = (fn: (c: PoolClient) => Promise<unknown>) =>
      withScope(appPool, { read: [], write: [] }, fn, { taskKey: t });
    await step(async (c) => {
      const r = await claim(c, resourceOf(t), { holder: holderOf(t), ttlMs: 60_000 });
      if (!r.granted) throw new Error('seed claim not granted');
      tokens[t] = r.token;
    });
    await step((c) => registerWorkItems(c, kind, [t]));
    // An outside effect of the task, run once the way an agent step's ctx.once runs it.
    await runOnce(actingFor(appPool, t), effectKey('notify', { taskKey: t }), effectOwner(t), async () => ({
      sent: `effect of ${t}`,
    }));
  }
  // A summary episode condensing t1's (membership is seen with the episode).
  await db.pool.query(
    `with s as (
       insert into cairn.episodes (task_key, workflow_id, run_id, goal, outcome, kind, started_at, ended_at, step_count,
                                   steps, message_count, summary)
       values ($1, $2, 'r', 'summary', 'completed', 'summary', now(), now(), 0, '[]', 0, '{}') returning id)
     insert into cairn.episode_summary_members (episode_id, summary_id)
     select e.id, s.id from cairn.episodes e, s where e.workflow_id = any($3)`,
    [t1, `wf-summary-${run}`, [`wf-${t1}`, `wf-${t2}`]],
  );
});

afterAll(async () => {
  await appPool?.end();
  await db?.drop();
});

describe('as the application role with a narrow grant (raw SQL)', () => {
  it('sees only its own task’s messages, episodes, tags, read sets (with their evidence), claims, events and work items', async () => {
    for (const [table, sql] of Object.entries(PROBES)) {
      const mine = await asApp({ read: `{task:${t1},global}` }, (c) => tasksSeen(c, sql));
      expect({ table, seen: mine }).toEqual({ table, seen: [t1] });
      const everything = await asApp({ read: '{*}' }, (c) => tasksSeen(c, sql));
      expect({ table, seen: everything }).toEqual({ table, seen: [t1, t2].sort() });
      const nothing = await asApp({}, (c) => tasksSeen(c, sql));
      expect({ table, seen: nothing }).toEqual({ table, seen: [] });
    }
  });

  it('finds no goal, step output or message content of another task by searching for it', async () => {
    const found = await asApp({ read: `{task:${t1}}` }, async (c) => {
      const { rows } = await c.query<{ text: string }>(
        `select goal || steps::text as text from cairn.episodes
         union all select content::text from cairn.context_messages
         union all select content::text from cairn.context_messages_archive
         union all select result::text from cairn.task_keys
         union all select result::text from cairn.effects`,
      );
      return rows.map((r) => r.text).join('\n');
    });
    expect(found).toContain(`output of ${t1}`);
    expect(found).toContain(`brief of ${t1}`);
    expect(found).not.toContain(t2);
  });

  it('a global ctx.once result is everyone’s; a task’s own is its task’s, found again on retry', async () => {
    const global = effectKey(`shared-${run}`, { global: true });
    await runOnce(appPool, global, effectOwner(null), async () => ({ shared: true }));
    const seen = await asApp({ read: `{task:${t2}}` }, async (c) => {
      const { rows } = await c.query<{ key: string }>('select key from cairn.effects where key = $1', [
        global,
      ]);
      return rows.length;
    });
    expect(seen).toBe(1);
    // A retry of t1's step finds its stored result instead of running the effect again.
    let ran = 0;
    const again = await runOnce(
      actingFor(appPool, t1),
      effectKey('notify', { taskKey: t1 }),
      effectOwner(t1),
      async () => {
        ran++;
        return { sent: 'twice' };
      },
    );
    expect(again).toEqual({ result: { sent: `effect of ${t1}` }, ran: false });
    expect(ran).toBe(0);
  });

  it('a transaction acting for its task keeps that task’s bookkeeping, whatever its grant', async () => {
    for (const table of [
      'context_messages',
      'episodes',
      'task_keys',
      'effects',
      'read_sets',
      'read_set_entries',
      'read_set_parts',
      'read_set_readers',
      'claims',
      'work_items',
    ]) {
      const seen = await asApp({ read: '{global}', task: t1 }, (c) => tasksSeen(c, PROBES[table]!));
      expect({ table, seen }).toEqual({ table, seen: [t1] });
    }
  });

  it('cannot send into, acknowledge in, or write an episode or tag for another task', async () => {
    const refused = async (sql: string, params: unknown[]) => {
      const err = await asApp({ read: `{task:${t1}}`, write: `{task:${t1}}` }, (c) =>
        c.query(sql, params),
      ).catch((e: unknown) => e);
      return pgError(err)?.code;
    };
    // 42501: new row violates row-level security policy.
    expect(
      await refused(
        `insert into cairn.context_messages (id, task_key, from_role, to_role, type, content)
         values ('forged', $1, 'lead', 'analyst', 'brief', '{}')`,
        [t2],
      ),
    ).toBe('42501');
    expect(
      await refused(
        `insert into cairn.episodes (task_key, workflow_id, run_id, goal, outcome, started_at, ended_at, step_count, steps, message_count)
         values ($1, $2, 'r', 'forged', 'completed', now(), now(), 0, '[]', 0)`,
        [t2, `wf-forged-${run}`],
      ),
    ).toBe('42501');
    expect(await refused(`insert into cairn.episode_tags (task_key, tag) values ($1, 'forged')`, [t2])).toBe(
      '42501',
    );
    // An acknowledgement of another task's message touches nothing.
    const acked = await asApp({ read: `{task:${t1}}`, write: `{task:${t1}}` }, (c) =>
      c.query(`update cairn.context_messages set acked_at = now() where task_key = $1`, [t2]),
    );
    expect(acked.rowCount).toBe(0);
    const { rows } = await db.adminPool.query<{ acked_at: Date | null }>(
      'select acked_at from cairn.context_messages where task_key = $1',
      [t2],
    );
    expect(rows.map((r) => r.acked_at)).toEqual([null]);
  });

  it('cannot release or renew another holder’s claim without its token, even naming the holder', async () => {
    const res = resourceOf(t2);
    const holder = holderOf(t2);
    const as1 = <T>(fn: (c: PoolClient) => Promise<T>) => asApp({ read: `{task:${t1}}`, task: t1 }, fn);
    const noToken = await as1((c) =>
      c.query('select * from cairn.release_claim($1, $2, null)', [res, holder]),
    ).catch((e: unknown) => e);
    expect(pgError(noToken)?.code).toBe('CNF02');
    const guessed = tokens[t2]! + 1;
    const released = await as1(async (c) => {
      const { rows } = await c.query<{ outcome: string }>(
        'select outcome from cairn.release_claim($1, $2, $3)',
        [res, holder, guessed],
      );
      return rows[0]?.outcome;
    });
    expect(released).toBe('refused');
    const renewed = await as1(async (c) => {
      const { rows } = await c.query<{ outcome: string }>(
        'select outcome from cairn.renew_claim($1, $2, $3, 600000)',
        [res, holder, guessed],
      );
      return rows[0]?.outcome;
    });
    expect(renewed).toBe('refused');
    const { rows } = await db.adminPool.query<{ holder: string; released_at: Date | null; events: number }>(
      `select c.holder, c.released_at, (select count(*)::int from cairn.claim_events e where e.resource = c.resource) as events
         from cairn.claims c where c.resource = $1`,
      [res],
    );
    expect(rows[0]).toEqual({ holder, released_at: null, events: 1 });
  });
});

describe('the worker’s paths', () => {
  it('records each row’s scope: the task’s claims, events and work items', async () => {
    const { rows } = await db.adminPool.query<{ what: string; scope: string | null }>(
      `select 'claim' as what, scope from cairn.claims where resource = $1
       union all select 'event', scope from cairn.claim_events where resource = $1
       union all select 'work item', scope from cairn.work_items where kind = $2 and id = $3`,
      [resourceOf(t1), kind, t1],
    );
    expect(rows.map((r) => [r.what, r.scope])).toEqual([
      ['claim', `task:${t1}`],
      ['event', `task:${t1}`],
      ['work item', `task:${t1}`],
    ]);
  });

  it('outside a task a claim belongs to the one write scope of the grant, else to no scope', async () => {
    const scopeAfter = async (write: string[]) => {
      const res = `outside-${run}-${write.join('+') || 'none'}`;
      await withScope(appPool, { read: [], write }, (c) => claim(c, res, { holder: 'mcp/x', ttlMs: 60_000 }));
      const { rows } = await db.adminPool.query<{ scope: string | null }>(
        'select scope from cairn.claims where resource = $1',
        [res],
      );
      return rows[0]?.scope;
    };
    expect(await scopeAfter(['team:deals'])).toBe('team:deals');
    expect(await scopeAfter(['team:deals', 'global'])).toBeNull();
    expect(await scopeAfter([])).toBeNull();
  });

  it('a claim taken over by another task moves to that task’s scope', async () => {
    const res = `handover-${run}`;
    const as = (t: string) => (fn: (c: PoolClient) => Promise<unknown>) =>
      withScope(appPool, { read: [], write: [] }, fn, { taskKey: t });
    await as(t1)((c) => claim(c, res, { holder: holderOf(t1), ttlMs: 1 }));
    await new Promise((r) => setTimeout(r, 20));
    await as(t2)((c) => claim(c, res, { holder: holderOf(t2), ttlMs: 60_000 }));
    const scopes = await db.adminPool.query<{ scope: string }>(
      'select scope from cairn.claim_events where resource = $1 order by seq',
      [res],
    );
    expect(scopes.rows.map((r) => r.scope)).toEqual([`task:${t1}`, `task:${t2}`]);
    const now = await db.adminPool.query<{ scope: string }>(
      'select scope from cairn.claims where resource = $1',
      [res],
    );
    expect(now.rows[0]?.scope).toBe(`task:${t2}`);
    // t1 no longer sees who holds it.
    const seen = await asApp({ read: `{task:${t1}}` }, (c) =>
      c.query('select 1 from cairn.claims where resource = $1', [res]),
    );
    expect(seen.rowCount).toBe(0);
  });

  it('admits and lists a task’s context acting for the task; without a grant a pool sees none', async () => {
    const t = `admit-${run}`;
    const fresh = await withTaskBookkeeping(appPool, t, (c) =>
      admitMessages(
        c,
        t,
        [{ id: 'a1', fromRole: 'lead', toRole: 'analyst', type: 'note', content: { n: 1 } }],
        {
          batchKey: 'b1',
        },
      ),
    );
    expect(fresh).toEqual(['a1']);
    const listed = await withTaskBookkeeping(appPool, t, (c) => listMessages(c, { taskKey: t }));
    expect(listed.map((m) => m.id)).toEqual(['a1']);
    expect(await listMessages(appPool, { taskKey: t })).toEqual([]);
    expect((await listMessages(db.pool, { taskKey: t })).map((m) => m.id)).toEqual(['a1']);
    // Without acting for the task nor a grant of its scope, admission is refused, not silently dropped.
    const err = await admitMessages(
      appPool,
      t,
      [{ id: 'a2', fromRole: 'x', toRole: 'y', type: 'z', content: {} }],
      {
        batchKey: 'b2',
      },
    ).catch((e: unknown) => e);
    expect(pgError(err)?.code).toBe('42501');
  });
});

describe('the claim functions answer with a claim’s details only to callers who may read its scope (migration 017)', () => {
  /** A held or refused answer as raw SQL returns it: the details a caller could learn. */
  type Answer = { outcome: string; holder: string | null; token: string | null; expires_at: Date | null };
  const claimAs = (settings: { read?: string; write?: string; task?: string }, res: string, holder: string) =>
    asApp(settings, async (c) => {
      const { rows } = await c.query<Answer>(
        'select outcome, holder, token, acquired_at, expires_at from cairn.claim($1, $2, 60000)',
        [res, holder],
      );
      return rows[0]!;
    });
  const hidden = { holder: null, token: null, expires_at: null };

  it('claim(): "held" without holder, token or expiry for another scope; with them for its own and for all scopes', async () => {
    const theirs = resourceOf(t2);
    // Acting for t1, or with t1's grant only: held, nothing else.
    expect(await claimAs({ read: `{task:${t1}}`, task: t1 }, theirs, 'prober')).toMatchObject({
      outcome: 'held',
      ...hidden,
    });
    expect(
      await claimAs({ read: `{task:${t1},global}`, write: `{task:${t1}}` }, theirs, 'prober'),
    ).toMatchObject({
      outcome: 'held',
      ...hidden,
    });
    // No grant at all (a worker's pool outside any step): held, nothing else.
    expect(await claimAs({}, theirs, 'prober')).toMatchObject({ outcome: 'held', ...hidden });
    // Naming the holder (steps' names are guessable) neither renews its lease nor tells its token.
    const before = await db.adminPool.query<{ expires_at: Date }>(
      'select expires_at from cairn.claims where resource = $1',
      [theirs],
    );
    expect(await claimAs({ read: `{task:${t1}}`, task: t1 }, theirs, holderOf(t2))).toMatchObject({
      outcome: 'held',
      ...hidden,
    });
    const after = await db.adminPool.query<{ expires_at: Date }>(
      'select expires_at from cairn.claims where resource = $1',
      [theirs],
    );
    expect(after.rows[0]!.expires_at).toEqual(before.rows[0]!.expires_at);
    // A's grant, acting for A, or every scope: who holds it, its token and expiry.
    for (const settings of [{ read: `{task:${t2}}` }, { task: t2 }, { read: '{*}' }]) {
      const seen = await claimAs(settings, theirs, 'prober');
      expect(seen).toMatchObject({ outcome: 'held', holder: holderOf(t2), token: String(tokens[t2]) });
      expect(seen.expires_at).toBeInstanceOf(Date);
    }
    // Through the library, as a step of t1 runs it.
    const r = await withScope(
      appPool,
      { read: [], write: [] },
      (c) => claim(c, theirs, { holder: 'x', ttlMs: 1000 }),
      {
        taskKey: t1,
      },
    );
    expect(r).toEqual({
      granted: false,
      outcome: 'held',
      resource: theirs,
      holder: null,
      token: null,
      acquiredAt: null,
      expiresAt: null,
      checkedAt: expect.any(String),
      expiresInMs: null,
      hidden: true,
    });
    // Exclusivity is global: the grant was refused, nothing changed.
    const { rows } = await db.adminPool.query<{ holder: string; token: string }>(
      'select holder, token from cairn.claims where resource = $1',
      [theirs],
    );
    expect(rows[0]).toEqual({ holder: holderOf(t2), token: String(tokens[t2]) });
  });

  it('renew and release refusals hide the claim’s state from another scope, not from its holder', async () => {
    const theirs = resourceOf(t2);
    const refusal = (settings: { read?: string; task?: string }, sql: string, params: unknown[]) =>
      asApp(settings, async (c) => (await c.query<Answer>(sql, params)).rows[0]!);
    for (const [sql, params] of [
      ['select * from cairn.release_claim($1, $2, $3)', [theirs, holderOf(t2), tokens[t2]! + 1]],
      ['select * from cairn.renew_claim($1, $2, $3, 60000)', [theirs, holderOf(t2), tokens[t2]! + 1]],
      ['select * from cairn.renew_claim($1, $2, $3, 60000)', [theirs, 'someone', tokens[t2]!]],
    ] as const) {
      expect(await refusal({ read: `{task:${t1}}`, task: t1 }, sql, [...params])).toMatchObject({
        outcome: 'refused',
        ...hidden,
      });
      expect(await refusal({ read: `{task:${t2}}` }, sql, [...params])).toMatchObject({
        outcome: 'refused',
        holder: holderOf(t2),
        token: String(tokens[t2]),
      });
    }
    // Through the library: not the holder, no state.
    const renewed = await withScope(
      appPool,
      { read: [], write: [] },
      (c) => renew(c, theirs, { holder: holderOf(t2), token: tokens[t2]! + 1, ttlMs: 1000 }),
      { taskKey: t1 },
    );
    expect(renewed).toEqual({ renewed: false, reason: 'not-holder', current: null });
    const released = await withScope(
      appPool,
      { read: [], write: [] },
      (c) => release(c, theirs, { holder: holderOf(t2), token: tokens[t2]! + 1 }),
      { taskKey: t1 },
    );
    expect(released).toEqual({ released: false, reason: 'not-holder', current: null });
  });

  it('a holder outside any one scope renews and releases its own claim with its token; its name alone proves nothing', async () => {
    // Two write scopes: the claim belongs to no scope (seen only with every scope)...
    const grant = { read: ['team:a', 'team:b'], write: ['team:a', 'team:b'] };
    const res = `multi-${run}`;
    const g = await withScope(appPool, grant, (c) => claim(c, res, { holder: 'mcp/multi', ttlMs: 60_000 }));
    if (!g.granted) throw new Error('not granted');
    // ...so naming the holder proves nothing: claim() by that name neither renews nor tells...
    const again = await withScope(appPool, grant, (c) =>
      claim(c, res, { holder: 'mcp/multi', ttlMs: 60_000 }),
    );
    expect(again).toMatchObject({ granted: false, outcome: 'held', hidden: true, token: null });
    // ...but the holder, with its token, renews it (same token) and releases it.
    const renewed = await withScope(appPool, grant, (c) =>
      renew(c, res, { holder: 'mcp/multi', token: g.token, ttlMs: 60_000 }),
    );
    expect(renewed).toMatchObject({ renewed: true, grant: { token: g.token } });
    const released = await withScope(appPool, grant, (c) =>
      release(c, res, { holder: 'mcp/multi', token: g.token }),
    );
    expect(released.released).toBe(true);
    // A second release of its own (released) grant is refused with the grant's own state.
    const twice = await withScope(appPool, grant, (c) =>
      release(c, res, { holder: 'mcp/multi', token: g.token }),
    );
    expect(twice).toMatchObject({ released: false, reason: 'released', current: { holder: 'mcp/multi' } });
  });

  it('a stale fence does not name the current holder, token or expiry of another scope’s claim', async () => {
    const theirs = resourceOf(t2);
    const fenceError = (settings: { read?: string; task?: string }, token: number) =>
      asApp(settings, (c) => c.query('select cairn.check_fence($1, $2)', [theirs, token])).catch(
        (e: unknown) => e,
      );
    for (const token of [tokens[t2]! + 1, tokens[t2]! + 7]) {
      const err = await fenceError({ read: `{task:${t1}}`, task: t1 }, token);
      expect(pgError(err)?.code).toBe('CNF01');
      expect((err as Error).message).not.toContain(holderOf(t2));
      const detail = JSON.parse(pgError(err)!.detail!) as Record<string, unknown>;
      // Below or above the current token: the same reason, so probing tokens tells nothing.
      expect(detail).toMatchObject({
        reason: 'superseded',
        currentToken: null,
        holder: null,
        expiresAt: null,
        releasedAt: null,
        hidden: true,
      });
      // With t2's grant, the details (and the exact reason).
      const shown = await fenceError({ read: `{task:${t2}}` }, token);
      expect(JSON.parse(pgError(shown)!.detail!)).toMatchObject({
        reason: 'never-granted',
        currentToken: tokens[t2],
        holder: holderOf(t2),
      });
    }
    // Through the library, in a step's transaction of t1: FencingTokenStaleError, hidden.
    const err = await withScope(
      appPool,
      { read: [], write: [] },
      (c) => checkFences(c, [{ resource: theirs, token: tokens[t2]! + 1 }]),
      { taskKey: t1 },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FencingTokenStaleError);
    const stale = err as FencingTokenStaleError;
    expect(stale.current).toMatchObject({ token: null, holder: null, expiresAt: null, hidden: true });
    expect(stale.message).not.toContain(holderOf(t2));
    expect(stale.message).toContain('a scope you may not read');
  });

  it('a claim taken over by another scope: the old holder’s stale fence and renewal say nothing of the new one', async () => {
    const res = `takeover-${run}`;
    const as =
      (t: string) =>
      <T>(fn: (c: PoolClient) => Promise<T>) =>
        withScope(appPool, { read: [], write: [] }, fn, { taskKey: t });
    const first = await as(t1)((c) => claim(c, res, { holder: holderOf(t1), ttlMs: 1 }));
    if (!first.granted) throw new Error('not granted');
    await new Promise((r) => setTimeout(r, 20));
    const second = await as(t2)((c) => claim(c, res, { holder: holderOf(t2), ttlMs: 60_000 }));
    expect(second).toMatchObject({
      granted: true,
      outcome: 'expired-takeover',
      previousHolder: holderOf(t1),
    });
    const err = await as(t1)((c) => checkFences(c, [{ resource: res, token: first.token }])).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FencingTokenStaleError);
    expect((err as FencingTokenStaleError).reason).toBe('superseded');
    expect((err as FencingTokenStaleError).current).toMatchObject({
      holder: null,
      token: null,
      hidden: true,
    });
    const renewed = await as(t1)((c) =>
      renew(c, res, { holder: holderOf(t1), token: first.token, ttlMs: 1000 }),
    );
    expect(renewed).toEqual({ renewed: false, reason: 'not-holder', current: null });
    // The owner of the row (every scope) still sees it all.
    const all = await withScope(appPool, { read: ['*'], write: [] }, (c) =>
      claim(c, res, { holder: 'someone', ttlMs: 1000 }),
    );
    expect(all).toMatchObject({ outcome: 'held', holder: holderOf(t2), token: second.token, hidden: false });
  });

  it('the guard trigger’s refusal does not name the holder or its expiry', async () => {
    const err = await db.adminPool
      .query(
        `update cairn.claims set token = token + 1, holder = 'forger', acquired_at = clock_timestamp() where resource = $1`,
        [resourceOf(t2)],
      )
      .catch((e: unknown) => e);
    expect(pgError(err)?.code).toBe('CNF03');
    expect((err as Error).message).toMatch(/is held by a lease that is still live/);
    expect((err as Error).message).not.toContain(holderOf(t2));
  });

  it('nextFree over work items hands out only items of scopes the caller may read; listing likewise', async () => {
    const work = `work-${run}`;
    const step =
      (t: string) =>
      <T>(fn: (c: PoolClient) => Promise<T>) =>
        withScope(appPool, { read: [], write: [] }, fn, { taskKey: t });
    // Registered oldest first: t2's item, one outside any scope, then t1's.
    await step(t2)((c) => registerWorkItems(c, work, ['b1']));
    await withScope(appPool, { read: [], write: [] }, (c) => registerWorkItems(c, work, ['u1']));
    await step(t1)((c) => registerWorkItems(c, work, ['a1']));
    expect((await step(t1)((c) => listWorkItems(c, work))).map((w) => w.id)).toEqual(['a1']);
    const mine = await step(t1)((c) =>
      nextFree(c, work, { workItems: true }, { holder: 'w1', ttlMs: 60_000 }),
    );
    expect(mine).toMatchObject({ resource: `${work}/a1`, id: 'a1' });
    expect(
      await step(t1)((c) => nextFree(c, work, { workItems: true }, { holder: 'w1b', ttlMs: 60_000 })),
    ).toBeNull();
    // A grant without the task but with t2's read scope gets t2's item.
    const withGrant = await withScope(appPool, { read: [`task:${t2}`], write: [] }, (c) =>
      nextFree(c, work, { workItems: true }, { holder: 'w2', ttlMs: 60_000 }),
    );
    expect(withGrant).toMatchObject({ id: 'b1' });
    // Items outside any scope: only every scope.
    expect(
      await withScope(appPool, { read: [], write: [] }, (c) =>
        nextFree(c, work, { workItems: true }, { holder: 'w3', ttlMs: 60_000 }),
      ),
    ).toBeNull();
    const all = await withScope(appPool, { read: ['*'], write: [] }, (c) =>
      nextFree(c, work, { workItems: true }, { holder: 'w4', ttlMs: 60_000 }),
    );
    expect(all).toMatchObject({ id: 'u1' });
    // Listing: claims and their history of another scope are not listed.
    const listed = await step(t1)(async (c) => ({
      claims: (await listClaims(c, { all: true })).map((r) => r.resource),
      events: (await listClaimEvents(c)).map((e) => e.resource),
    }));
    for (const list of [listed.claims, listed.events]) {
      expect(list).toContain(resourceOf(t1));
      expect(list).toContain(`${work}/a1`);
      expect(list).not.toContain(resourceOf(t2));
      expect(list).not.toContain(`${work}/b1`);
      expect(list).not.toContain(`${work}/u1`);
    }
  });
});
