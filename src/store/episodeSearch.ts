/**
 * Episodic memory: "what happened last time". Finds past episodes by goal text, tags, an
 * entity their task observed, and outcome, newest first (best text match first when a text is
 * given). Summary episodes written by retention maintenance are episodes too: they match by
 * the goals, task keys and tags of the episodes they condensed.
 */
import type { Json } from '../shared/observation';
import type { Queryable } from './pool';

import type { EpisodeQuery, FoundEpisode } from '../shared/agentTypes';
export type { EpisodeQuery, FoundEpisode } from '../shared/agentTypes';

export const EPISODE_QUERY_LIMIT = { default: 20, max: 500 } as const;

/**
 * The text and the entity conditions, each only when asked: their candidates come by index from
 * SECURITY DEFINER functions (migration 026), since under row-level security no index serves
 * their operators; e is still read under its policy. Without them, no condition (the filters
 * they replace were true; `$2::text is null`, true then, keeps $2 typed).
 */
const TEXT_MATCH = `e.id in (select cairn.episodes_matching((select ts from q), $2))`;
const ABOUT_ENTITY = `e.id in (select cairn.episodes_about((select coalesce(array_agg(id), '{}') from ent),
                                                       (select coalesce(array_agg(distinct task_key), '{}') from ent)))`;

export async function findEpisodes(db: Queryable, q: EpisodeQuery = {}): Promise<FoundEpisode[]> {
  const limit = q.limit ?? EPISODE_QUERY_LIMIT.default;
  if (!Number.isInteger(limit) || limit < 1 || limit > EPISODE_QUERY_LIMIT.max)
    throw new RangeError(
      `findEpisodes: limit must be an integer 1..${EPISODE_QUERY_LIMIT.max}, got ${limit}`,
    );
  const text = q.text?.trim() ? q.text.trim() : null;
  const entityType = q.entity?.entityType ?? null;
  const { rows } = await db.query<{
    id: string;
    kind: 'task' | 'summary';
    task_key: string;
    workflow_id: string;
    goal: string;
    outcome: string;
    started_at: Date;
    ended_at: Date;
    step_count: number;
    steps: Json;
    message_count: number;
    observation_ids: string[];
    all_tags: string[];
    summary: Json | null;
    summarized_into: string | null;
  }>(
    `with ent as (
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
      where ${text === null ? '$2::text is null' : TEXT_MATCH}
        and ${entityType === null ? 'true' : ABOUT_ENTITY}
        and ($5::text[] is null or (e.tags || coalesce(x.tags, '{}')) @> $5::text[])
        and ($6::text is null or e.outcome = $6)
        and ($7::text is null or e.task_key = $7)
        and ($8::text = 'any' or e.kind = $8)
        and (not $9 or m.summary_id is null)
      order by case when $1::text is null then 0 else ts_rank(to_tsvector('english', e.goal), q.ts) end desc,
               e.ended_at desc, e.id
      limit $10`,
    [
      text,
      text === null ? null : escapeLike(text),
      entityType,
      q.entity?.entityId ?? null,
      q.tags && q.tags.length > 0 ? [...q.tags] : null,
      q.outcome ?? null,
      q.taskKey ?? null,
      q.kind ?? 'any',
      q.excludeSummarized ?? false,
      limit,
    ],
  );
  return rows.map((r) => ({
    id: r.id,
    kind: r.kind,
    taskKey: r.task_key,
    workflowId: r.workflow_id,
    goal: r.goal,
    outcome: r.outcome,
    startedAt: r.started_at.toISOString(),
    endedAt: r.ended_at.toISOString(),
    stepCount: r.step_count,
    steps: r.steps,
    messageCount: r.message_count,
    observationIds: r.observation_ids,
    tags: r.all_tags,
    summary: r.summary,
    summarizedInto: r.summarized_into,
  }));
}

const TAG = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$/;

/** Tags a task's episode (it need not be recorded yet). Idempotent; returns the tags that were new. */
export async function tagEpisode(db: Queryable, taskKey: string, tags: readonly string[]): Promise<string[]> {
  for (const t of tags)
    if (!TAG.test(t)) throw new RangeError(`tag "${t}" must be letters, digits and . _ : / - (max 100)`);
  if (tags.length === 0) return [];
  const { rows } = await db.query<{ tag: string }>(
    `insert into cairn.episode_tags (task_key, tag) select $1, t from unnest($2::text[]) as t
     on conflict do nothing returning tag`,
    [taskKey, [...new Set(tags)]],
  );
  return rows.map((r) => r.tag).sort();
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}
