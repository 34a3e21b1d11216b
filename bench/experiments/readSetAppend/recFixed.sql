-- record_read_set as in 023 with one change (the experiment's "two_fixed"): the scope filter before the locks
-- is a scalar subquery per key, skipped when the grant is {*}. Still compares with the keys' "C"
-- collation, so for other grants it seq-scans entity_heads per key (see bench/README.md, round 5).
CREATE OR REPLACE FUNCTION cairn.rec_fixed(p_workflow_id text, p_run_id text, p_activity_id text, p_attempt integer, p_task_key text, p_role text, p_agent_id text, p_entry_type text[], p_entry_id text[], p_entry_version integer[], p_entry_fields text[], p_write_type text[], p_write_id text[], p_keys text[], p_modes text[])
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
      where (v_all or (select o.scope is null or coalesce(o.scope = any (v_grant), false)
                          from cairn.entity_heads o
                         where o.entity_type = k.et and o.entity_id = k.eid) is not false)
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
$function$

