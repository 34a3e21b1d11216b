-- cairn: non-breaking
-- 023: a read set's entries stored as one row per recording (issue #14, "Read sets, round 4" in
-- bench/README.md).
--
-- 003 stored one cairn.read_set_entries row per entry: a 20-entity read set was 20 heap tuples
-- and 40 btree insertions (the primary key, led by the read set's random uuid, and the per-entity
-- index), ≈ 0.26 ms of the ≈ 0.6 ms a read set adds to an append. Now each call of
-- cairn.record_read_set (or cairn.record_stale_refusal) that adds entries stores one
-- cairn.read_set_parts row: the entries as four aligned arrays (type, id, version, fields, each
-- fields element the text[] literal of the fields read, or NULL when unknown), plus the array of
-- the entities' keys (type || chr(31) || id) under a GIN index for the per-entity lookup the blast
-- radius makes. A read set is usually one part; an attempt that records again adds a part with
-- only the entries its read set does not have yet (the read set's row is locked first, so two
-- such calls do not both add an entry): every (read set, type, id, version) is stored once and
-- the first recording's fields win, as before (the primary key with ON CONFLICT DO NOTHING).
--
-- cairn.read_set_entries becomes a view over the parts, with the same columns, so what reads it
-- (getReadSet, readSetOfObservation, psql) answers as before. security_invoker: the parts'
-- row-level security (the same policy the table had: an entry is seen with its read set) applies
-- to whoever queries the view. The parts are append-only like the table was (the same triggers);
-- the view is not updatable. Existing entries move into one part per read set.
--
-- The blast radius (cairn.downstream) finds the read sets that read an entity through
-- cairn.read_set_readers: SECURITY DEFINER for the same reason as cairn.derived_children (array
-- containment is not leakproof, so under row-level security the GIN index could not be used);
-- it returns read set ids only, of read sets the caller may see (the read sets' policy, written
-- out), and downstream joins them to cairn.read_sets under the caller's row-level security.
--
-- Older code keeps working against this schema: it calls the same functions with the same
-- signatures and reads read_set_entries with the same columns and the same answers, so the
-- migration is non-breaking. (Only an owner's direct INSERT into read_set_entries, which no
-- application code makes, now fails: the view is not insertable.)

create table cairn.read_set_parts (
  read_set_id  uuid not null,
  entity_types text[] not null,
  entity_ids   text[] not null,
  versions     int[] not null,
  fields       text[] not null,
  entity_keys  text[] not null,
  constraint read_set_parts_shape check (
    cardinality(entity_types) > 0
    and cardinality(entity_ids) = cardinality(entity_types)
    and cardinality(versions) = cardinality(entity_types)
    and cardinality(fields) = cardinality(entity_types)
    and cardinality(entity_keys) = cardinality(entity_types)
    and array_position(entity_types, null) is null
    and array_position(entity_ids, null) is null
    and array_position(versions, null) is null
    and 0 <= all (versions))
);
create index read_set_parts_read_set_idx on cairn.read_set_parts (read_set_id);
-- fastupdate off: a reader of a GIN index scans its whole pending list (up to 4 MB by default) on
-- every lookup, and the blast radius looks up once per node it walks; inserting the keys at once
-- costs ≈ 30–40 µs more per read set (bench/README.md, "Read sets, round 4").
create index read_set_parts_entity_idx on cairn.read_set_parts using gin (entity_keys) with (fastupdate = off);

create trigger read_set_parts_append_only before update or delete on cairn.read_set_parts
  for each row execute function cairn.refuse_evidence_change();
create trigger read_set_parts_no_truncate before truncate on cairn.read_set_parts
  for each statement execute function cairn.refuse_evidence_change();

alter table cairn.read_set_parts enable row level security;
create policy read_set_parts_with_read_set on cairn.read_set_parts
  for select to cairn_app
  using (exists (select 1 from cairn.read_sets r where r.id = read_set_id));

-- The existing entries: one part per read set.
insert into cairn.read_set_parts (read_set_id, entity_types, entity_ids, versions, fields, entity_keys)
select e.read_set_id,
       array_agg(e.entity_type order by e.entity_type, e.entity_id, e.version),
       array_agg(e.entity_id order by e.entity_type, e.entity_id, e.version),
       array_agg(e.version order by e.entity_type, e.entity_id, e.version),
       array_agg(e.fields::text order by e.entity_type, e.entity_id, e.version),
       array_agg(e.entity_type || chr(31) || e.entity_id order by e.entity_type, e.entity_id, e.version)
  from cairn.read_set_entries e
 group by e.read_set_id;

drop table cairn.read_set_entries;

create view cairn.read_set_entries with (security_invoker = true) as
  select p.read_set_id, e.entity_type, e.entity_id, e.version, e.fields::text[] as fields
    from cairn.read_set_parts p
   cross join lateral unnest(p.entity_types, p.entity_ids, p.versions, p.fields)
         as e(entity_type, entity_id, version, fields);
comment on view cairn.read_set_entries is
  'One row per read-set entry (read set, entity, version, fields read; NULL fields: unknown), over cairn.read_set_parts (migration 023).';

-- An UPDATE or DELETE through the view is refused as the table refused it (CN003, append-only).
create trigger read_set_entries_append_only instead of update or delete on cairn.read_set_entries
  for each row execute function cairn.refuse_evidence_change();

grant select on cairn.read_set_parts, cairn.read_set_entries to cairn_app;

-- Adds entries to an existing read set: those it does not have yet, the first of duplicates.
-- The read set's row is locked first, so concurrent additions to one read set take turns (the
-- next one's statements see what the first added). Only the definer functions below call it.
create function cairn.add_read_set_entries(p_id uuid, p_type text[], p_id_ text[], p_version int[], p_fields text[])
returns void
language sql volatile set search_path = pg_catalog, pg_temp
as $$
  select 1 from cairn.read_sets r where r.id = p_id for no key update;
  insert into cairn.read_set_parts (read_set_id, entity_types, entity_ids, versions, fields, entity_keys)
  select p_id, array_agg(d.t), array_agg(d.i), array_agg(d.v), array_agg(d.f), array_agg(d.t || chr(31) || d.i)
    from (select distinct on (u.t, u.i, u.v) u.t, u.i, u.v, (u.f::text[])::text as f
            from unnest(p_type, p_id_, p_version, p_fields) with ordinality as u(t, i, v, f, o)
           where not exists (select 1 from cairn.read_set_entries x
                              where x.read_set_id = p_id and x.entity_type = u.t and x.entity_id = u.i
                                and x.version = u.v)
           order by u.t, u.i, u.v, u.o) d
  having count(*) > 0;
$$;
revoke execute on function cairn.add_read_set_entries(uuid, text[], text[], int[], text[]) from public;

-- The read sets with an entry for (p_entity_type, p_entity_id) at a version in [p_from, p_before)
-- (p_before NULL: no bound) whose fields are unknown or meet p_keys: one row per such entry, as
-- the entries table gave. By the GIN index, then the exact test on the unnested entries. Only read
-- sets the caller may see (the read sets' policy: for the application role, '*' or the read set's
-- task among its bookkeeping scopes).
create function cairn.read_set_readers(p_entity_type text, p_entity_id text, p_from int, p_before int, p_keys text[])
returns setof uuid
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
  select p.read_set_id
    from cairn.read_set_parts p
   cross join lateral unnest(p.entity_types, p.entity_ids, p.versions, p.fields) as e(t, i, v, f)
   where p.entity_keys @> array[p_entity_type || chr(31) || p_entity_id]
     and e.t = p_entity_type and e.i = p_entity_id and e.v >= p_from
     and (p_before is null or e.v < p_before)
     and (e.f is null or e.f::text[] && p_keys)
     -- Cheapest first, each subquery without outer reference an InitPlan run at most once per
     -- call, and only when reached: acting_as_application reads the catalogs.
     and ((select '*' = any (cairn.bookkeeping_scopes()))
          or exists (select 1 from cairn.read_sets r
                      where r.id = p.read_set_id
                        and 'task:' || r.task_key = any ((select cairn.bookkeeping_scopes())::text[]))
          or (select not cairn.acting_as_application()))
$$;
revoke execute on function cairn.read_set_readers(text, text, int, int, text[]) from public;
grant execute on function cairn.read_set_readers(text, text, int, int, text[]) to cairn_app;

-- The writers: the entries as one part (a new read set) or through add_read_set_entries (an
-- attempt recording again, a refusal). Otherwise as before (013 and 003).
CREATE OR REPLACE FUNCTION cairn.record_read_set(p_workflow_id text, p_run_id text, p_activity_id text, p_attempt integer, p_task_key text, p_role text, p_agent_id text, p_entry_type text[], p_entry_id text[], p_entry_version integer[], p_entry_fields text[], p_write_type text[], p_write_id text[], p_keys text[], p_modes text[])
 RETURNS TABLE(read_set_id uuid, refused boolean, conflicts jsonb)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
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
    -- One part: the entries (the first of duplicates), their fields as canonical literals.
    insert into cairn.read_set_parts (read_set_id, entity_types, entity_ids, versions, fields, entity_keys)
    select rs.id, d.ts, d.ids, d.vs, d.fs, d.ks
    from rs, (select array_agg(u.t) as ts, array_agg(u.i) as ids, array_agg(u.v) as vs, array_agg(u.f) as fs,
                     array_agg(u.t || chr(31) || u.i) as ks
                from (select distinct on (e.t, e.i, e.v) e.t, e.i, e.v, (e.f::text[])::text as f
                        from unnest(p_entry_type, p_entry_id, p_entry_version, p_entry_fields)
                             with ordinality as e(t, i, v, f, o)
                       order by e.t, e.i, e.v, e.o) u
              having count(*) > 0) d
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
    perform cairn.add_read_set_entries(v_id, p_entry_type, p_entry_id, p_entry_version, p_entry_fields);
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
$function$;

CREATE OR REPLACE FUNCTION cairn.record_stale_refusal(p_workflow_id text, p_run_id text, p_activity_id text, p_attempt integer, p_task_key text, p_role text, p_agent_id text, p_entries jsonb, p_keys text[], p_conflicts jsonb)
 RETURNS uuid
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
  perform cairn.add_read_set_entries(v_id, array_agg(e.t), array_agg(e.i), array_agg(e.v), array_agg(e.f::text))
     from jsonb_to_recordset(p_entries) as e(t text, i text, v int, f text[]);
  insert into cairn.stale_refusals (read_set_id, idempotency_keys, conflicts)
  values (v_id, coalesce(p_keys, '{}'), p_conflicts)
  on conflict (read_set_id) do nothing;
  return v_id;
end
$function$;

-- The blast radius: the read edges through cairn.read_set_readers, with the same tests (entity,
-- version at or above the parent's and below the root's retraction, fields unknown or meeting the
-- parent's); otherwise as in 003.
CREATE OR REPLACE FUNCTION cairn.downstream(p_roots uuid[], p_cutoffs integer[], p_max_depth integer, p_limit integer)
 RETURNS TABLE(observation_id uuid, depth integer, parent_id uuid, via text, root_id uuid, entity_type text, entity_id text, entity_version integer, type text, kind text, task_key text, workflow_id text, run_id text, activity_id text, attempt integer, agent_id text, role text, walked bigint)
 LANGUAGE sql
 STABLE
 SET jit TO 'off'
AS $function$
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
              from cairn.read_set_readers(w.entity_type, w.entity_id, w.entity_version, w.cutoff, w.keys) as e(read_set_id)
              join cairn.read_sets r on r.id = e.read_set_id
              join cairn.observation_read_sets l on l.read_set_id = e.read_set_id
              join cairn.observations o
                on o.idempotency_key = l.idempotency_key and o.workflow_id = r.workflow_id
               and o.activity_id = r.activity_id and o.attempt = r.attempt
             where o.id <> w.id
        ) k
       where w.depth < p_max_depth
  ),
  capped as (select * from walk limit p_limit)
  select n.id, n.depth, n.parent_id, n.via, n.root_id, n.entity_type, n.entity_id, n.entity_version, n.type, n.kind,
         n.task_key, n.workflow_id, n.run_id, n.activity_id, n.attempt, n.agent_id, n.role,
         (select count(*) from capped)
    from (select distinct on (c.id) c.* from capped c order by c.id, c.depth) n
   order by n.depth, n.seq
$function$;
