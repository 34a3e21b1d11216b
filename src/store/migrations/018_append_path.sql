-- cairn: non-breaking
-- 018: the append path's cost (issue 14, bench/README.md "Where the goals are beyond the
-- current design").
--
-- 1. NOTIFY only when someone waits. Migration 012 made every append's transaction NOTIFY;
--    Postgres serialises notifying commits (a database-wide lock on the notification queue
--    held through the commit's WAL flush), so concurrent writers lost group commit. Now a
--    waiter registers the entity's key (md5 of entity_type || E'\x1f' || entity_id, the
--    payload of 012) in cairn.head_waiters before it checks the head again and sleeps, and
--    removes it after; the trigger sends NOTIFY only when a live registration for the key
--    exists. A registration committed after a writer's trigger ran (the race window) costs the
--    waiter one fallback poll interval (src/store/headWait.ts always polls too); a registration
--    left behind by a dead session expires (expires_at) and is swept by later registrations.
--    Registrations are made by the waiter's LISTEN session itself (so there is nothing to
--    register when no one listens), only through the two definer functions below, and a
--    session can remove only its own (pid). Unlogged: they mean nothing after a crash.
--
-- 2. Field checks compiled per type. cairn.fields_problem (009) interprets a type's JSON schema
--    for every row (set-returning scans of the schema and the fields per row: a quarter of a
--    batch append's database time). Now every registration of a type (re)generates
--    cairn.fields_ok(type, version, fields, kind), one CASE over the registered types whose
--    branch is a direct boolean expression of the fields: true exactly when fields_problem
--    would find no problem (test/integration/fieldsOk.test.ts checks this as a property), null
--    for a type it does not compile (an unusual schema: the generic check runs). Rows it
--    passes are not checked again; for the others fields_problem still names the problem, so
--    errors (CN006) read as before.
-- 3. cairn.provenance_hash declared stable (what its body is), so Postgres inlines it.
-- 4. One statement-level AFTER trigger instead of two (check_observation_rows: the fields, then
--    the scopes, the order the two triggers ran in): one trigger call and transition table.
--
-- Not done here: the provenance-hash and chain-link CHECKs stay. A BEFORE INSERT trigger that
-- computes both hashes (consistent by construction) was measured at least as costly per row as
-- the CHECKs that recompute them (bench/README.md), and the append functions still need the
-- hashes themselves to chain the next row and advance the head.
--
-- Non-breaking: an older worker's waiters do not register, so its minVersion waits are answered
-- by their fallback poll (at most 1 s apart while listening) instead of a notification; no
-- result changes. What is dropped or renamed (the two statement triggers and their functions,
-- 012's trigger) is called by no code, old or new: the append functions older code calls are
-- unchanged, and their errors read as before.

create unlogged table cairn.head_waiters (
  id         uuid        primary key default gen_random_uuid(),
  key        text        not null,
  pid        int         not null default pg_catalog.pg_backend_pid(),
  expires_at timestamptz not null
);
create index head_waiters_key_idx on cairn.head_waiters (key);
create index head_waiters_expires_idx on cairn.head_waiters (expires_at);

-- Registers the calling session as waiting for p_key's head for at most p_ms milliseconds
-- (1 ms to 1 day); returns the registration's id, for cairn.head_wait_end.
create function cairn.head_wait_begin(p_key text, p_ms int) returns uuid
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_id uuid;
begin
  if p_key is null or length(p_key) <> 32 or p_ms is null or p_ms not between 1 and 86400000 then
    raise exception 'head_wait_begin: a 32-character key and 1 ms to 1 day' using errcode = '22023';
  end if;
  -- Sweep what dead sessions left behind (a few index-ordered rows at most in steady state).
  delete from cairn.head_waiters w where w.expires_at < clock_timestamp();
  insert into cairn.head_waiters (key, pid, expires_at)
  values (p_key, pg_backend_pid(), clock_timestamp() + p_ms * interval '1 millisecond')
  returning id into v_id;
  return v_id;
end
$$;

-- Removes the calling session's registration p_id (another session's: nothing happens).
create function cairn.head_wait_end(p_id uuid) returns void
language sql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
  delete from cairn.head_waiters w where w.id = p_id and w.pid = pg_backend_pid()
$$;

revoke all on cairn.head_waiters from public;
revoke execute on function cairn.head_wait_begin(text, int), cairn.head_wait_end(uuid) from public;
grant execute on function cairn.head_wait_begin(text, int), cairn.head_wait_end(uuid) to cairn_app;

-- The trigger of 012, now notifying only when a live registration names the entity. Definer:
-- the writer (cairn_app) has no privilege on head_waiters.
create or replace function cairn.notify_head_moved() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_key text := md5(new.entity_type || E'\x1f' || new.entity_id);
begin
  if exists (select 1 from cairn.head_waiters w where w.key = v_key and w.expires_at > clock_timestamp()) then
    perform pg_notify('cairn_heads', v_key);
  end if;
  return null;
end;
$$;

-- Only when the version moves: the batch append's first step creates missing heads at version
-- 0 and locks existing ones with a no-op update of version, neither of which a waiter can see.
drop trigger entity_heads_notify on cairn.entity_heads;
create trigger entity_heads_notify_insert
  after insert on cairn.entity_heads
  for each row when (new.version > 0) execute function cairn.notify_head_moved();
create trigger entity_heads_notify_update
  after update of version on cairn.entity_heads
  for each row when (new.version <> old.version) execute function cairn.notify_head_moved();

-- ---------------------------------------------------------------------------------------------
-- 2. Field checks compiled per type.

-- The boolean SQL expression, over `f` (the fields) and `p_kind`, that is true exactly when
-- cairn.fields_problem(f, p_kind, p_schema) is null; null when this schema is not compiled.
-- Compiled: an object schema whose "properties" (if any) is an object and whose "required" (if
-- an array) holds only strings. Every literal is quoted (%L): schemas are caller data.
create function cairn.fields_ok_expr(p_schema jsonb) returns text
language plpgsql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
declare
  v_props jsonb := p_schema -> 'properties';
  v_parts text[] := '{}';
  v_req   text[];
  v_key   text;
  v_s     jsonb;
  v_types text[];
  v_plain text[];
  v_test  text;
begin
  if jsonb_typeof(p_schema) is distinct from 'object'
     or (v_props is not null and jsonb_typeof(v_props) <> 'object') then
    return null;
  end if;
  -- Declared keys only.
  if v_props is not null and p_schema -> 'additionalProperties' = 'false'::jsonb then
    v_parts := v_parts || format('(f - %L::text[]) = ''{}''::jsonb',
                                 array(select k from jsonb_object_keys(v_props) k order by k));
  end if;
  -- Required keys, for the kinds that state a whole observation.
  if jsonb_typeof(p_schema -> 'required') = 'array' then
    if exists (select 1 from jsonb_array_elements(p_schema -> 'required') r where jsonb_typeof(r) <> 'string') then
      return null;
    end if;
    v_req := array(select r from jsonb_array_elements_text(p_schema -> 'required') r order by r);
    if cardinality(v_req) > 0 then
      v_parts := v_parts || format('(p_kind not in (''assertion'', ''inference'', ''decision'') or f ?& %L::text[])', v_req);
    end if;
  end if;
  -- Each declared key's JSON type(s) and enum, when present.
  for v_key, v_s in select e.key, e.value from jsonb_each(coalesce(v_props, '{}'::jsonb)) e order by e.key loop
    if jsonb_typeof(v_s -> 'type') in ('string', 'array') then
      -- Non-string entries of a type list never match (fields_problem compares their text).
      v_types := array(select t from jsonb_array_elements_text(case when jsonb_typeof(v_s -> 'type') = 'array'
                                                                    then v_s -> 'type'
                                                                    else jsonb_build_array(v_s -> 'type') end) t
                        where t is not null);
      v_plain := array(select t from unnest(v_types) t
                        where t in ('object', 'array', 'string', 'number', 'boolean', 'null'));
      v_test := format('jsonb_typeof(f -> %L) = any (%L::text[])', v_key, v_plain);
      if 'integer' = any (v_types) then
        v_test := v_test || format(' or (case when jsonb_typeof(f -> %L) = ''number'' then (f ->> %L)::numeric %% 1 = 0'
                                   ' else false end)', v_key, v_key);
      end if;
      v_parts := v_parts || format('(not f ? %L or %s)', v_key, v_test);
    end if;
    if jsonb_typeof(v_s -> 'enum') = 'array' then
      v_parts := v_parts || format('(not f ? %L or %L::jsonb @> jsonb_build_array(f -> %L))', v_key, v_s -> 'enum', v_key);
    end if;
  end loop;
  -- The library's nesting limit (as in fields_problem).
  v_parts := v_parts || 'not jsonb_path_exists(f, ''strict $.**{32} ? (@.type() == "object" || @.type() == "array")'')'::text;
  return array_to_string(v_parts, E'\n      and ');
end
$$;

-- (Re)generates cairn.fields_ok from every registered type. No SET clause on it: a SQL function
-- with one is never inlined, and called as a function (planned on each statement) it cost more
-- than the check itself; its body names only built-in operators and functions. Registrations take turns (an
-- advisory lock held to commit), so the last one to commit has compiled every type.
create function cairn.compile_fields_ok() returns void
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_body text;
begin
  perform pg_advisory_xact_lock(166732964618); -- one key of its own (the bigint space: no overlap with two-int keys)
  select coalesce(string_agg(format('    when p_type = %L and p_version = %s then (%s)', t.name, t.version, x.expr),
                             E'\n' order by t.name, t.version), '')
    into v_body
    from cairn.observation_types t
    cross join lateral (select cairn.fields_ok_expr(t.json_schema) as expr) x
   where x.expr is not null;
  execute format($f$
create or replace function cairn.fields_ok(p_type text, p_version int, f jsonb, p_kind text) returns boolean
language sql stable parallel safe
as %L$f$,
    -- Generated by cairn.compile_fields_ok (migration 018): true when fields_problem would find no problem.
    case when v_body = '' then 'select null::boolean'
         else E'select case\n' || v_body || E'\n  end' end);
end
$$;
revoke execute on function cairn.compile_fields_ok() from public;

create function cairn.observation_types_compile() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if exists (select 1 from new_types) then
    perform cairn.compile_fields_ok();
  end if;
  return null;
end
$$;

create trigger observation_types_compile
  after insert on cairn.observation_types
  referencing new table as new_types
  for each statement execute function cairn.observation_types_compile();

select cairn.compile_fields_ok();

-- ---------------------------------------------------------------------------------------------
-- 3. cairn.provenance_hash (010) inlined. It was declared immutable around convert_to, which is
--    only stable, so Postgres never inlined it: every call (the append function's and the CHECK's,
--    twice per single append) ran the SQL-function executor, about 70 µs of planning and setup
--    each on a single append. Declared stable (what its body is), it is inlined into both
--    callers. Same result; it backs no index.
alter function cairn.provenance_hash(text, text, text, text, int, text, text, text) stable;

-- ---------------------------------------------------------------------------------------------
-- 4. One statement trigger over the new rows: the fields (as 009's trigger), then the scopes (as
--    006's, unchanged).
create function cairn.check_observation_rows() returns trigger
language plpgsql as $$
declare
  v_grant text[] := cairn.scope_grant('write');
  -- Whether the grant binds this statement: a grant other than '{*}', or none at all for a
  -- caller acting as the application (deny by default).
  v_bound boolean := case when v_grant is null then cairn.acting_as_application()
                          else not coalesce('*' = any (v_grant), false) end;
  v_bad   record;
begin
  -- Fields (CN006). Rows the compiled check passes are done; the others (refused by it, or of
  -- a type it does not compile) go through fields_problem, which names the problem. The fence
  -- (offset 0) keeps the generic check off the rows the compiled one passed.
  select n.entity_type, n.entity_id, n.entity_version, n.type, n.schema_version, p.problem into v_bad
    from (select * from new_rows n0
           where cairn.fields_ok(n0.type, n0.schema_version, n0.fields, n0.kind) is not true
          offset 0) n
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

  -- Scopes 1. Every row names a scope (CNS03) inside the grant (CNS01).
  select n.role, e.scope,
         not (e.scope = 'global' or (length(e.scope) > 5 and left(e.scope, 5) in ('team:', 'task:'))) as bad_name
    into v_bad
    from new_rows n
    cross join lateral (select case when n.scope = 'task' then 'task:' || n.task_key else n.scope end as scope) e
   where not (e.scope = 'global' or (length(e.scope) > 5 and left(e.scope, 5) in ('team:', 'task:')))
      or (v_bound and not coalesce(e.scope = any (v_grant), false))
   limit 1;
  if found then
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

  -- Scopes 2. A new entity takes the scope of its first row (version 1; its head was created by
  --    this append, or at version 0 by a read receipt). The append holds the heads' row locks,
  --    so this cannot race another writer.
  update cairn.entity_heads h
     set scope = case when n.scope = 'task' then 'task:' || n.task_key else n.scope end
    from new_rows n
   where n.entity_version = 1 and h.entity_type = n.entity_type and h.entity_id = n.entity_id and h.scope is null;

  -- Scopes 3. Every row is in its entity's scope (CNS02): one head per entity of the batch.
  select b.role, b.entity_type, b.entity_id, h.scope as entity_scope,
         case when b.lo is distinct from h.scope then b.lo else b.hi end as scope
    into v_bad
    from (select n.entity_type, n.entity_id, min(n.role) as role,
                 min(case when n.scope = 'task' then 'task:' || n.task_key else n.scope end) as lo,
                 max(case when n.scope = 'task' then 'task:' || n.task_key else n.scope end) as hi
            from new_rows n
           group by n.entity_type, n.entity_id) b
    join cairn.entity_heads h on h.entity_type = b.entity_type and h.entity_id = b.entity_id
   where h.scope is distinct from b.lo or b.lo <> b.hi
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

drop trigger observations_check_fields on cairn.observations;
drop trigger observations_check_scopes on cairn.observations;
drop function cairn.check_observation_fields();
drop function cairn.check_observation_scopes();
create trigger observations_check_rows
  after insert on cairn.observations
  referencing new table as new_rows
  for each statement execute function cairn.check_observation_rows();
