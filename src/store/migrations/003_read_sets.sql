-- 003: read receipts, stale-decision detection, quarantines (design invariant 8, "reads are
-- evidence too"). See docs/read-receipts.md.
--
-- Everything here is append-only like the log itself (the application role may only SELECT and
-- INSERT; triggers refuse UPDATE, DELETE and TRUNCATE even for the owner). cairn.observations is
-- not touched: observations are linked to read sets through their idempotency key, which is
-- unique in the log and known before the append, so the link is written in the same statement
-- as the read set (no extra round trip after the append).

-- One row per attempt of an agent step that read memory. Per attempt, not per step: a retried
-- step re-reads and may see something else, and a refused attempt's reads are evidence too.
-- Observations link to the read set of the attempt that actually wrote them.
create table cairn.read_sets (
  id          uuid        primary key default gen_random_uuid(),
  workflow_id text        not null,
  run_id      text        not null,
  activity_id text        not null,
  attempt     int         not null check (attempt >= 0),
  task_key    text        not null,
  role        text        not null,
  agent_id    text        not null,
  created_at  timestamptz not null default clock_timestamp(),
  constraint read_sets_attempt_unique unique (workflow_id, activity_id, attempt)
);
create index read_sets_task_key_idx on cairn.read_sets (task_key, created_at);

-- What the attempt saw: entity, the version it read, and the fields it looked at (NULL: every
-- field — it enumerated them, or we cannot tell). Rows, not a jsonb column, so "who read entity
-- E at version >= v" (blast radius) is one index range scan.
create table cairn.read_set_entries (
  -- No foreign key here or on the links: only cairn.record_read_set and
  -- cairn.record_stale_refusal write them, together with their read set, and a foreign key
  -- would add a lookup and a row lock per entry to every step's append.
  read_set_id uuid not null,
  entity_type text not null,
  entity_id   text not null,
  version     int  not null check (version >= 0),
  fields      text[],
  primary key (read_set_id, entity_type, entity_id, version)
);
create index read_set_entries_entity_idx on cairn.read_set_entries (entity_type, entity_id, version) include (read_set_id);

-- Observation (by idempotency key, unique in cairn.observations) → the read set it was decided
-- on: the linked read set whose workflow, activity and attempt are the observation's (a retry
-- that replayed the append links its own read set too; see cairn.record_read_set).
create table cairn.observation_read_sets (
  idempotency_key text not null,
  read_set_id     uuid not null,
  primary key (idempotency_key, read_set_id)
);
create index observation_read_sets_read_set_idx on cairn.observation_read_sets (read_set_id);

-- Facts about observations (by idempotency key). 'stale': written under dependsOnReads 'warn'
-- although part of what its step read had moved on; details = the conflicts.
create table cairn.observation_flags (
  idempotency_key text        not null,
  flag            text        not null check (flag in ('stale')),
  read_set_id     uuid        not null references cairn.read_sets (id),
  details         jsonb       not null,
  created_at      timestamptz not null default clock_timestamp(),
  -- Like the links, a flag counts when its read set is the observation's own attempt's.
  primary key (idempotency_key, flag, read_set_id)
);

-- Attempts refused under dependsOnReads 'strict': their read set, the items they would have
-- written and the conflicts. Committed even though the step's writes were not.
create table cairn.stale_refusals (
  id               uuid        primary key default gen_random_uuid(),
  read_set_id      uuid        not null unique references cairn.read_sets (id),
  idempotency_keys text[]      not null,
  conflicts        jsonb       not null,
  created_at       timestamptz not null default clock_timestamp()
);

-- A retraction made through cairn's quarantine (retract()): the retracted observation's
-- downstream closure is tainted in reads while the quarantine is active. Lifting is a row too.
create table cairn.quarantines (
  id                  uuid        primary key default gen_random_uuid(),
  root_observation_id uuid        not null,
  -- The retraction it rests on. Not unique: after a lift, quarantining again reuses it.
  retraction_id       uuid        not null,
  reason              text        not null,
  created_by          text        not null,
  created_at          timestamptz not null default clock_timestamp()
);
create index quarantines_root_idx on cairn.quarantines (root_observation_id);

create table cairn.quarantine_lifts (
  quarantine_id uuid        primary key references cairn.quarantines (id),
  lifted_by     text        not null,
  reason        text        not null,
  lifted_at     timestamptz not null default clock_timestamp()
);

create view cairn.active_quarantines as
  select q.* from cairn.quarantines q
  where not exists (select 1 from cairn.quarantine_lifts l where l.quarantine_id = q.id);

create function cairn.refuse_evidence_change() returns trigger
language plpgsql as $$
begin
  raise exception '% is append-only', tg_table_name
    using errcode = 'CN003', detail = format('refused %s on cairn.%s', tg_op, tg_table_name);
end
$$;

do $$
declare
  t text;
begin
  foreach t in array array['read_sets', 'read_set_entries', 'observation_read_sets', 'observation_flags',
                           'stale_refusals', 'quarantines', 'quarantine_lifts'] loop
    execute format('create trigger %I before update or delete on cairn.%I
                    for each row execute function cairn.refuse_evidence_change()', t || '_append_only', t);
    execute format('create trigger %I before truncate on cairn.%I
                    for each statement execute function cairn.refuse_evidence_change()', t || '_no_truncate', t);
  end loop;
end
$$;

-- THE READ RECEIPT of one step attempt, called in the step's transaction BEFORE its append:
--   1. stores the read set (idempotent per workflow, activity and attempt), its entries and the
--      links from the items' keys; when some item depends on its reads (a mode other than
--      'off'), locks the heads of every entity read or about to be written, in sorted order
--      ("C" collation, as the append does, so concurrent steps and appends cannot deadlock on
--      each other), creating missing heads at version 0 so "read while absent" is protected too;
--   2. if a head it locked is above the version read (it knows from the same statement), then
--      with the locks held (a new statement, hence a fresh snapshot that sees every committed
--      write to those entities) finds the conflicts: entries whose entity has an observation
--      above the version read that touched a field the step read (any field when the entry's
--      fields are NULL; a retraction touches the fields of the observation it retracts);
--   3. if there are conflicts and some item is 'strict': returns refused = true (the caller
--      rolls the step back, links included, records the refusal with
--      cairn.record_stale_refusal and fails the attempt); otherwise flags the 'warn' items stale.
-- Links and flags are by idempotency key. A retry that replays an earlier attempt's append adds
-- a link (or flag) from its own read set too; readers keep only the one whose read set's
-- workflow, activity and attempt are the observation's own — the attempt that wrote it.
-- (Checking the log for the key here instead would cost a statement of its own, after the locks.)
--
-- The entries come as parallel arrays (one element per entry, as for unnest); each element of
-- p_entry_fields is a text[] literal of the fields read, or NULL for every field.
-- Returns the read set id, whether the attempt is refused, and the conflicts (jsonb array of
-- {entityType, entityId, versionRead, currentVersion, fields, observationIds}).
create function cairn.record_read_set(
  p_workflow_id text, p_run_id text, p_activity_id text, p_attempt int,
  p_task_key text, p_role text, p_agent_id text,
  p_entry_type text[], p_entry_id text[], p_entry_version int[], p_entry_fields text[],
  p_write_type text[], p_write_id text[],
  p_keys text[], p_modes text[]
)
returns table (read_set_id uuid, refused boolean, conflicts jsonb)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
-- Planned once per session: the statements' shapes do not depend on the arrays' contents, and
-- re-planning the four-part first statement on every call would cost more than running it.
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
  v_id        uuid;
  v_check     boolean := coalesce('strict' = any(p_modes) or 'warn' = any(p_modes), false);
  v_conflicts jsonb := '[]'::jsonb;
  v_moved     boolean := false;
begin
  -- 1. One statement: the read set, its entries, its links and, when some item depends on its
  --    reads, the heads locked in sorted order (like the append). Data-modifying CTEs all run
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
  ),
  -- The heads: each proposed at the (lowest) version read, or 0 for an entity only written. A
  -- missing head is created at that version (0: an entity read while absent, or new); an
  -- existing one is locked, and updated in place (to itself) only where it is above the
  -- proposal: those rows come back, so the entities read that moved on are known here, with
  -- the lock held. When none did, nothing else is needed: a head at the version read means no
  -- observation was appended since. Rows not updated are still locked (ON CONFLICT locks every
  -- conflicting row), as FOR UPDATE.
  locked as (
    insert into cairn.entity_heads as h (entity_type, entity_id, version, chain_hash, prev_hash)
    select x.et collate "C", x.eid collate "C", min(x.v), '', ''
    from (select u.et, u.eid, 0 as v from unnest(p_write_type, p_write_id) as u(et, eid)
          union all
          select e.t, e.i, e.v from unnest(p_entry_type, p_entry_id, p_entry_version) as e(t, i, v)) x
    where v_check
    group by 1, 2
    order by 1, 2
    on conflict (entity_type, entity_id) do update set version = h.version where h.version > excluded.version
    returning h.entity_type, h.entity_id, h.version
  )
  select rs.id,
         exists (select 1 from locked l
                   join unnest(p_entry_type, p_entry_id, p_entry_version) as e(t, i, v)
                     on e.t = l.entity_type and e.i = l.entity_id and l.version > e.v)
    into v_id, v_moved
  from rs;

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
    --    field the step read? Materialized first: the entries that moved on, so the planner
    --    starts from this attempt's few entries, not from the log.
    with moved as materialized (
      select e.t as entity_type, e.i as entity_id, e.v as version, e.f::text[] as fields, h.version as current_version
      from unnest(p_entry_type, p_entry_id, p_entry_version, p_entry_fields) as e(t, i, v, f)
      join cairn.entity_heads h on h.entity_type = e.t and h.entity_id = e.i
      where h.version > e.v
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
    -- NULL when the entry's fields are unknown (every field counted).
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
    -- Refused. The caller rolls the step back (links included) and records the refusal on its
    -- own (cairn.record_stale_refusal): this transaction's writes must not survive.
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

-- A refused attempt, recorded after its transaction rolled back: its read set (the same row if
-- it is still there) and the conflicts found under the locks. Idempotent per attempt.
create function cairn.record_stale_refusal(
  p_workflow_id text, p_run_id text, p_activity_id text, p_attempt int,
  p_task_key text, p_role text, p_agent_id text,
  p_entries jsonb, p_keys text[], p_conflicts jsonb
)
returns uuid
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
#variable_conflict use_column
declare
  v_id uuid;
begin
  insert into cairn.read_sets as r (workflow_id, run_id, activity_id, attempt, task_key, role, agent_id)
  values (p_workflow_id, p_run_id, p_activity_id, p_attempt, p_task_key, p_role, p_agent_id)
  on conflict (workflow_id, activity_id, attempt) do nothing
  returning r.id into v_id;
  if v_id is null then
    select r.id into v_id from cairn.read_sets r
    where r.workflow_id = p_workflow_id and r.activity_id = p_activity_id and r.attempt = p_attempt;
  end if;
  insert into cairn.read_set_entries (read_set_id, entity_type, entity_id, version, fields)
  select v_id, e.t, e.i, e.v, e.f
  from jsonb_to_recordset(p_entries) as e(t text, i text, v int, f text[])
  on conflict do nothing;
  insert into cairn.stale_refusals (read_set_id, idempotency_keys, conflicts)
  values (v_id, coalesce(p_keys, '{}'), p_conflicts)
  on conflict (read_set_id) do nothing;
  return v_id;
end
$$;

-- The observations naming p_parent in derived_from, by the GIN index. SECURITY DEFINER because
-- array containment is not leakproof: under row-level security (migration 006) Postgres may
-- not use it as an index condition, and would scan the log at every hop of a walk. Ids only:
-- cairn.downstream joins them to cairn.observations, where the caller's row-level security applies.
create function cairn.derived_children(p_parent uuid) returns setof uuid
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$ select d.id from cairn.observations d where d.derived_from @> array[p_parent] $$;

-- THE BLAST RADIUS: the downstream closure of some roots (one recursive query). X is downstream
-- of P when X names P in derived_from, or X was written by a step attempt whose read set has an
-- entry for P's entity at a version >= P's whose fields are unknown (NULL) or include a field P
-- wrote. p_cutoffs[i] (the version of root i's retraction, or NULL) excludes reads of a root's
-- entity at or after its retraction: they saw the state without it. Breadth-first, up to
-- p_max_depth hops; DISTINCT ON keeps one row per observation per hop, so cycles and diamonds
-- cost at most p_max_depth + 1 rows per observation; the walk stops after p_limit rows, and
-- `walked` (rows visited, at most p_limit) tells the caller whether it did. Each observation comes
-- back once, at its smallest depth, with one parent it was reached from. The rows carry what the
-- next hop needs (entity, version, field names), so a hop costs one index probe per edge type.
-- SECURITY INVOKER: the caller's row-level security applies (a hop never passes through a row it cannot see). `set jit = off`: the planner cannot
-- estimate a GIN containment probe with a per-row parameter (it assumes 0.5% of the table), which
-- pushes the cost past jit_above_cost on a big log, and compiling then takes longer than the walk.
create function cairn.downstream(p_roots uuid[], p_cutoffs int[], p_max_depth int, p_limit int)
returns table (
  observation_id uuid, depth int, parent_id uuid, via text, root_id uuid,
  entity_type text, entity_id text, entity_version int, type text, kind text,
  task_key text, workflow_id text, run_id text, activity_id text, attempt int, agent_id text, role text,
  walked bigint
)
language sql stable
set jit = off
as $$
  with recursive walk as (
      select o.id, 0 as depth, null::uuid as parent_id, 'root'::text as via, o.id as root_id, s.cutoff,
             o.entity_type, o.entity_id, o.entity_version, array(select jsonb_object_keys(o.fields)) as keys,
             o.seq, o.type, o.kind, o.task_key, o.workflow_id, o.run_id, o.activity_id, o.attempt, o.agent_id, o.role
        from unnest(p_roots, p_cutoffs) as s(id, cutoff)
        join cairn.observations o on o.id = s.id
    union all
      select distinct on (k.id) k.id, w.depth + 1, w.id, k.via, w.root_id, null::int,
             k.entity_type, k.entity_id, k.entity_version, array(select jsonb_object_keys(k.fields)),
             k.seq, k.type, k.kind, k.task_key, k.workflow_id, k.run_id, k.activity_id, k.attempt, k.agent_id, k.role
        from walk w
        cross join lateral (
            select 'derived'::text as via, d.*
              from cairn.derived_children(w.id) as c(id)
              join cairn.observations d on d.id = c.id
          union all
            select 'read'::text, o.*
              from cairn.read_set_entries e
              join cairn.read_sets r on r.id = e.read_set_id
              join cairn.observation_read_sets l on l.read_set_id = e.read_set_id
              join cairn.observations o
                on o.idempotency_key = l.idempotency_key and o.workflow_id = r.workflow_id
               and o.activity_id = r.activity_id and o.attempt = r.attempt
             where e.entity_type = w.entity_type and e.entity_id = w.entity_id
               and e.version >= w.entity_version
               and (w.cutoff is null or e.version < w.cutoff)
               and (e.fields is null or e.fields && w.keys)
               and o.id <> w.id
        ) k
       where w.depth < p_max_depth
  ),
  capped as (select * from walk limit p_limit)
  select n.id, n.depth, n.parent_id, n.via, n.root_id, n.entity_type, n.entity_id, n.entity_version, n.type, n.kind,
         n.task_key, n.workflow_id, n.run_id, n.activity_id, n.attempt, n.agent_id, n.role,
         (select count(*) from capped)
    from (select distinct on (c.id) c.* from capped c order by c.id, c.depth) n
   order by n.depth, n.seq
$$;

grant select on cairn.read_sets, cairn.read_set_entries, cairn.observation_read_sets, cairn.observation_flags,
  cairn.stale_refusals, cairn.active_quarantines to cairn_app;
grant select, insert on cairn.quarantines, cairn.quarantine_lifts to cairn_app;
revoke execute on function cairn.record_read_set(text, text, text, int, text, text, text, text[], text[], int[], text[], text[], text[], text[], text[]) from public;
grant execute on function cairn.record_read_set(text, text, text, int, text, text, text, text[], text[], int[], text[], text[], text[], text[], text[]) to cairn_app;
revoke execute on function cairn.record_stale_refusal(text, text, text, int, text, text, text, jsonb, text[], jsonb) from public;
grant execute on function cairn.record_stale_refusal(text, text, text, int, text, text, text, jsonb, text[], jsonb) to cairn_app;
grant execute on function cairn.downstream(uuid[], int[], int, int) to cairn_app;
revoke execute on function cairn.derived_children(uuid) from public;
grant execute on function cairn.derived_children(uuid) to cairn_app;
