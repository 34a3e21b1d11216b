-- cairn: non-breaking
-- An entity's current state's inputs in one call, cheaper than cairn.read_latest (migration 014,
-- kept for code older than this): src/store/observations/read.ts (latestQuery / foldLatest).
--
-- - One probe finds the head and the newest snapshot at or below it that is still bound to its
--   version's chain hash (the rule of loadSnapshot, migration 009: the join on chain_hash stays),
--   instead of one statement each.
-- - The snapshot's stored document ({ format, state }) is returned whole, read once: 014 read the
--   jsonb twice (the format filter, then `-> 'state'`), and a snapshot of a few KB is stored
--   out of line and compressed, so each read fetched and decompressed it again. The caller
--   checks the format (a snapshot of another format sends it to the general path, which skips
--   such snapshots and rewrites them as it passes their versions).
-- - No tail query when the snapshot is at the head (the everyday case for an entity whose last
--   write was a checkpoint, and for every read after a checkpointing read): `rows` is '[]'.
--
-- SECURITY INVOKER like 014: row-level security applies to the caller as for its own SELECT.
-- A lateral reference (h.version) bounds the snapshot scan as an index condition under RLS (a
-- Var is leakproof; a COALESCE or sub-select would be applied as a filter), and the tail's lower
-- bound is a plain variable for the same reason (see 014).
-- Adds a function and changes nothing older code relies on, hence non-breaking.
create function cairn.read_current(p_entity_type text, p_entity_id text, p_limit int)
returns table (head int, snapshot_version int, snapshot jsonb, rows json)
language plpgsql stable
set search_path = pg_catalog, pg_temp
set plan_cache_mode = force_generic_plan
as $$
declare
  v_after int;
begin
  select h.version, s.version, s.state into head, snapshot_version, snapshot
    from cairn.entity_heads h
    left join lateral (
      select s.version, s.state
        from cairn.entity_snapshots s
        join cairn.observations o
          on o.entity_type = s.entity_type and o.entity_id = s.entity_id and o.entity_version = s.version
         and o.chain_hash = s.chain_hash
       where s.entity_type = h.entity_type and s.entity_id = h.entity_id and s.version <= h.version
       order by s.version desc
       limit 1) s on true
   where h.entity_type = p_entity_type and h.entity_id = p_entity_id;
  if head is null then
    return next;
    return;
  end if;
  if snapshot_version = head then
    rows := '[]'::json;
    return next;
    return;
  end if;
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

grant execute on function cairn.read_current(text, text, int) to cairn_app;
