-- 006: scopes (DESIGN invariant 7, "Bounded scope"), enforced by the database.
--
-- A scope is `global`, `team:<name>` or `task:<task key>`. A stored scope of bare `task` (the
-- store's default, and what rows written before scopes were resolved say) means
-- `task:<the row's task_key>`: cairn.effective_scope spells that out.
--
--   * An entity belongs to exactly one scope, fixed by its first observation and kept in
--     cairn.entity_heads.scope. An observation of it in another scope is refused (CNS02), so a
--     reader sees all of an entity's versions or none of them.
--   * Grants are settings of the transaction (or session): cairn.read_scopes and
--     cairn.write_scopes, each a text[] literal of scope names, or '{*}' for every scope.
--     src/store/scope.ts withScope sets them with SET LOCAL for an agent step; engineers' tools
--     and test helpers set '{*}' for their session (createPool's `scopes: 'all'`).
--   * Reads: row-level security for cairn_app on observations, entity_heads and
--     entity_snapshots (which now carry their entity's scope): a row is visible when its scope
--     is in cairn.read_scopes. No setting, no rows. The owner and superusers are not subject to
--     RLS (maintenance, migrations).
--   * Writes: the log is written only through cairn.append_observation(s), which are SECURITY
--     DEFINER, so RLS does not apply inside them; triggers still fire there. A statement-level
--     trigger on cairn.observations checks each new row's scope name (CNS03, its shape), the
--     write grant (CNS01) and the entity's scope (CNS02). With no cairn.write_scopes setting the grant check
--     binds whoever acts as the application (SET ROLE cairn_app, or any login that is not a
--     superuser, BYPASSRLS or the table's owner) and lets the owner acting as itself through, as
--     RLS does for reads. Inside a definer function current_user is the owner, so the caller is
--     found from the `role` setting (SET ROLE survives the definer switch) or session_user.
--
-- The settings are chosen by the application process, never by agent code (agents reach the
-- store only through their step's context): scopes bound what an agent can touch. A program
-- that runs arbitrary SQL as cairn_app can set them too; it is trusted like the worker is.
--
-- Errors raised here: CNS01 write not granted, CNS02 entity in another scope, CNS03 not a scope
-- name; each with a JSON detail {access, role, scope, granted, entity, entityScope}.

-- The scope a stored row belongs to (for the backfill below and for ad-hoc queries; the policies
-- and the trigger spell the same expression out).
create function cairn.effective_scope(p_scope text, p_task_key text) returns text
language sql immutable parallel safe
as $$ select case when p_scope = 'task' then 'task:' || p_task_key else p_scope end $$;

-- The grant for `access` ('read' or 'write'); null when the setting is absent or empty. '{*}'
-- grants every scope.
create function cairn.scope_grant(p_access text) returns text[]
language sql stable parallel safe
as $$ select nullif(pg_catalog.current_setting('cairn.' || p_access || '_scopes', true), '')::text[] $$;

-- Whether the caller acts as the application (scope checks bind it) rather than as the owner
-- or a superuser acting as itself. See the header for why not current_user.
create function cairn.acting_as_application() returns boolean
language sql stable
as $$
  select not coalesce((
    select r.rolsuper or r.rolbypassrls or r.oid = c.relowner
      from pg_catalog.pg_roles r, pg_catalog.pg_class c
     where r.rolname = case pg_catalog.current_setting('role')
                         when 'none' then session_user::text
                         else pg_catalog.current_setting('role') end
       and c.oid = 'cairn.observations'::regclass), false)
$$;

-- Entities: their scope, backfilled from each entity's first observation. Null only while the
-- append that creates the head is still running (the trigger below fills it).
alter table cairn.entity_heads add column scope text;

update cairn.entity_heads h
   set scope = cairn.effective_scope(o.scope, o.task_key)
  from cairn.observations o
 where o.entity_type = h.entity_type and o.entity_id = h.entity_id and o.entity_version = 1;

-- Rows written before this migration may disagree with their entity's first row (nothing
-- refused that then). Reads filter rows by their own scope, so such an entity reads as
-- incomplete ("observations … are missing") to a reader of only one of its scopes: loud, not
-- silently partial. Say how many there are.
do $$
declare
  v_mixed bigint;
begin
  select count(distinct (o.entity_type, o.entity_id)) into v_mixed
    from cairn.observations o
    join cairn.entity_heads h on h.entity_type = o.entity_type and h.entity_id = o.entity_id
   where cairn.effective_scope(o.scope, o.task_key) is distinct from h.scope;
  if v_mixed > 0 then
    raise warning '% entities have observations in more than one scope; readers see them per row', v_mixed;
  end if;
end
$$;

-- Reads. The policies spell their expressions out rather than call the functions above: SQL
-- functions are inlined by re-parsing their bodies at every planning, and these tables are
-- planned on every read. Each setting is read once per statement (a scalar subquery, an
-- InitPlan), not once per row. FOR SELECT only on the log and the heads: the application has
-- no other privilege on them.
alter table cairn.observations enable row level security;
create policy observations_read_in_scope on cairn.observations
  for select to cairn_app
  using ((select coalesce('*' = any (nullif(pg_catalog.current_setting('cairn.read_scopes', true), '')::text[]), false))
         or (case when scope = 'task' then 'task:' || task_key else scope end)
            = any ((select nullif(pg_catalog.current_setting('cairn.read_scopes', true), '')::text[])::text[]));

alter table cairn.entity_heads enable row level security;
create policy entity_heads_read_in_scope on cairn.entity_heads
  for select to cairn_app
  using ((select coalesce('*' = any (nullif(pg_catalog.current_setting('cairn.read_scopes', true), '')::text[]), false))
         or scope = any ((select nullif(pg_catalog.current_setting('cairn.read_scopes', true), '')::text[])::text[]));

-- Snapshots are a cache of reads: whoever may read an entity may read, store and drop its
-- reductions. Each carries its entity's scope, filled in on insert from the head (whatever the
-- inserter says), so the policy is a plain comparison.
alter table cairn.entity_snapshots add column scope text;

update cairn.entity_snapshots s
   set scope = h.scope
  from cairn.entity_heads h
 where h.entity_type = s.entity_type and h.entity_id = s.entity_id;

-- SECURITY DEFINER: the true scope even when the inserter cannot see the head (its insert is
-- then refused by the policy below).
create function cairn.entity_snapshots_set_scope() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  select h.scope into new.scope
    from cairn.entity_heads h
   where h.entity_type = new.entity_type and h.entity_id = new.entity_id;
  return new;
end
$$;

create trigger entity_snapshots_set_scope
  before insert on cairn.entity_snapshots
  for each row execute function cairn.entity_snapshots_set_scope();

alter table cairn.entity_snapshots enable row level security;
create policy entity_snapshots_in_scope on cairn.entity_snapshots
  for all to cairn_app
  using ((select coalesce('*' = any (nullif(pg_catalog.current_setting('cairn.read_scopes', true), '')::text[]), false))
         or scope = any ((select nullif(pg_catalog.current_setting('cairn.read_scopes', true), '')::text[])::text[]))
  with check ((select coalesce('*' = any (nullif(pg_catalog.current_setting('cairn.read_scopes', true), '')::text[]), false))
              or scope = any ((select nullif(pg_catalog.current_setting('cairn.read_scopes', true), '')::text[])::text[]));

-- The scope an entity belongs to (null: no such entity), for a reader that RLS shows nothing:
-- it can then say "belongs to scope X" rather than look like a new entity. Tells a caller that
-- the entity exists and its scope's name, as a refused append would; never its content.
create function cairn.entity_scope(p_entity_type text, p_entity_id text) returns text
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select h.scope from cairn.entity_heads h where h.entity_type = p_entity_type and h.entity_id = p_entity_id
$$;
revoke execute on function cairn.entity_scope(text, text) from public;
grant execute on function cairn.entity_scope(text, text) to cairn_app;

create function cairn.raise_scope_error(p_code text, p_message text, p_access text, p_role text, p_scope text,
                                        p_granted text[], p_entity text, p_entity_scope text)
returns void
language plpgsql as $$
begin
  raise exception using
    errcode = p_code,
    message = p_message,
    detail = json_build_object('access', p_access, 'role', p_role, 'scope', p_scope,
                               'granted', coalesce(p_granted, '{}'), 'entity', p_entity,
                               'entityScope', p_entity_scope)::text;
end
$$;

-- Writes. Statement-level, over the statement's new rows: a few set-based queries per append
-- whatever its size, no index probe per row where one per entity will do. The scope name's shape
-- is checked here (global, team:…, task:…); its full grammar by the TypeScript that resolves
-- agents' scopes (src/shared/scopes.ts).
create function cairn.check_observation_scopes() returns trigger
language plpgsql as $$
declare
  v_grant text[] := cairn.scope_grant('write');
  -- Whether the grant binds this statement: a grant other than '{*}', or none at all for a
  -- caller acting as the application (deny by default).
  v_bound boolean := case when v_grant is null then cairn.acting_as_application()
                          else not coalesce('*' = any (v_grant), false) end;
  v_bad   record;
begin
  -- 1. Every row names a scope (CNS03) inside the grant (CNS01).
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

  -- 2. A new entity takes the scope of its first row (version 1; its head was created by this
  --    append, or at version 0 by a read receipt). The append holds the heads' row locks, so
  --    this cannot race another writer.
  update cairn.entity_heads h
     set scope = case when n.scope = 'task' then 'task:' || n.task_key else n.scope end
    from new_rows n
   where n.entity_version = 1 and h.entity_type = n.entity_type and h.entity_id = n.entity_id and h.scope is null;

  -- 3. Every row is in its entity's scope (CNS02): one head per entity of the batch.
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

create trigger observations_check_scopes
  after insert on cairn.observations
  referencing new table as new_rows
  for each statement execute function cairn.check_observation_scopes();

grant execute on function cairn.effective_scope(text, text), cairn.scope_grant(text) to cairn_app;
