-- Prototype P2 ("comb2"): P1 with recFixed.sql's scope filter before the locks.
create or replace function cairn.proto2(p_entry_type text[], p_entry_id text[], p_entry_version int[], p_entry_fields text[], p_mode text,
  p_entity_type text, p_entity_id text, p_type text, p_schema_version int, p_kind text, p_fields jsonb, p_scope text,
  p_derived_from uuid[], p_source jsonb, p_target_id uuid, p_expected_version int, p_idempotency_key text, p_content_hash text,
  p_observed_at timestamptz, p_task_key text, p_workflow_id text, p_run_id text, p_activity_id text, p_attempt int, p_agent_id text, p_role text)
returns table (read_set_id uuid, refused boolean, conflicts jsonb, id uuid, entity_version int, recorded_at timestamptz, replayed boolean)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
  v_id        uuid;
  v_check     boolean := p_mode in ('strict', 'warn');
  v_conflicts jsonb := '[]'::jsonb;
  v_moved     boolean := false;
  v_ph_type   text[];
  v_ph_id     text[];
  v_grant     text[];
  v_all       boolean;
  v_prov      text;
  v_oid       uuid;
  v_version   int;
  v_recorded_at timestamptz;
  v_row       record;
begin
  if (length(p_task_key) <= 512 and length(p_workflow_id) <= 512 and length(p_run_id) <= 512
      and length(p_activity_id) <= 512 and p_attempt >= 0 and length(p_agent_id) <= 512
      and length(p_role) <= 512
      and coalesce(pg_catalog.current_setting('cairn.agent_id', true), '') in ('', p_agent_id)
      and coalesce(pg_catalog.current_setting('cairn.role', true), '') in ('', p_role)
      and coalesce(pg_catalog.current_setting('cairn.task_key', true), '') in ('', p_task_key)) is not true then
    perform cairn.check_provenance(p_task_key, p_workflow_id, p_run_id, p_activity_id, p_attempt, p_agent_id, p_role);
  end if;
  if v_check then
    v_grant := cairn.scope_grant('read');
    v_all := case when v_grant is null then not cairn.acting_as_application() else coalesce('*' = any (v_grant), false) end;
    with keys as (
      select x.et collate "C" as et, x.eid collate "C" as eid, min(x.v) as v
      from (select p_entity_type as et, p_entity_id as eid, 0 as v
            union all
            select e.t, e.i, e.v from unnest(p_entry_type, p_entry_id, p_entry_version) as e(t, i, v)) x
      group by 1, 2
    ),
    locked as (
      insert into cairn.entity_heads as h (entity_type, entity_id, version, chain_hash, prev_hash)
      select k.et, k.eid, k.v, '', ''
      from keys k
      -- a scalar subquery per key (an index probe), not an anti-join the generic plan may hash over every head
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
    if v_ph_type is not null then
      delete from cairn.entity_heads h
       using unnest(v_ph_type, v_ph_id) as p(et, eid)
       where h.entity_type = p.et and h.entity_id = p.eid;
    end if;
    -- (conflict check when moved: omitted in the prototype; the bench never moves)
  end if;
  v_prov := cairn.provenance_hash(p_task_key, p_workflow_id, p_run_id, p_activity_id, p_attempt, p_agent_id, p_role,
                                  p_idempotency_key);
  if p_target_id is not null or p_derived_from <> '{}' then
    perform cairn.check_references(array[p_entity_type], array[p_entity_id], array[p_target_id],
                                   array[p_derived_from::text]);
  end if;
  with rs as (
    insert into cairn.read_sets as r (workflow_id, run_id, activity_id, attempt, task_key, role, agent_id)
    values (p_workflow_id, p_run_id, p_activity_id, p_attempt, p_task_key, p_role, p_agent_id)
    on conflict (workflow_id, activity_id, attempt) do nothing
    returning r.id
  ),
  entries as (
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
    select p_idempotency_key, rs.id from rs
    on conflict do nothing
  ),
  head as (
    insert into cairn.entity_heads as h (entity_type, entity_id, version, chain_hash, prev_hash)
    select p_entity_type, p_entity_id, 1, encode(sha256(convert_to(p_content_hash || v_prov, 'UTF8')), 'hex'), ''
    where exists (select 1 from cairn.observation_types ot where ot.name = p_type and ot.version = p_schema_version)
      and not exists (select 1 from cairn.observations o where o.idempotency_key = p_idempotency_key)
    on conflict (entity_type, entity_id) do update
      set version = h.version + 1,
          prev_hash = h.chain_hash,
          chain_hash = encode(sha256(convert_to(h.chain_hash || p_content_hash || v_prov, 'UTF8')), 'hex')
    returning h.version, h.prev_hash, h.chain_hash
  ),
  obs as (
  insert into cairn.observations (
    entity_type, entity_id, entity_version, type, schema_version, kind, fields, scope,
    task_key, workflow_id, run_id, activity_id, attempt, agent_id, role,
    derived_from, source, target_id, expected_version, observed_at,
    idempotency_key, content_hash, prev_hash, chain_hash, hash_format, provenance_hash)
  select p_entity_type, p_entity_id, head.version, p_type, p_schema_version, p_kind, p_fields, p_scope,
         p_task_key, p_workflow_id, p_run_id, p_activity_id, p_attempt, p_agent_id, p_role,
         p_derived_from, p_source, p_target_id,
         case when p_expected_version is null then null
              else cairn.expect_version(p_expected_version, head.version - 1, 0, p_entity_type, p_entity_id) end,
         p_observed_at, p_idempotency_key, p_content_hash, head.prev_hash, head.chain_hash, 2, v_prov
  from head
  returning id, entity_version, recorded_at)
  select (select rs.id from rs), obs.id, obs.entity_version, obs.recorded_at into v_id, v_oid, v_version, v_recorded_at
    from (select 1) one left join obs on true;
  return query select v_id, false, v_conflicts, v_oid, v_version, v_recorded_at, false;
end $$;
