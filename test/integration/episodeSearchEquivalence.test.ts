/**
 * findEpisodes since migration 026 (text and entity candidates by index, through SECURITY DEFINER
 * functions) answers exactly as the query before it (one OR per condition over every episode):
 * for random episodes (task and summary, condensed or not, tagged, linking observations) and
 * random queries, under every scope as the application, under a one-task grant, and as the owner,
 * the same rows in the same order. Each run inserts its episodes in a transaction it rolls back.
 */
import fc from 'fast-check';
import type { PoolClient } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EpisodeQuery } from '../../src/shared/agentTypes';
import { findEpisodes, EPISODE_QUERY_LIMIT } from '../../src/store/episodeSearch';
import { appendObservations } from '../../src/store/observations/append';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { deal, receiptTypes, stepContext } from '../helpers/readReceipts';

/** findEpisodes' statement before 026, verbatim, with the same parameters. */
const BEFORE_026 = `with ent as (
       select o.id, o.task_key from cairn.observations o
        where $3::text is not null and o.entity_type = $3 and o.entity_id = $4
     ),
     q as (select case when $1::text is null then null else websearch_to_tsquery('english', $1) end as ts)
     select e.id, e.kind, e.task_key, e.workflow_id, e.goal, e.outcome, e.started_at, e.ended_at, e.step_count,
            e.steps, e.message_count, e.observation_ids, e.summary, m.summary_id as summarized_into,
            array(select distinct t from unnest(e.tags || coalesce(x.tags, '{}')) as t order by t) as all_tags
       from cairn.episodes e
       cross join q
       left join cairn.episode_summary_members m on m.episode_id = e.id
       left join lateral (select array_agg(et.tag) as tags from cairn.episode_tags et where et.task_key = e.task_key) x on true
      where ($1::text is null
             or e.goal ilike '%' || $2 || '%' escape '\\'
             or to_tsvector('english', e.goal) @@ q.ts
             or (e.kind = 'summary' and exists (
                   select 1 from jsonb_array_elements_text(e.summary -> 'goals') g(goal)
                    where g.goal ilike '%' || $2 || '%' escape '\\' or to_tsvector('english', g.goal) @@ q.ts)))
        and ($3::text is null
             or e.task_key in (select task_key from ent)
             or e.observation_ids && (select coalesce(array_agg(id), '{}') from ent)
             or (e.kind = 'summary' and (e.summary -> 'taskKeys') ?| (select coalesce(array_agg(distinct task_key), '{}') from ent)))
        and ($5::text[] is null or (e.tags || coalesce(x.tags, '{}')) @> $5::text[])
        and ($6::text is null or e.outcome = $6)
        and ($7::text is null or e.task_key = $7)
        and ($8::text = 'any' or e.kind = $8)
        and (not $9 or m.summary_id is null)
      order by case when $1::text is null then 0 else ts_rank(to_tsvector('english', e.goal), q.ts) end desc,
               e.ended_at desc, e.id
      limit $10`;

async function before026(c: PoolClient, q: EpisodeQuery) {
  const text = q.text?.trim() ? q.text.trim() : null;
  const { rows } = await c.query<{ id: string; all_tags: string[]; summarized_into: string | null }>(
    BEFORE_026,
    [
      text,
      text === null ? null : text.replace(/[\\%_]/g, (ch) => `\\${ch}`),
      q.entity?.entityType ?? null,
      q.entity?.entityId ?? null,
      q.tags && q.tags.length > 0 ? [...q.tags] : null,
      q.outcome ?? null,
      q.taskKey ?? null,
      q.kind ?? 'any',
      q.excludeSummarized ?? false,
      q.limit ?? EPISODE_QUERY_LIMIT.default,
    ],
  );
  return rows.map((r) => ({ id: r.id, tags: r.all_tags, summarizedInto: r.summarized_into }));
}

const TASKS = ['t0', 't1', 't2', 't3', 't4'] as const;
const WORDS = [
  'Audit',
  'audits',
  'vendor',
  'Acme',
  'the',
  'hosting',
  'contract',
  'renewed',
  '50%',
  'a_b',
  'x\\y',
];
const TEXTS = [
  ...WORDS,
  'ud',
  'vend',
  'ost',
  'the hosting',
  '"renew the contract"',
  'audit or hosting',
  '-audit',
  'vendor -acme',
  '%',
  '_',
  '  ',
];
const TAGS = ['red', 'green', 'blue'];
const ENDS = ['2025-01-01T00:00:00Z', '2025-01-02T00:00:00Z', '2025-01-03T00:00:00Z'];

/** Fixed observations: which task wrote which entity, in which scope. */
const WRITES = [
  { task: 't0', entity: 'e0', scope: 'task' },
  { task: 't0', entity: 'e0', scope: 'task' },
  { task: 't2', entity: 'e1', scope: 'task' },
  { task: 't1', entity: 'e2', scope: 'global' },
  { task: 't3', entity: 'e2', scope: 'global' },
] as const;
let observationIds: string[] = [];

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await registerObservationTypes(db.pool, receiptTypes);
  for (const [i, w] of WRITES.entries()) {
    const [obs] = await appendObservations(
      db.pool,
      receiptTypes,
      [{ ...deal(w.entity), type: 'deal.facts', fields: { price: i }, scope: w.scope }],
      stepContext(`w${i}`, 1, w.task),
    );
    observationIds.push(obs!.id);
  }
});
afterAll(async () => {
  observationIds = [];
  await db?.drop();
});

const goalArb = fc.array(fc.constantFrom(...WORDS), { minLength: 1, maxLength: 4 }).map((w) => w.join(' '));
const episodeArb = fc.record({
  task: fc.constantFrom(...TASKS),
  summary: fc.option(
    fc.record({
      goals: fc.array(goalArb, { maxLength: 3 }),
      taskKeys: fc.subarray([...TASKS]),
      condenses: fc.array(fc.nat(), { maxLength: 3 }),
    }),
    { freq: 4 },
  ),
  goal: goalArb,
  outcome: fc.constantFrom('completed', 'failed', 'cancelled'),
  end: fc.constantFrom(...ENDS),
  links: fc.subarray([0, 1, 2, 3, 4, 5]),
  tags: fc.subarray(TAGS),
});
/** Present with probability 1/(1 + absent). */
const sometimes = <T>(arb: fc.Arbitrary<T>, absent: number) =>
  fc.oneof({ arbitrary: fc.constant(undefined), weight: absent }, { arbitrary: arb, weight: 1 });
const queryArb: fc.Arbitrary<EpisodeQuery> = fc
  .record({
    text: sometimes(fc.constantFrom(...TEXTS), 1),
    entity: sometimes(fc.constantFrom('e0', 'e1', 'e2', 'e9').map(deal), 1),
    tags: sometimes(fc.subarray(TAGS, { minLength: 1, maxLength: 2 }), 4),
    outcome: sometimes(fc.constantFrom('completed', 'failed', 'mixed'), 4),
    taskKey: sometimes(fc.constantFrom(...TASKS), 4),
    kind: sometimes(fc.constantFrom<'task' | 'summary' | 'any'>('task', 'summary', 'any'), 3),
    excludeSummarized: sometimes(fc.boolean(), 2),
    limit: sometimes(fc.constantFrom(1, 2, 3), 2),
  })
  .map((q) => Object.fromEntries(Object.entries(q).filter(([, v]) => v !== undefined)) as EpisodeQuery);
const AS = ['every scope', 'one task', 'owner'] as const;

describe('findEpisodes since 026', () => {
  it('answers as before 026: same rows, same order, every scope', async () => {
    let found = 0;
    let empty = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(episodeArb, { maxLength: 20 }),
        fc.array(fc.tuple(queryArb, fc.constantFrom(...AS)), { minLength: 1, maxLength: 8 }),
        async (episodes, queries) => {
          const c = await db.adminPool.connect();
          try {
            await c.query('begin');
            const ids: string[] = [];
            for (const [i, e] of episodes.entries()) {
              // A link index past the fixed observations is an observation that does not exist.
              const links = e.links.map((k) => observationIds[k] ?? '00000000-0000-4000-8000-000000000000');
              const summary =
                e.summary === null
                  ? null
                  : { goals: e.summary.goals, taskKeys: e.summary.taskKeys, count: 1 };
              const { rows } = await c.query<{ id: string }>(
                `insert into cairn.episodes (task_key, workflow_id, run_id, goal, outcome, started_at, ended_at,
                   step_count, steps, observation_ids, message_count, tags, kind, summary)
                 values ($1, $2, 'run-1', $3, $4, $5, $5, 0, '[]', $6, 0, $7, $8, $9) returning id`,
                [
                  e.task,
                  `wf-eq-${i}`,
                  e.goal,
                  e.summary === null ? e.outcome : 'mixed',
                  e.end,
                  links,
                  e.tags,
                  e.summary === null ? 'task' : 'summary',
                  summary,
                ],
              );
              ids.push(rows[0]!.id);
            }
            // Condensed episodes: a summary's picks among the task episodes, each condensed once.
            const condensed = new Set<number>();
            for (const [i, e] of episodes.entries())
              for (const n of e.summary?.condenses ?? []) {
                const j = n % episodes.length;
                if (episodes[j]!.summary !== null || condensed.has(j)) continue;
                condensed.add(j);
                await c.query(
                  'insert into cairn.episode_summary_members (episode_id, summary_id) values ($1, $2)',
                  [ids[j], ids[i]],
                );
              }
            await c.query(
              `insert into cairn.episode_tags (task_key, tag) values ('t1', 'red'), ('t2', 'blue'), ('t4', 'green')`,
            );
            for (const [q, as] of queries) {
              await c.query('savepoint s');
              if (as !== 'owner')
                await c.query(
                  `select set_config('role', 'cairn_app', true), set_config('cairn.read_scopes', $1, true),
                          set_config('cairn.write_scopes', $2, true)`,
                  as === 'every scope' ? ['{*}', '{*}'] : ['{global,task:t0}', '{task:t0}'],
                );
              const before = await before026(c, q);
              const now = (await findEpisodes(c, q)).map((e) => ({
                id: e.id,
                tags: e.tags,
                summarizedInto: e.summarizedInto,
              }));
              expect(now, `${as}: ${JSON.stringify(q)}`).toEqual(before);
              if (now.length > 0) found++;
              else empty++;
              await c.query('rollback to savepoint s');
            }
          } finally {
            await c.query('rollback');
            c.release();
          }
        },
      ),
      { numRuns: 150 },
    );
    // Not vacuous: many queries find something, many find nothing.
    expect(found / (found + empty)).toBeGreaterThan(0.2);
    expect(empty / (found + empty)).toBeGreaterThan(0.2);
  }, 120_000);
});
