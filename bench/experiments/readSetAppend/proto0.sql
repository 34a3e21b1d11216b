-- Prototype P0: one call, one statement: record_read_set then append_observation, nested.
create or replace function cairn.proto0(p_entry_type text[], p_entry_id text[], p_entry_version int[], p_entry_fields text[], p_mode text,
  p_entity_type text, p_entity_id text, p_type text, p_schema_version int, p_kind text, p_fields jsonb, p_scope text,
  p_derived_from uuid[], p_source jsonb, p_target_id uuid, p_expected_version int, p_idempotency_key text, p_content_hash text,
  p_observed_at timestamptz, p_task_key text, p_workflow_id text, p_run_id text, p_activity_id text, p_attempt int, p_agent_id text, p_role text)
returns table (read_set_id uuid, refused boolean, conflicts jsonb, id uuid, entity_version int, recorded_at timestamptz, replayed boolean)
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare r record; a record;
begin
  select * into r from cairn.record_read_set(p_workflow_id, p_run_id, p_activity_id, p_attempt, p_task_key, p_role, p_agent_id,
     p_entry_type, p_entry_id, p_entry_version, p_entry_fields, array[p_entity_type], array[p_entity_id], array[p_idempotency_key], array[p_mode]) x;
  if r.refused then
    return query select r.read_set_id, true, r.conflicts, null::uuid, null::int, null::timestamptz, null::boolean; return;
  end if;
  select * into a from cairn.append_observation(p_entity_type, p_entity_id, p_type, p_schema_version, p_kind, p_fields, p_scope,
    p_derived_from, p_source, p_target_id, p_expected_version, p_idempotency_key, p_content_hash, p_observed_at,
    p_task_key, p_workflow_id, p_run_id, p_activity_id, p_attempt, p_agent_id, p_role) x;
  return query select r.read_set_id, false, r.conflicts, a.id, a.entity_version, a.recorded_at, a.replayed;
end $$;
