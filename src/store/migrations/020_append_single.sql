-- cairn: non-breaking
-- 020: the single append's cost, round 2 (issue 14; bench/README.md "Append path, round 2").
--
-- 1. cairn.check_observation_rows (018) ran four statements per insert statement: the fields,
--    the scope names and grant, the new entity's scope, the entity-scope check. Now two: the
--    fields, scope names and grant in one pass over the new rows (a field problem is still
--    reported first), and the new entity's scope and the entity-scope check in one statement
--    (an update in a CTE; the select reads a head it leaves without scope as the scope the update
--    gives it). Same checks, same errors (CN006, CNS03, CNS01, CNS02, same messages and details).
-- 2. cairn.append_observation tests provenance's shape and the bound identity as one plpgsql
--    expression (the conditions of cairn.check_provenance) and calls check_provenance only when
--    it fails, to raise the same CNP02 / CNP01 as before. One plpgsql call less per append.
--    Otherwise its body is 010's, unchanged (same signature, same results and errors).
-- 3. The head-notify triggers (018) fire only when cairn.head_waiters has a page on disk
--    (pg_relation_size > 0, one lseek; no query, no plpgsql call). A live registration is a row,
--    so the table then has a page and the trigger runs and checks as before. The table is empty
--    on disk until the first registration, and again after (auto)vacuum truncates it once every
--    registration is gone: a log nobody waits on pays no trigger call per append (a few per cent
--    of a single append's Postgres time, bench/README.md). The size check takes the table's
--    AccessShareLock, which waits only behind vacuum's brief truncation lock.
--
-- Non-breaking: both functions keep their signatures, results and errors; the two triggers are
-- recreated under their names with a narrower WHEN (who is notified is unchanged). Older code
-- calls the same functions as before.

create or replace function cairn.check_observation_rows() returns trigger
language plpgsql as $$
declare
  v_grant text[] := cairn.scope_grant('write');
  -- Whether the grant binds this statement: a grant other than '{*}', or none at all for a
  -- caller acting as the application (deny by default).
  v_bound boolean := case when v_grant is null then cairn.acting_as_application()
                          else not coalesce('*' = any (v_grant), false) end;
  v_bad   record;
begin
  -- 1. Fields (CN006), scope names (CNS03) and the grant (CNS01), one pass over the new rows; a
  --    field problem is reported first (the order of 018's separate checks). Rows the compiled
  --    field check passes are done; for the others (refused by it, or of a type it does not
  --    compile) fields_problem names the problem, through the CASE, so it runs for them only.
  --    The fences (offset 0) keep each expression computed once per row.
  select x.* into v_bad
    from (select n.*,
                 case when n.suspect then
                   (select cairn.fields_problem(n.fields, n.kind, t.json_schema)
                      from cairn.observation_types t
                     where t.name = n.type and t.version = n.schema_version)
                 end as problem
            from (select n0.entity_type, n0.entity_id, n0.entity_version, n0.type, n0.schema_version,
                         n0.fields, n0.kind, n0.role, e.scope,
                         cairn.fields_ok(n0.type, n0.schema_version, n0.fields, n0.kind) is not true as suspect,
                         not (e.scope = 'global' or (length(e.scope) > 5 and left(e.scope, 5) in ('team:', 'task:')))
                           as bad_name,
                         v_bound and not coalesce(e.scope = any (v_grant), false) as bad_grant
                    from new_rows n0
                    cross join lateral (select case when n0.scope = 'task' then 'task:' || n0.task_key
                                                    else n0.scope end as scope) e
                  offset 0) n
          offset 0) x
   where x.problem is not null or x.bad_name or x.bad_grant
   order by x.problem is null
   limit 1;
  if found then
    if v_bad.problem is not null then
      raise exception '%/% version %: % (type %@%)', v_bad.entity_type, v_bad.entity_id, v_bad.entity_version,
                      v_bad.problem, v_bad.type, v_bad.schema_version
        using errcode = 'CN006',
              detail = json_build_object('entity', v_bad.entity_type || '/' || v_bad.entity_id,
                                         'version', v_bad.entity_version, 'type', v_bad.type,
                                         'schemaVersion', v_bad.schema_version,
                                         'path', split_part(v_bad.problem, ':', 1),
                                         'problem', v_bad.problem)::text;
    end if;
    if v_bad.bad_name then
      perform cairn.raise_scope_error('CNS03',
        format('"%s" is not a scope: use global, team:<name> or task:<task key>', v_bad.scope),
        'write', v_bad.role, v_bad.scope, v_grant, null, null);
    end if;
    perform cairn.raise_scope_error('CNS01',
      format('role %s may not write scope %s (%s)', v_bad.role, v_bad.scope,
             case when v_grant is null then 'no write scopes granted'
                  else 'granted: ' || coalesce(nullif(array_to_string(v_grant, ', '), ''), 'none') end),
      'write', v_bad.role, v_bad.scope, v_grant, null, null);
  end if;

  -- 2. One statement: a new entity takes the scope of its first row (version 1; its head was
  --    created by this append, or at version 0 by a read receipt), and every row must be in its
  --    entity's scope (CNS02). The update's effect is not visible to the same statement's
  --    select, so the select reads a head still without scope as the scope the update gives it.
  --    The append holds the heads' row locks, so this cannot race another writer.
  with b as (
    select n.entity_type, n.entity_id, min(n.role) as role,
           min(e.scope) as lo, max(e.scope) as hi,
           min(e.scope) filter (where n.entity_version = 1) as first_scope
      from new_rows n
      cross join lateral (select case when n.scope = 'task' then 'task:' || n.task_key else n.scope end as scope) e
     group by n.entity_type, n.entity_id
  ),
  scoped as (
    update cairn.entity_heads h
       set scope = b.first_scope
      from b
     where b.first_scope is not null and h.entity_type = b.entity_type and h.entity_id = b.entity_id
       and h.scope is null
  )
  select s.role, s.entity_type, s.entity_id, s.entity_scope,
         case when s.lo is distinct from s.entity_scope then s.lo else s.hi end as scope
    into v_bad
    from (select b.role, b.entity_type, b.entity_id, b.lo, b.hi, coalesce(h.scope, b.first_scope) as entity_scope
            from b
            join cairn.entity_heads h on h.entity_type = b.entity_type and h.entity_id = b.entity_id) s
   where s.entity_scope is distinct from s.lo or s.lo <> s.hi
   limit 1;
  if found then
    perform cairn.raise_scope_error('CNS02',
      format('%s/%s belongs to scope %s; role %s cannot append to it in scope %s',
             v_bad.entity_type, v_bad.entity_id, coalesce(v_bad.entity_scope, '(none)'), v_bad.role, v_bad.scope),
      'write', v_bad.role, v_bad.scope, v_grant, v_bad.entity_type || '/' || v_bad.entity_id, v_bad.entity_scope);
  end if;
  return null;
end
$$;

create or replace function cairn.append_observation(
  p_entity_type      text,
  p_entity_id        text,
  p_type             text,
  p_schema_version   int,
  p_kind             text,
  p_fields           jsonb,
  p_scope            text,
  p_derived_from     uuid[],
  p_source           jsonb,
  p_target_id        uuid,
  p_expected_version int,
  p_idempotency_key  text,
  p_content_hash     text,
  p_observed_at      timestamptz,
  p_task_key         text,
  p_workflow_id      text,
  p_run_id           text,
  p_activity_id      text,
  p_attempt          int,
  p_agent_id         text,
  p_role             text
)
returns table (
  idx             int,
  id              uuid,
  entity_type     text,
  entity_id       text,
  entity_version  int,
  idempotency_key text,
  content_hash    text,
  recorded_at     timestamptz,
  replayed        boolean
)
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
  v_id          uuid;
  v_version     int;
  v_recorded_at timestamptz;
  v_row         record;
  v_prov        text;
begin
  -- Provenance's shape and bound identity (cairn.check_provenance's conditions), tested here as
  -- one expression; only when it fails does check_provenance run, to name the problem.
  if (length(p_task_key) <= 512 and length(p_workflow_id) <= 512 and length(p_run_id) <= 512
      and length(p_activity_id) <= 512 and p_attempt >= 0 and length(p_agent_id) <= 512
      and length(p_role) <= 512
      and coalesce(pg_catalog.current_setting('cairn.agent_id', true), '') in ('', p_agent_id)
      and coalesce(pg_catalog.current_setting('cairn.role', true), '') in ('', p_role)
      and coalesce(pg_catalog.current_setting('cairn.task_key', true), '') in ('', p_task_key)) is not true then
    perform cairn.check_provenance(p_task_key, p_workflow_id, p_run_id, p_activity_id, p_attempt, p_agent_id, p_role);
  end if;
  v_prov := cairn.provenance_hash(p_task_key, p_workflow_id, p_run_id, p_activity_id, p_attempt, p_agent_id, p_role,
                                  p_idempotency_key);
  if p_target_id is not null or p_derived_from <> '{}' then
    perform cairn.check_references(array[p_entity_type], array[p_entity_id], array[p_target_id],
                                   array[p_derived_from::text]);
  end if;

  -- One statement in the common case: bump the head (creating and locking it) unless the key
  -- is already stored or the type is not registered, and insert the row it numbers.
  with head as (
    insert into cairn.entity_heads as h (entity_type, entity_id, version, chain_hash, prev_hash)
    select p_entity_type, p_entity_id, 1, encode(sha256(convert_to(p_content_hash || v_prov, 'UTF8')), 'hex'), ''
    where exists (select 1 from cairn.observation_types ot where ot.name = p_type and ot.version = p_schema_version)
      and not exists (select 1 from cairn.observations o where o.idempotency_key = p_idempotency_key)
    on conflict (entity_type, entity_id) do update
      set version = h.version + 1,
          prev_hash = h.chain_hash,
          chain_hash = encode(sha256(convert_to(h.chain_hash || p_content_hash || v_prov, 'UTF8')), 'hex')
    returning h.version, h.prev_hash, h.chain_hash
  )
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
  returning id, entity_version, recorded_at into v_id, v_version, v_recorded_at;

  if found then
    idx := 0; id := v_id; entity_type := p_entity_type; entity_id := p_entity_id;
    entity_version := v_version; idempotency_key := p_idempotency_key;
    content_hash := p_content_hash; recorded_at := v_recorded_at; replayed := false;
    return next;
    return;
  end if;

  -- Nothing written: the key is already stored (a replay, whatever the entity's version is
  -- now, or CN001), or the type is not registered (CN005).
  select o.id, o.entity_type, o.entity_id, o.entity_version, o.content_hash, o.recorded_at,
         cairn.caller_may_read(case when o.scope = 'task' then 'task:' || o.task_key else o.scope end) as readable
    into v_row
  from cairn.observations o
  where o.idempotency_key = p_idempotency_key;
  if found then
    if not v_row.readable then
      -- Another scope's row: say the key is taken, never which observation holds it.
      perform cairn.raise_idempotency_conflict(0, p_idempotency_key, null);
    end if;
    if v_row.content_hash <> p_content_hash then
      perform cairn.raise_idempotency_conflict(0, p_idempotency_key, v_row.id);
    end if;
    idx := 0; id := v_row.id; entity_type := v_row.entity_type; entity_id := v_row.entity_id;
    entity_version := v_row.entity_version; idempotency_key := p_idempotency_key;
    content_hash := v_row.content_hash; recorded_at := v_row.recorded_at; replayed := true;
    return next;
    return;
  end if;
  raise exception 'observation type %@% is not registered in cairn.observation_types', p_type, p_schema_version
    using errcode = 'CN005',
          detail = json_build_object('type', p_type, 'schemaVersion', p_schema_version)::text,
          hint = 'register the type first (registerObservationTypes)';
end
$$;

drop trigger entity_heads_notify_insert on cairn.entity_heads;
drop trigger entity_heads_notify_update on cairn.entity_heads;
create trigger entity_heads_notify_insert
  after insert on cairn.entity_heads
  for each row when (new.version > 0 and pg_catalog.pg_relation_size('cairn.head_waiters'::regclass) > 0)
  execute function cairn.notify_head_moved();
create trigger entity_heads_notify_update
  after update of version on cairn.entity_heads
  for each row when (new.version <> old.version and pg_catalog.pg_relation_size('cairn.head_waiters'::regclass) > 0)
  execute function cairn.notify_head_moved();
