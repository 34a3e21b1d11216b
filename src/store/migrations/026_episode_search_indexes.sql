-- cairn: non-breaking
-- 026: episodes about an entity, or matching a text, are found by index, not by reading every
-- episode.
--
-- findEpisodes (src/store/episodeSearch.ts) matched an entity with one OR of three conditions:
-- the episode's task wrote an observation about it (task_key), the episode links one of its
-- observations (observation_ids &&), or a summary condensed such a task (summary -> 'taskKeys'
-- ?|). No index answered observation_ids or the summaries' task keys, nor an OR of them, so
-- Postgres walked every episode newest first through episodes_ended_at until it had `limit`
-- matches: with fewer (the usual case), the whole table, 8-14 ms at 10,000 episodes and growing
-- with them (test/integration/plansAtScale.test.ts). Text search asked the full-text match in an
-- OR with the fragment match (ILIKE), so episodes_goal_fts (005) went unused and to_tsvector ran
-- on every goal (110-310 ms at 10,000 episodes). After: 3-4 ms and 13-18 ms.
--
-- Asking each condition on its own (a UNION of candidates) is not enough under row-level
-- security (013): as cairn_app, a condition on cairn.episodes may use an index only if its
-- operator is leakproof (else it could see rows the policy hides before the policy runs), and
-- &&, ?| and @@ are not. So the candidates come from the two functions below, SECURITY DEFINER
-- like cairn.read_set_readers (023), which read the episodes as their owner, by index, and keep
-- only those of the caller's scopes (the policy's own test, or every one for an owner or
-- superuser). findEpisodes joins them to cairn.episodes by id, still under its policy, and
-- applies the rest of the query as before: the same rows, in the same order. The entity's
-- observations are still read under the caller's policy (as before, an agent's entity matches
-- count only observations it may read) and passed in.
--
-- The fragment match still reads every goal (ILIKE '%…%' has no index short of pg_trgm, an
-- extension Cairn does not require), but no longer runs to_tsvector on each.
--
-- Summaries are few (one per maintenance run), so their index is partial: task episodes pay
-- nothing for it. fastupdate off on observation_ids, as 023 did for read set parts: a reader of a
-- GIN index scans its whole pending list on every lookup; an episode is inserted once per task.
--
-- Like every migration this runs in one transaction, so CREATE INDEX cannot be CONCURRENTLY: it
-- holds a SHARE lock on cairn.episodes while it builds, and recording an episode (the end of
-- every task) waits for it; reads do not. Both builds together took 0.1 s at 10,000 episodes.

create index episodes_observation_ids_idx on cairn.episodes using gin (observation_ids) with (fastupdate = off);
create index episodes_summary_task_keys_idx on cairn.episodes using gin ((summary -> 'taskKeys'))
  where kind = 'summary';

-- Episodes whose task is one of p_task_keys, that link one of p_observation_ids, or summaries
-- that condensed one of p_task_keys' episodes; of the caller's scopes.
create function cairn.episodes_about(p_observation_ids uuid[], p_task_keys text[])
 returns setof uuid
 language sql
 stable security definer rows 10
 set search_path to 'pg_catalog', 'pg_temp'
as $function$
  select u.id
    from (select a.id, a.task_key from cairn.episodes a where a.task_key = any (p_task_keys)
          union
          select a.id, a.task_key from cairn.episodes a where a.observation_ids && p_observation_ids
          union
          select a.id, a.task_key from cairn.episodes a
           where a.kind = 'summary' and (a.summary -> 'taskKeys') ?| p_task_keys) u
   -- The policy of cairn.episodes (013); an owner or superuser sees every episode.
   where (select '*' = any (cairn.bookkeeping_scopes()))
      or 'task:' || u.task_key = any ((select cairn.bookkeeping_scopes())::text[])
      or (select not cairn.acting_as_application())
$function$;

-- Episodes whose goal matches p_query (full text, English) or contains p_pattern (an ILIKE
-- pattern, escaped with \), or summaries one of whose condensed goals does; of the caller's
-- scopes.
create function cairn.episodes_matching(p_query tsquery, p_pattern text)
 returns setof uuid
 language sql
 stable security definer rows 10
 set search_path to 'pg_catalog', 'pg_temp'
as $function$
  select u.id
    from (select t.id, t.task_key from cairn.episodes t where to_tsvector('english', t.goal) @@ p_query
          union
          select t.id, t.task_key from cairn.episodes t where t.goal ilike '%' || p_pattern || '%' escape '\'
          union
          select t.id, t.task_key from cairn.episodes t
           where t.kind = 'summary'
             and exists (select 1 from jsonb_array_elements_text(t.summary -> 'goals') g(goal)
                          where g.goal ilike '%' || p_pattern || '%' escape '\'
                             or to_tsvector('english', g.goal) @@ p_query)) u
   where (select '*' = any (cairn.bookkeeping_scopes()))
      or 'task:' || u.task_key = any ((select cairn.bookkeeping_scopes())::text[])
      or (select not cairn.acting_as_application())
$function$;

revoke execute on function cairn.episodes_about(uuid[], text[]) from public;
grant execute on function cairn.episodes_about(uuid[], text[]) to cairn_app;
revoke execute on function cairn.episodes_matching(tsquery, text) from public;
grant execute on function cairn.episodes_matching(tsquery, text) to cairn_app;
