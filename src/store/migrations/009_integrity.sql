-- 007: what the application role can no longer talk the database into (issue #11).
--
--   * Snapshots are written only through cairn.save_entity_snapshots (SECURITY DEFINER): the
--     application role loses INSERT on cairn.entity_snapshots. Every snapshot is bound to the
--     chain_hash of the observation at its version (filled in here, whatever the writer says);
--     reads use a snapshot only while that observation still has that chain hash, and
--     `cairn verify` re-folds every snapshot. A snapshot is still a claim by whoever wrote it
--     (the database cannot fold): the binding stops stale and misplaced ones, verify catches
--     forged ones.
--   * cairn.observation_types is append-only like the log (triggers refuse UPDATE, DELETE and
--     TRUNCATE, even for the owner), and each row carries definition_hash, computed here from
--     its name, version, entity, policies and JSON schema, so verify notices an edit made with
--     the triggers disabled (and an anchor file notices one that recomputed the hash too).
--   * The database enforces each type's JSON schema at the top level (declared keys only,
--     required keys present for assertions, inferences and decisions, each value's JSON type
--     and enum) and the library's nesting limit (no object or array 32 levels down), so raw
--     SQL cannot store what the library would refuse. Errors: CN006, detail JSON
--     {entity, version, path, problem}.
--   * Scope leaks in definer functions: derived_children and record_read_set answer only about
--     entities the caller may read, and record_read_set no longer creates head rows (it locks
--     the heads that exist; an entity read while absent is checked without a lock, see below).
--   * Claims: releasing needs the fencing token (CNF02 without one); the paths that create claim
--     and work-item rows take their locks in one order (sorted names), so two callers passing
--     the same new names in opposite orders cannot deadlock; register_work_items no longer
--     raises unique_violation on the resource index under a race.
-- Error codes added: CN006 fields refused by the type's schema, CNS04 snapshot of an entity the
-- caller may not read.

-- Whether the caller may read scope p_scope: its read grant names it (or is '{*}'); with no
-- grant at all, only the owner or a superuser acting as itself may (as row-level security
-- lets them read). For SECURITY DEFINER functions, which RLS does not reach.
create function cairn.caller_may_read(p_scope text) returns boolean
language sql stable
as $$
  select case when cairn.scope_grant('read') is null then not cairn.acting_as_application()
              else coalesce('*' = any (cairn.scope_grant('read')) or p_scope = any (cairn.scope_grant('read')), false) end
$$;

-- ---------------------------------------------------------------------------------------------
-- Snapshots.

alter table cairn.entity_snapshots add column chain_hash text;

update cairn.entity_snapshots s
   set chain_hash = o.chain_hash
  from cairn.observations o
 where o.entity_type = s.entity_type and o.entity_id = s.entity_id and o.entity_version = s.version;

-- The chain hash of the observation at the snapshot's version, whoever inserts (null when there
-- is none: such a snapshot is never used).
create function cairn.entity_snapshots_bind() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  new.chain_hash := (select o.chain_hash from cairn.observations o
                      where o.entity_type = new.entity_type and o.entity_id = new.entity_id
                        and o.entity_version = new.version);
  return new;
end
$$;

create trigger entity_snapshots_bind
  before insert or update on cairn.entity_snapshots
  for each row execute function cairn.entity_snapshots_bind();

revoke insert, update on cairn.entity_snapshots from cairn_app;

-- Stores reductions of one entity at p_versions (each state a {format, state} document; see
-- src/store/observations/snapshots.ts). Only for an entity the caller may read (CNS04), only at
-- versions the log has (22023). A stored row at one of these versions of another format, or
-- bound to a chain hash the log no longer has, is replaced; otherwise an existing row stays
-- (idempotent: concurrent readers write identical rows). Returns how many rows were written.
create function cairn.save_entity_snapshots(p_entity_type text, p_entity_id text, p_versions int[], p_states jsonb[])
returns int
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_scope text;
  v_n     int;
begin
  if coalesce(cardinality(p_versions), 0) <> coalesce(cardinality(p_states), 0) then
    raise exception 'save_entity_snapshots: % versions but % states', cardinality(p_versions), cardinality(p_states)
      using errcode = '22023';
  end if;
  select h.scope into v_scope from cairn.entity_heads h
   where h.entity_type = p_entity_type and h.entity_id = p_entity_id;
  if v_scope is null or not cairn.caller_may_read(v_scope) then
    raise exception '%/%: no entity the caller may read', p_entity_type, p_entity_id using errcode = 'CNS04';
  end if;
  if exists (select 1 from unnest(p_versions) u(v)
              where u.v is null or not exists (select 1 from cairn.observations o
                                                where o.entity_type = p_entity_type and o.entity_id = p_entity_id
                                                  and o.entity_version = u.v)) then
    raise exception '%/%: a snapshot version is not a version of the entity', p_entity_type, p_entity_id
      using errcode = '22023';
  end if;
  delete from cairn.entity_snapshots s
   using unnest(p_versions, p_states) as u(v, st), cairn.observations o
   where s.entity_type = p_entity_type and s.entity_id = p_entity_id and s.version = u.v
     and o.entity_type = p_entity_type and o.entity_id = p_entity_id and o.entity_version = u.v
     and (s.state -> 'format' is distinct from u.st -> 'format' or s.chain_hash is distinct from o.chain_hash);
  insert into cairn.entity_snapshots (entity_type, entity_id, version, state)
  select p_entity_type, p_entity_id, u.v, u.st from unnest(p_versions, p_states) as u(v, st)
  on conflict (entity_type, entity_id, version) do nothing;
  get diagnostics v_n = row_count;
  return v_n;
end
$$;
revoke execute on function cairn.save_entity_snapshots(text, text, int[], jsonb[]) from public;
grant execute on function cairn.save_entity_snapshots(text, text, int[], jsonb[]) to cairn_app;

-- ---------------------------------------------------------------------------------------------
-- Observation types: append-only, each row hashed.

create function cairn.type_definition_hash(p_name text, p_version int, p_entity text, p_policies jsonb, p_json_schema jsonb)
returns text
language sql immutable parallel safe
as $$
  -- jsonb's text form is canonical (keys sorted, one spelling per value), so the hash is too.
  select encode(sha256(convert_to(jsonb_build_object('name', p_name, 'version', p_version, 'entity', p_entity,
                                                     'policies', p_policies, 'jsonSchema', p_json_schema)::text,
                                  'UTF8')), 'hex')
$$;

alter table cairn.observation_types add column definition_hash text;
update cairn.observation_types
   set definition_hash = cairn.type_definition_hash(name, version, entity, policies, json_schema);
alter table cairn.observation_types alter column definition_hash set not null;

create function cairn.observation_types_hash() returns trigger
language plpgsql as $$
begin
  new.definition_hash := cairn.type_definition_hash(new.name, new.version, new.entity, new.policies, new.json_schema);
  return new;
end
$$;

create trigger observation_types_hash
  before insert on cairn.observation_types
  for each row execute function cairn.observation_types_hash();

create function cairn.refuse_observation_type_change() returns trigger
language plpgsql as $$
begin
  raise exception 'cairn.observation_types is append-only: register a changed type as a new version'
    using errcode = 'CN003', detail = format('refused %s', tg_op);
end
$$;

create trigger observation_types_append_only
  before update or delete on cairn.observation_types
  for each row execute function cairn.refuse_observation_type_change();

create trigger observation_types_no_truncate
  before truncate on cairn.observation_types
  for each statement execute function cairn.refuse_observation_type_change();

grant execute on function cairn.type_definition_hash(text, int, text, jsonb, jsonb) to cairn_app;

-- ---------------------------------------------------------------------------------------------
-- Fields: the type's keys, top-level JSON types and enums, and the nesting limit.

-- The first problem of `fields` under type schema p_schema for an observation of p_kind, or
-- null. Mirrors src/store/observations/validate.ts at the top level: corrections and
-- retractions are checked against the schema with every field optional. A schema the library
-- could not describe as JSON Schema (no "properties") is checked for depth only.
create function cairn.fields_problem(p_fields jsonb, p_kind text, p_schema jsonb) returns text
language sql immutable parallel safe
as $$
  select coalesce(
    (select format('fields.%s: not a field of this type', k)
       from jsonb_object_keys(p_fields) k
      where p_schema ? 'properties' and p_schema -> 'additionalProperties' = 'false'::jsonb
        and not (p_schema -> 'properties') ? k
      order by k limit 1),
    (select format('fields.%s: required', r)
       from jsonb_array_elements_text(case when jsonb_typeof(p_schema -> 'required') = 'array'
                                           then p_schema -> 'required' else '[]'::jsonb end) r
      where p_kind in ('assertion', 'inference', 'decision') and not p_fields ? r
      order by r limit 1),
    (select format('fields.%s: %s is not of type %s', e.key, jsonb_typeof(e.value), s -> 'type')
       from jsonb_each(p_fields) e
       cross join lateral (select p_schema -> 'properties' -> e.key as s) d
      where jsonb_typeof(s -> 'type') in ('string', 'array')
        and not exists (
          select 1
            from jsonb_array_elements_text(case when jsonb_typeof(s -> 'type') = 'array' then s -> 'type'
                                                else jsonb_build_array(s -> 'type') end) t
           where t = jsonb_typeof(e.value)
              or (t = 'integer' and jsonb_typeof(e.value) = 'number' and (e.value #>> '{}')::numeric % 1 = 0))
      order by e.key limit 1),
    (select format('fields.%s: not one of %s', e.key, s -> 'enum')
       from jsonb_each(p_fields) e
       cross join lateral (select p_schema -> 'properties' -> e.key as s) d
      where jsonb_typeof(s -> 'enum') = 'array' and not (s -> 'enum') @> jsonb_build_array(e.value)
      order by e.key limit 1),
    -- The library refuses an object or array 32 levels below the fields object (APPEND_LIMITS.maxDepth).
    case when jsonb_path_exists(p_fields, 'strict $.**{32} ? (@.type() == "object" || @.type() == "array")')
         then 'fields: nested deeper than 32 levels' end)
$$;

-- Statement-level, over the statement's new rows (one query per append, whatever its size).
create function cairn.check_observation_fields() returns trigger
language plpgsql as $$
declare
  v_bad record;
begin
  select n.entity_type, n.entity_id, n.entity_version, n.type, n.schema_version, p.problem into v_bad
    from new_rows n
    join cairn.observation_types t on t.name = n.type and t.version = n.schema_version
    cross join lateral (select cairn.fields_problem(n.fields, n.kind, t.json_schema) as problem) p
   where p.problem is not null
   limit 1;
  if found then
    raise exception '%/% version %: % (type %@%)', v_bad.entity_type, v_bad.entity_id, v_bad.entity_version,
                    v_bad.problem, v_bad.type, v_bad.schema_version
      using errcode = 'CN006',
            detail = json_build_object('entity', v_bad.entity_type || '/' || v_bad.entity_id,
                                       'version', v_bad.entity_version, 'type', v_bad.type,
                                       'schemaVersion', v_bad.schema_version,
                                       'path', split_part(v_bad.problem, ':', 1),
                                       'problem', v_bad.problem)::text;
  end if;
  return null;
end
$$;

create trigger observations_check_fields
  after insert on cairn.observations
  referencing new table as new_rows
  for each statement execute function cairn.check_observation_fields();

-- ---------------------------------------------------------------------------------------------
-- Definer functions answer only for what the caller may read.

create or replace function cairn.derived_children(p_parent uuid) returns setof uuid
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
  select d.id from cairn.observations d
   where d.derived_from @> array[p_parent]
     and cairn.caller_may_read(case when d.scope = 'task' then 'task:' || d.task_key else d.scope end)
$$;

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
  -- What the caller may read (see cairn.caller_may_read), once per call: entities outside it
  -- are neither locked nor reported on.
  v_grant     text[] := cairn.scope_grant('read');
  v_all       boolean := case when cairn.scope_grant('read') is null then not cairn.acting_as_application()
                              else coalesce('*' = any (cairn.scope_grant('read')), false) end;
begin
  -- 0. When some item depends on its reads: lock the heads of the entities read or written that
  --    exist and that the caller may read, in sorted order (like the append), and learn whether
  --    an entity read has moved on. No head is created (an earlier version created one for any
  --    name it was given): an entity read while absent is not locked, so its creation is
  --    caught only if it committed before this statement. The aggregate reads every
  --    locked row, so every lock is taken.
  if v_check then
    with locked as (
      select h.entity_type, h.entity_id, h.version
      from cairn.entity_heads h
      join (select distinct x.et, x.eid
              from (select u.et, u.eid from unnest(p_write_type, p_write_id) as u(et, eid)
                    union all
                    select e.t, e.i from unnest(p_entry_type, p_entry_id) as e(t, i)) x) k
        on h.entity_type = k.et and h.entity_id = k.eid
      where v_all or h.scope = any (v_grant)
      order by h.entity_type collate "C", h.entity_id collate "C"
      for update of h
    )
    select coalesce(bool_or(l.version > e.v), false) into v_moved
    from locked l
    left join unnest(p_entry_type, p_entry_id, p_entry_version) as e(t, i, v)
      on e.t = l.entity_type and e.i = l.entity_id;
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
    --    field the step read? Materialized first: the entries that moved on, so the planner
    --    starts from this attempt's few entries, not from the log.
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

-- ---------------------------------------------------------------------------------------------
-- Claims and work items.

-- RELEASE: ends the lease now, only by its holder with its fencing token (a holder's name alone
-- is not proof: any caller could name it). Releasing a lease that expired but was not taken over
-- is accepted: it changes nothing but the record.
create or replace function cairn.release_claim(p_resource text, p_holder text, p_token bigint)
returns cairn.claim_result
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  r cairn.claims;
begin
  if p_token is null then
    raise exception 'release_claim: the holder''s fencing token is required' using errcode = 'CNF02';
  end if;
  with released as (
    update cairn.claims c set released_at = clock_timestamp()
    where c.resource = p_resource and c.holder = p_holder and c.token = p_token and c.released_at is null
    returning c.*
  ), logged as (
    insert into cairn.claim_events (resource, event, token, holder, at, expires_at)
    select g.resource, 'released', g.token, g.holder, g.released_at, least(g.expires_at, g.released_at) from released g
  )
  select * into r from released;
  if found then
    return row('released', r.resource, r.holder, r.token, r.acquired_at, least(r.expires_at, r.released_at),
               r.released_at, r.released_at, null)::cairn.claim_result;
  end if;
  select * into r from cairn.claims c where c.resource = p_resource;
  return row(case when found then 'refused' else 'none' end, p_resource, r.holder, r.token, r.acquired_at,
             r.expires_at, r.released_at, clock_timestamp(), null)::cairn.claim_result;
end
$$;

-- Creates the claim rows of p_resources that do not exist yet, free, in sorted order: two
-- callers creating the same new rows wait for each other in one order, never in a cycle.
-- Returns how many it created.
create function cairn.create_free_claims(p_resources text[]) returns int
language plpgsql as $$
declare
  v_n int;
begin
  insert into cairn.claims (resource)
  select distinct u.res collate "C" from unnest(p_resources) u(res)
  where not exists (select 1 from cairn.claims c where c.resource = u.res)
  order by 1
  on conflict (resource) do nothing;
  get diagnostics v_n = row_count;
  return v_n;
end
$$;
revoke execute on function cairn.create_free_claims(text[]) from public;

-- NEXT FREE: as in 004, but candidates never claimed are created through create_free_claims
-- (sorted), not in the caller's order.
create or replace function cairn.claim_next(p_resources text[], p_kind text, p_holder text, p_ttl_ms int)
returns cairn.claim_result
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  r         cairn.claims;
  v_res     text;
  v_skip    text[] := '{}';
  v_created int := 0;
begin
  if p_holder is null or length(p_holder) not between 1 and 512 or p_ttl_ms is null or p_ttl_ms not between 1 and 604800000 then
    raise exception 'claim_next: holder must be 1 to 512 characters, ttl 1 ms to 7 days' using errcode = 'CNF02';
  end if;
  if p_resources is not null then
    if cardinality(p_resources) > 10000 or array_position(p_resources, null) is not null then
      raise exception 'claim_next takes 0 to 10000 non-null candidates' using errcode = 'CNF02';
    end if;
    loop
      -- Pick (locked, skipping rows others hold locked), grant and log: one statement.
      with pick as (
        select c.resource
        from unnest(p_resources) with ordinality u(res, ord)
        join cairn.claims c on c.resource = u.res
        where c.token = 0 or c.released_at is not null or c.expires_at <= clock_timestamp()
        order by u.ord
        limit 1
        for update of c skip locked
      ), granted as (
        update cairn.claims c
        set holder = p_holder, token = c.token + 1, acquired_at = clock_timestamp(), renewed_at = null,
            expires_at = clock_timestamp() + p_ttl_ms * interval '1 millisecond', released_at = null,
            previous_holder = case when c.token > 0 and c.released_at is null then c.holder end
        from pick
        where c.resource = pick.resource
        returning c.*
      ), logged as (
        insert into cairn.claim_events (resource, event, token, holder, at, expires_at, previous_holder)
        select g.resource, case when g.previous_holder is null then 'granted' else 'expired-takeover' end,
               g.token, g.holder, g.acquired_at, g.expires_at, g.previous_holder
        from granted g
      )
      select * into r from granted;
      if found then
        return cairn.granted_result(r);
      end if;
      -- Candidates never claimed have no row yet: create them free (once), then look again.
      exit when v_created > 0;
      v_created := cairn.create_free_claims(p_resources);
      exit when v_created = 0;
    end loop;
    return row('none', null, null, null, null, null, null, clock_timestamp(), null)::cairn.claim_result;
  end if;

  loop
    select c.resource into v_res
    from cairn.work_items w
    join cairn.claims c on c.resource = w.resource
    where w.kind = p_kind and w.done_at is null
      and (c.token = 0 or c.released_at is not null or c.expires_at <= clock_timestamp())
      and c.resource <> all (v_skip)
    order by w.seq
    limit 1
    for update of c skip locked;
    if not found then
      return row('none', null, null, null, null, null, null, clock_timestamp(), null)::cairn.claim_result;
    end if;
    exit when not exists (select 1 from cairn.work_items w where w.resource = v_res and w.done_at is not null);
    v_skip := v_skip || v_res;
  end loop;
  return cairn.granted_result(cairn.take_claim(v_res, p_holder, p_ttl_ms));
end
$$;

-- Registers units of work `<p_kind>/<id>`; returns how many were new. Idempotent. Registrations
-- of one kind take turns (a transaction advisory lock on the kind), so ids are numbered in the
-- caller's order (nextFree hands out the oldest first) without two callers' new rows waiting
-- on each other in a cycle; a conflict on any unique index (the primary key or the resource) is
-- a row registered before: ON CONFLICT with no target. Claim rows: create_free_claims (sorted).
create or replace function cairn.register_work_items(p_kind text, p_ids text[])
returns int
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_new int;
begin
  perform pg_catalog.pg_advisory_xact_lock(1667329646, pg_catalog.hashtext(p_kind)); -- 'cair'
  insert into cairn.work_items (kind, id)
  select p_kind, u.id from unnest(p_ids) with ordinality u(id, ord) order by u.ord
  on conflict do nothing;
  get diagnostics v_new = row_count;
  perform cairn.create_free_claims(array(select p_kind || '/' || u.id from unnest(p_ids) u(id)));
  return v_new;
end
$$;

-- FENCE: as in 004; the refusal's detail also says when the current token was released
-- (releasedAt), so the message can say "released" or "expired" rather than "held until".
create or replace function cairn.check_fence(p_resource text, p_token bigint)
returns timestamptz
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  r        cairn.claims;
  v_now    timestamptz;
  v_reason text;
begin
  select * into r from cairn.claims c where c.resource = p_resource for share;
  v_now := clock_timestamp();
  v_reason := case
    when not found or r.token = 0 or p_token > r.token then 'never-granted'
    when p_token < r.token then 'superseded'
    when r.released_at is not null then 'released'
    when r.expires_at <= v_now then 'expired'
  end;
  if v_reason is not null then
    raise exception 'fencing token % of % is stale (%)', p_token, p_resource, v_reason
      using errcode = 'CNF01',
            detail = json_build_object('resource', p_resource, 'token', p_token, 'reason', v_reason,
                                       'currentToken', r.token, 'holder', r.holder,
                                       'expiresAt', r.expires_at, 'releasedAt', r.released_at,
                                       'checkedAt', v_now)::text;
  end if;
  return v_now;
end
$$;
