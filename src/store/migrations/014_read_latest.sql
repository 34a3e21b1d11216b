-- cairn: non-breaking
-- An entity's current state's inputs in one call (issue 14): its head, the newest snapshot of
-- the given format bound to its version's chain hash (the rule of loadSnapshot, migration 009),
-- and up to p_limit observations after it, as a JSON array in version order with each
-- retraction's target version. src/store/observations/read.ts folds them (foldLatest).
--
-- A function rather than a named prepared statement: plpgsql keeps the plan per session, and
-- callers send an unnamed statement, which PgBouncer in transaction mode passes between server
-- connections. SECURITY INVOKER: row-level security applies to the caller as for its own SELECT.
-- Adds a function and changes nothing older code relies on, hence non-breaking.
create function cairn.read_latest(p_entity_type text, p_entity_id text, p_format int, p_limit int)
returns table (head int, snapshot_version int, snapshot_state jsonb, rows json)
language plpgsql stable
set search_path = pg_catalog, pg_temp
set plan_cache_mode = force_generic_plan
as $$
declare
  v_after int;
begin
  select h.version into head
    from cairn.entity_heads h
   where h.entity_type = p_entity_type and h.entity_id = p_entity_id;
  if head is null then
    return next;
    return;
  end if;
  select s.version, s.state -> 'state' into snapshot_version, snapshot_state
    from cairn.entity_snapshots s
    join cairn.observations o
      on o.entity_type = s.entity_type and o.entity_id = s.entity_id and o.entity_version = s.version
     and o.chain_hash = s.chain_hash
   where s.entity_type = p_entity_type and s.entity_id = p_entity_id and s.version <= head
     and s.state -> 'format' = to_jsonb(p_format)
   order by s.version desc
   limit 1;
  -- A plain variable, not coalesce(...) in the predicate: under row-level security only
  -- leakproof quals become index bounds, and a COALESCE is not one (the scan would read the
  -- entity's whole history and filter it).
  v_after := coalesce(snapshot_version, 0);
  select coalesce(json_agg(r order by r.entity_version), '[]'::json) into rows
    from (select o.id, o.entity_version, o.type, o.schema_version, o.kind, o.fields, o.target_id, o.agent_id,
                 o.role, o.task_key,
                 case when o.kind = 'retraction' then
                   (select t.entity_version from cairn.observations t where t.id = o.target_id) end as target_version
            from cairn.observations o
           where o.entity_type = p_entity_type and o.entity_id = p_entity_id
             and o.entity_version > v_after and o.entity_version <= head
           order by o.entity_version
           limit p_limit) r;
  return next;
end
$$;

grant execute on function cairn.read_latest(text, text, int, int) to cairn_app;
