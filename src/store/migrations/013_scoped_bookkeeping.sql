-- 013: the rest of what an agent can learn from is scoped like the observations (issue #11,
-- item 5), and a read receipt catches entities created while it is recorded (item 2).
--
-- Whose rows are whose:
--   * A task's bookkeeping belongs to the task's own scope, `task:<task key>`: its context
--     messages (and their archive), its episode and episode tags, its read sets (with their
--     entries, links to observations, stale flags and refusals). Summary episodes are written
--     under the maintenance task key, so they belong to `task:cairn-maintenance` (they condense
--     goals of every scope: only all-scopes sessions and grants naming that scope see them).
--   * A claim belongs to the scope it was last granted under, each claim event to the scope it
--     was made under, a work item to the scope it was registered under: the scope the
--     transaction acts for (cairn.acting_scope below). Rows made outside any such scope (older
--     rows, tools with '{*}') have none and are seen only by all-scopes sessions.
--
-- Who sees them (row-level security for cairn_app; the owner and superusers are not bound, as
-- for the log): a session sees a task's bookkeeping when its read or write grant names the
-- task's scope, or when the transaction acts for that task (cairn.task_key, which
-- src/store/scope.ts withScope sets for an agent step's commit and for the task workflow's own
-- activities; a role granted neither read nor write of its task still persists and
-- acknowledges its inbox). '{*}' sees everything. Claims, claim events and work items: their
-- scope in the same set. The application writes messages, episodes and episode tags itself
-- (inside that set: WITH CHECK); everything else only through SECURITY DEFINER functions.
--
-- The settings are chosen by the worker process, as in 006: this bounds what an agent reaches
-- through the store, not what code running arbitrary SQL as cairn_app can do (docs/coordination.md
-- "The boundary"). cairn.task_key also binds the task of every append in the transaction
-- (cairn.check_provenance, CNP01).

-- The scopes whose task bookkeeping the caller may see: read grant ∪ write grant ∪ the task the
-- transaction acts for. Policies call it once per statement (a scalar subquery, an InitPlan).
create function cairn.bookkeeping_scopes() returns text[]
language sql stable parallel safe
as $$
  select array_remove(
           coalesce(nullif(pg_catalog.current_setting('cairn.read_scopes', true), '')::text[], '{}'::text[])
           || coalesce(nullif(pg_catalog.current_setting('cairn.write_scopes', true), '')::text[], '{}'::text[])
           || ('task:' || nullif(pg_catalog.current_setting('cairn.task_key', true), '')),
           null)
$$;

-- The one scope the transaction acts for: its task (cairn.task_key), else its write grant when
-- that names exactly one scope; null otherwise (no grant, several scopes, or '{*}'). One
-- expression, no subquery, so that the planner inlines it (a default and a trigger call it on
-- every claim; not inlined it cost about 15 µs a call).
create function cairn.acting_scope() returns text
language sql stable parallel safe
as $$
  select coalesce('task:' || nullif(pg_catalog.current_setting('cairn.task_key', true), ''),
                  case when pg_catalog.cardinality(nullif(pg_catalog.current_setting('cairn.write_scopes', true), '')::text[]) = 1
                        and (nullif(pg_catalog.current_setting('cairn.write_scopes', true), '')::text[])[1] <> '*'
                       then (nullif(pg_catalog.current_setting('cairn.write_scopes', true), '')::text[])[1] end)
$$;

grant execute on function cairn.bookkeeping_scopes(), cairn.acting_scope() to cairn_app;

-- ---------------------------------------------------------------------------------------------
-- Context messages: the task's. Written by the application (send, admit, acknowledge).

alter table cairn.context_messages enable row level security;
create policy context_messages_in_task_scope on cairn.context_messages
  for all to cairn_app
  using ((select '*' = any (cairn.bookkeeping_scopes()))
         or 'task:' || task_key = any ((select cairn.bookkeeping_scopes())::text[]))
  with check ((select '*' = any (cairn.bookkeeping_scopes()))
              or 'task:' || task_key = any ((select cairn.bookkeeping_scopes())::text[]));

alter table cairn.context_messages_archive enable row level security;
create policy context_messages_archive_in_task_scope on cairn.context_messages_archive
  for select to cairn_app
  using ((select '*' = any (cairn.bookkeeping_scopes()))
         or 'task:' || task_key = any ((select cairn.bookkeeping_scopes())::text[]));

-- ---------------------------------------------------------------------------------------------
-- Episodes: the task's (goal, step outputs, observation ids). Insert-only for the application.

alter table cairn.episodes enable row level security;
create policy episodes_in_task_scope on cairn.episodes
  for all to cairn_app
  using ((select '*' = any (cairn.bookkeeping_scopes()))
         or 'task:' || task_key = any ((select cairn.bookkeeping_scopes())::text[]))
  with check ((select '*' = any (cairn.bookkeeping_scopes()))
              or 'task:' || task_key = any ((select cairn.bookkeeping_scopes())::text[]));

alter table cairn.episode_tags enable row level security;
create policy episode_tags_in_task_scope on cairn.episode_tags
  for all to cairn_app
  using ((select '*' = any (cairn.bookkeeping_scopes()))
         or 'task:' || task_key = any ((select cairn.bookkeeping_scopes())::text[]))
  with check ((select '*' = any (cairn.bookkeeping_scopes()))
              or 'task:' || task_key = any ((select cairn.bookkeeping_scopes())::text[]));

-- Which summary an episode went into: seen with the episode (the policy's subquery is itself
-- filtered by the episodes' policy).
alter table cairn.episode_summary_members enable row level security;
create policy episode_summary_members_with_episode on cairn.episode_summary_members
  for all to cairn_app
  using (exists (select 1 from cairn.episodes e where e.id = episode_id))
  with check (exists (select 1 from cairn.episodes e where e.id = episode_id));

-- ---------------------------------------------------------------------------------------------
-- Read sets: the task's. Written only by cairn.record_read_set / record_stale_refusal.

alter table cairn.read_sets enable row level security;
create policy read_sets_in_task_scope on cairn.read_sets
  for select to cairn_app
  using ((select '*' = any (cairn.bookkeeping_scopes()))
         or 'task:' || task_key = any ((select cairn.bookkeeping_scopes())::text[]));

-- Entries, links, flags and refusals are seen with their read set (the subquery is filtered by
-- the read sets' policy). A stale flag names entities the writer read, so it is the writer's
-- task's evidence, not the observation's reader's.
alter table cairn.read_set_entries enable row level security;
create policy read_set_entries_with_read_set on cairn.read_set_entries
  for select to cairn_app
  using (exists (select 1 from cairn.read_sets r where r.id = read_set_id));

alter table cairn.observation_read_sets enable row level security;
create policy observation_read_sets_with_read_set on cairn.observation_read_sets
  for select to cairn_app
  using (exists (select 1 from cairn.read_sets r where r.id = read_set_id));

alter table cairn.observation_flags enable row level security;
create policy observation_flags_with_read_set on cairn.observation_flags
  for select to cairn_app
  using (exists (select 1 from cairn.read_sets r where r.id = read_set_id));

alter table cairn.stale_refusals enable row level security;
create policy stale_refusals_with_read_set on cairn.stale_refusals
  for select to cairn_app
  using (exists (select 1 from cairn.read_sets r where r.id = read_set_id));

-- ---------------------------------------------------------------------------------------------
-- Claims, claim events, work items: the scope they were taken (made, registered) under.
-- Written only by the claim functions (SECURITY DEFINER), which stay as they are: the scope is
-- filled in by a default (new rows) and, for a claim granted again, by a trigger.

alter table cairn.claims add column scope text default cairn.acting_scope();
alter table cairn.claim_events add column scope text default cairn.acting_scope();
alter table cairn.work_items add column scope text default cairn.acting_scope();

-- A new grant (a new token) moves the claim to the granting transaction's scope.
create function cairn.claims_set_scope() returns trigger
language plpgsql as $$
begin
  new.scope := cairn.acting_scope();
  return new;
end
$$;

create trigger claims_scope_on_grant
  before update on cairn.claims
  for each row when (new.token is distinct from old.token)
  execute function cairn.claims_set_scope();

alter table cairn.claims enable row level security;
create policy claims_in_scope on cairn.claims
  for select to cairn_app
  using ((select '*' = any (cairn.bookkeeping_scopes()))
         or scope = any ((select cairn.bookkeeping_scopes())::text[]));

alter table cairn.claim_events enable row level security;
create policy claim_events_in_scope on cairn.claim_events
  for select to cairn_app
  using ((select '*' = any (cairn.bookkeeping_scopes()))
         or scope = any ((select cairn.bookkeeping_scopes())::text[]));

alter table cairn.work_items enable row level security;
create policy work_items_in_scope on cairn.work_items
  for select to cairn_app
  using ((select '*' = any (cairn.bookkeeping_scopes()))
         or scope = any ((select cairn.bookkeeping_scopes())::text[]));

-- ---------------------------------------------------------------------------------------------
-- record_read_set: entities read while absent.
--
-- 009 stopped creating head rows for any name it was given and locked only the heads that
-- existed, so an entity read while absent was not locked: a writer creating it concurrently
-- (its head inserted but not committed when the read set was recorded, or created after) was
-- neither waited for nor reported, and a strict decision on "it does not exist" committed next
-- to the entity's first observation (two steps that each read what the other creates both
-- committed: write skew).
--
-- Now one INSERT … ON CONFLICT takes every lock in sorted order, as the append does: an
-- existing head (of a scope the caller may read) is locked; an absent one gets a placeholder
-- row, which is deleted again at once. The placeholder's insert stays uncommitted until the
-- caller's transaction ends, so a writer creating that entity waits for it (its own insert
-- conflicts with an in-progress one), and a placeholder insert that meets a writer's
-- uncommitted head waits for that writer, then locks the head and sees its version: the
-- entity moved on. No head survives the transaction. Heads of scopes the caller may not read
-- are left out (neither locked nor reported), unless created in the instant between the
-- statement's snapshot and its insert; then they are locked, never reported.
create or replace function cairn.record_read_set(
  p_workflow_id text, p_run_id text, p_activity_id text, p_attempt int,
  p_task_key text, p_role text, p_agent_id text,
  p_entry_type text[], p_entry_id text[], p_entry_version int[], p_entry_fields text[],
  p_write_type text[], p_write_id text[],
  p_keys text[], p_modes text[]
)
returns table (read_set_id uuid, refused boolean, conflicts jsonb)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
  v_id        uuid;
  v_check     boolean := coalesce('strict' = any(p_modes) or 'warn' = any(p_modes), false);
  v_conflicts jsonb := '[]'::jsonb;
  v_moved     boolean := false;
  v_ph_type   text[];
  v_ph_id     text[];
  v_grant     text[] := cairn.scope_grant('read');
  v_all       boolean := case when cairn.scope_grant('read') is null then not cairn.acting_as_application()
                              else coalesce('*' = any (cairn.scope_grant('read')), false) end;
begin
  -- 0. When some item depends on its reads: lock (or hold the place of) every entity read or
  --    written, in sorted order. Each is proposed at the lowest version read (0: only written);
  --    a head above its proposal is updated to itself so that it comes back (moved on), every
  --    other conflicting head is locked all the same (ON CONFLICT locks the rows it meets). A
  --    row that comes back at its proposal is a placeholder this statement inserted.
  if v_check then
    with keys as (
      select x.et collate "C" as et, x.eid collate "C" as eid, min(x.v) as v
      from (select u.et, u.eid, 0 as v from unnest(p_write_type, p_write_id) as u(et, eid)
            union all
            select e.t, e.i, e.v from unnest(p_entry_type, p_entry_id, p_entry_version) as e(t, i, v)) x
      group by 1, 2
    ),
    locked as (
      insert into cairn.entity_heads as h (entity_type, entity_id, version, chain_hash, prev_hash)
      select k.et, k.eid, k.v, '', ''
      from keys k
      where not exists (select 1 from cairn.entity_heads o
                         where o.entity_type = k.et and o.entity_id = k.eid
                           and not (v_all or coalesce(o.scope = any (v_grant), false)) and o.scope is not null)
      order by 1, 2
      on conflict (entity_type, entity_id) do update set chain_hash = h.chain_hash where h.version > excluded.version
      returning h.entity_type, h.entity_id, h.version, h.scope
    )
    select coalesce(bool_or(l.version > e.v and (v_all or coalesce(l.scope = any (v_grant), false))), false),
           array_agg(l.entity_type) filter (where l.version = k.v),
           array_agg(l.entity_id) filter (where l.version = k.v)
      into v_moved, v_ph_type, v_ph_id
    from locked l
    join keys k on k.et = l.entity_type and k.eid = l.entity_id
    left join unnest(p_entry_type, p_entry_id, p_entry_version) as e(t, i, v)
      on e.t = l.entity_type and e.i = l.entity_id;
    -- The placeholders go at once; their inserts stay in progress until this transaction ends
    -- (only it could see them, and writers of those entities wait for it).
    if v_ph_type is not null then
      delete from cairn.entity_heads h
       using unnest(v_ph_type, v_ph_id) as p(et, eid)
       where h.entity_type = p.et and h.entity_id = p.eid;
    end if;
  end if;

  -- 1. One statement: the read set, its entries and its links. Data-modifying CTEs all run
  --    to completion whether read or not.
  with rs as (
    insert into cairn.read_sets as r (workflow_id, run_id, activity_id, attempt, task_key, role, agent_id)
    values (p_workflow_id, p_run_id, p_activity_id, p_attempt, p_task_key, p_role, p_agent_id)
    on conflict (workflow_id, activity_id, attempt) do nothing
    returning r.id
  ),
  entries as (
    insert into cairn.read_set_entries (read_set_id, entity_type, entity_id, version, fields)
    select rs.id, e.t, e.i, e.v, e.f::text[]
    from rs, unnest(p_entry_type, p_entry_id, p_entry_version, p_entry_fields) as e(t, i, v, f)
    on conflict do nothing
  ),
  links as (
    insert into cairn.observation_read_sets (idempotency_key, read_set_id)
    select u.key, rs.id from rs, unnest(p_keys) as u(key)
    on conflict do nothing
  )
  select rs.id into v_id from rs;

  if v_id is null then
    -- This attempt already has a read set (it ran its transaction before): add to it.
    select r.id into v_id from cairn.read_sets r
    where r.workflow_id = p_workflow_id and r.activity_id = p_activity_id and r.attempt = p_attempt;
    insert into cairn.read_set_entries (read_set_id, entity_type, entity_id, version, fields)
    select v_id, e.t, e.i, e.v, e.f::text[]
    from unnest(p_entry_type, p_entry_id, p_entry_version, p_entry_fields) as e(t, i, v, f)
    on conflict do nothing;
    insert into cairn.observation_read_sets (idempotency_key, read_set_id)
    select u.key, v_id from unnest(p_keys) as u(key)
    on conflict do nothing;
    v_moved := true; -- the statement above could not tell (no row came back): check
  end if;

  if v_check and v_moved then
    -- 2. Only when an entity read has moved on, a new statement: a fresh snapshot, taken with
    --    the locks held, sees every committed write to these entities; which of them touched a
    --    field the step read? (As in 009.)
    with moved as materialized (
      select e.t as entity_type, e.i as entity_id, e.v as version, e.f::text[] as fields, h.version as current_version
      from unnest(p_entry_type, p_entry_id, p_entry_version, p_entry_fields) as e(t, i, v, f)
      join cairn.entity_heads h on h.entity_type = e.t and h.entity_id = e.i
      where h.version > e.v and (v_all or h.scope = any (v_grant))
    ),
    touching as (
      select m.entity_type, m.entity_id, m.version, m.current_version, o.id, o.entity_version, k.touched
      from moved m
      join cairn.observations o
        on o.entity_type = m.entity_type and o.entity_id = m.entity_id
       and o.entity_version > m.version and o.entity_version <= m.current_version
      left join cairn.observations tg on o.kind = 'retraction' and tg.id = o.target_id
      cross join lateral (
        select array(select f from jsonb_object_keys(
                       case when o.kind = 'retraction' then coalesce(tg.fields, '{}'::jsonb) else o.fields end) as f
                     where f = any(m.fields)) as touched
      ) k
      where m.fields is null or cardinality(k.touched) > 0
    ),
    per_entry as (
      select t.entity_type, t.entity_id, t.version, t.current_version,
             (array_agg(t.id order by t.entity_version))[1:10] as ids
      from touching t
      group by 1, 2, 3, 4
    ),
    per_entry_fields as (
      select t.entity_type, t.entity_id, t.version, array_agg(distinct f order by f) as touched
      from touching t cross join lateral unnest(t.touched) as f
      group by 1, 2, 3
    )
    select coalesce(jsonb_agg(jsonb_build_object(
             'entityType', p.entity_type, 'entityId', p.entity_id, 'versionRead', p.version,
             'currentVersion', p.current_version, 'fields', pf.touched, 'observationIds', p.ids)
             order by p.entity_type, p.entity_id, p.version), '[]'::jsonb)
      into v_conflicts
    from per_entry p
    left join per_entry_fields pf using (entity_type, entity_id, version);
  end if;

  if jsonb_array_length(v_conflicts) > 0 and 'strict' = any(p_modes) then
    return query select v_id, true, v_conflicts;
    return;
  end if;

  if jsonb_array_length(v_conflicts) > 0 then
    insert into cairn.observation_flags (idempotency_key, flag, read_set_id, details)
    select u.key, 'stale', v_id, jsonb_build_object('conflicts', v_conflicts)
    from unnest(p_keys, p_modes) as u(key, mode)
    where u.mode = 'warn'
    on conflict do nothing;
  end if;
  return query select v_id, false, v_conflicts;
end
$$;
