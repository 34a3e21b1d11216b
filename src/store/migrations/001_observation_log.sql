-- 001: the append-only observation log.
--
-- The invariants live here, not in application code:
--   * observations are never updated, deleted or truncated (triggers refuse it, even for the
--     owner; the application role has no UPDATE, DELETE or TRUNCATE privilege);
--   * the application role cannot INSERT either: it writes the log only through
--     cairn.append_observation(s), so what those functions enforce holds for every row it writes:
--   * each entity's observations carry a gapless version 1, 2, 3… (cairn.entity_heads is the
--     per-entity counter; unique (entity_type, entity_id, entity_version) backs it up);
--   * an idempotency key is stored once (unique), so a retried append cannot duplicate a row;
--   * each row is hash-chained to the previous version of its entity (a check constraint proves
--     each link), so a rewritten history is detectable;
--   * every row's type@schema_version is registered in cairn.observation_types, and its
--     target and derived_from references name stored observations.
-- Runs as the migrating (owner) login inside one transaction; see src/store/migrate.ts.

create schema if not exists cairn;

-- The application role. NOLOGIN: application logins are granted it (or, on development machines,
-- a superuser login drops to it with SET ROLE), so the privileges below are what the app gets.
-- Roles are cluster-wide, so several databases on one server may create it at the same moment;
-- the loser of that race sees duplicate_object or unique_violation and moves on.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'cairn_app') then
    create role cairn_app nologin;
  end if;
exception
  when duplicate_object or unique_violation then null;
end
$$;

-- A non-superuser owner must be a member of cairn_app to SET ROLE to it (superusers need not).
do $$
begin
  if not (select rolsuper from pg_roles where rolname = current_user)
     and not pg_has_role(current_user, 'cairn_app', 'member') then
    execute format('grant cairn_app to %I', current_user);
  end if;
end
$$;

revoke all on schema cairn from public;
grant usage on schema cairn to cairn_app;
grant select on cairn.schema_migrations to cairn_app;

-- Registered observation types: the JSON description of each type@version, so any reader (the
-- CLI, a notebook, another language) knows what a row's fields mean.
create table cairn.observation_types (
  name          text        not null,
  version       int         not null check (version >= 1),
  entity        text        not null,
  policies      jsonb       not null,
  json_schema   jsonb       not null,
  description   text        not null default '',
  registered_at timestamptz not null default clock_timestamp(),
  primary key (name, version)
);

create table cairn.observations (
  id               uuid        primary key default gen_random_uuid(),
  -- Global append order, for listing and paging; reduction orders by entity_version instead.
  seq              bigint      generated always as identity,
  entity_type      text        not null,
  entity_id        text        not null,
  entity_version   int         not null check (entity_version >= 1),
  type             text        not null,
  schema_version   int         not null,
  kind             text        not null
                   check (kind in ('assertion', 'inference', 'decision', 'correction', 'retraction')),
  fields           jsonb       not null check (jsonb_typeof(fields) = 'object'),
  scope            text        not null,
  -- Provenance: which task, Temporal workflow/run/activity/attempt, agent and role wrote it.
  task_key         text        not null,
  workflow_id      text        not null,
  run_id           text        not null,
  activity_id      text        not null,
  attempt          int         not null check (attempt >= 0),
  agent_id         text        not null,
  role             text        not null,
  derived_from     uuid[]      not null default '{}',
  source           jsonb,
  -- The observation a correction or retraction is about; only those kinds have one.
  target_id        uuid,
  -- The entity version the writer expected just before this row; see append_observations.
  expected_version int,
  observed_at      timestamptz not null,
  recorded_at      timestamptz not null default clock_timestamp(),
  idempotency_key  text        not null,
  -- A sha256 in hex. decode() rather than a regex: the regex engine (or translate) would cost
  -- more than all the row's other checks together.
  content_hash     text        not null check (octet_length(decode(content_hash, 'hex')) = 32),
  prev_hash        text        not null,
  chain_hash       text        not null,
  constraint observations_idempotency_key_unique unique (idempotency_key),
  constraint observations_entity_version_unique unique (entity_type, entity_id, entity_version),
  constraint observations_target_by_kind check ((target_id is not null) = (kind in ('correction', 'retraction'))),
  constraint observations_expected_version check (expected_version is null or expected_version = entity_version - 1),
  -- Each row proves its own link; the link to the previous row is prev_hash = its chain_hash.
  constraint observations_chain_link
    check (chain_hash = encode(sha256(convert_to(prev_hash || content_hash, 'UTF8')), 'hex'))
);

-- Listing paths (newest-first or paged by seq within each).
create index observations_task_key_idx    on cairn.observations (task_key, seq);
create index observations_agent_id_idx    on cairn.observations (agent_id, seq);
create index observations_role_idx        on cairn.observations (role, seq);
create index observations_type_idx        on cairn.observations (type, seq);
create index observations_recorded_at_idx on cairn.observations (recorded_at);
create unique index observations_seq_idx  on cairn.observations (seq);
-- "What was derived from X?" (downstream closure of a bad observation): derived_from @> array[X].
create index observations_derived_from_idx on cairn.observations using gin (derived_from);

create function cairn.refuse_observation_change() returns trigger
language plpgsql as $$
begin
  raise exception 'cairn.observations is append-only; write a correction or retraction instead'
    using errcode = 'CN003', detail = format('refused %s', tg_op);
end
$$;

create trigger observations_append_only
  before update or delete on cairn.observations
  for each row execute function cairn.refuse_observation_change();

create trigger observations_no_truncate
  before truncate on cairn.observations
  for each statement execute function cairn.refuse_observation_change();

-- The per-entity counter. The append locks an entity's head row, so writers to one entity are
-- serialized and the versions they take are gapless. chain_hash is the newest row's, prev_hash
-- the one before (so a single append can bump the head and learn its row's prev_hash in one
-- statement).
create table cairn.entity_heads (
  entity_type text not null,
  entity_id   text not null,
  version     int  not null check (version >= 0),
  chain_hash  text not null,
  prev_hash   text not null,
  primary key (entity_type, entity_id)
);

-- Cached reductions for the read path. A cache, so the app may also delete from it.
create table cairn.entity_snapshots (
  entity_type text        not null,
  entity_id   text        not null,
  version     int         not null check (version >= 1),
  state       jsonb       not null,
  created_at  timestamptz not null default clock_timestamp(),
  primary key (entity_type, entity_id, version)
);

-- The hash chain over a batch, as a window aggregate: for each row, {prev_hash, chain_hash},
-- starting from the head's chain hash. plpgsql rather than SQL: a SQL transition function is
-- re-planned on every statement, a plpgsql one is compiled once per session.
create function cairn.hash_chain_step(state text[], start text, content_hash text) returns text[]
language plpgsql immutable parallel safe as $$
declare
  prev text := coalesce(state[2], start);
begin
  return array[prev, encode(sha256(convert_to(prev || content_hash, 'UTF8')), 'hex')];
end
$$;

create aggregate cairn.hash_chain(start text, content_hash text) (
  sfunc = cairn.hash_chain_step,
  stype = text[]
);

-- Compare-and-set of one item: raises CN002 unless the entity is at the expected version just
-- before the item is appended. Returns the expected version so it can be stored inline.
create function cairn.expect_version(expected int, current_version int, item_index int, e_type text, e_id text)
returns int
language plpgsql volatile as $$
begin
  if expected is distinct from current_version then
    raise exception '%/%: expected version % but the current version is %', e_type, e_id, expected, current_version
      using errcode = 'CN002',
            detail = json_build_object('index', item_index, 'entityType', e_type, 'entityId', e_id,
                                       'expectedVersion', expected, 'currentVersion', current_version)::text;
  end if;
  return expected;
end
$$;

-- Raises CN001: an idempotency key already stored with different content.
create function cairn.raise_idempotency_conflict(item_index int, key text, existing_id uuid) returns void
language plpgsql as $$
begin
  raise exception 'idempotency key "%" was already used for different content (observation %)', key, existing_id
    using errcode = 'CN001',
          detail = json_build_object('index', item_index, 'idempotencyKey', key, 'existingId', existing_id)::text;
end
$$;

-- THE APPEND. Two entry points with one set of rules:
--   cairn.append_observation   one item, scalar parameters (the common agent step);
--   cairn.append_observations  a batch as parallel arrays (one element per item, as for unnest).
-- Either is one statement for the caller: one round trip, atomic. Provenance is shared by the
-- batch. Each returns one row per item: idx (0-based position in the batch; rows are not
-- sorted), id, entity, version, key, hash, recorded_at, replayed.
--
--   * Idempotency: an item whose key is already stored with the same content hash is not
--     written again; its stored row comes back with replayed = true. The same key with a
--     different content hash raises SQLSTATE CN001 (detail: JSON {index, idempotencyKey,
--     existingId}).
--   * Versions: an entity's head row is created if missing and locked (a batch locks all of its
--     heads in sorted order, so concurrent batches cannot deadlock); new items take head+1,
--     head+2… in item order, and the head advances in the same statement as the insert.
--   * expected_version is the entity version just before *this item* is appended, counting
--     earlier new items of the same batch — exactly as if the items were appended one by one.
--     A mismatch raises CN002 (see cairn.expect_version). A replayed item is not re-checked.
--   * Every type@schema_version must be registered in cairn.observation_types, else CN005
--     (detail: JSON {type, schemaVersion}). Checked once per call, not per row as a foreign key
--     would (which also takes a share lock on the type's row for every row: contention when
--     many agents append the same few types at once).
--   * target_id (corrections, retractions) must name an observation of the same entity, and
--     each derived_from id must name a stored observation; otherwise CN004 (detail: JSON
--     {index, path, problem}).
--   * chain_hash = sha256_hex(prev_hash || content_hash); prev_hash of version 1 is ''.
--
-- Races on a new key: in a batch, idempotency is looked up after the heads are locked, so a
-- concurrent retry of the same items waits for the first writer and then replays its rows. A
-- single append checks the key as it bumps the head, so its retry racing it (or a key reused
-- across entities) can surface as unique_violation on idempotency_key: the caller retries once
-- and then sees the stored row (a replay) or a conflict.
--
-- SECURITY DEFINER, so the application role needs no INSERT on the log (and cannot bypass any of
-- the above); search_path is pinned and every name is schema-qualified, so a caller cannot
-- substitute objects. Generic plans: the statements' shapes do not depend on the parameters'
-- values, and re-planning the batch statement on every call would cost more than running it.

-- The reference checks (CN004) of a batch; also used for a single item.
create function cairn.check_references(p_entity_type text[], p_entity_id text[], p_target_id uuid[], p_derived_from text[])
returns void
language plpgsql stable as $$
declare
  v_bad     record;
  v_problem text;
begin
  if array_remove(p_target_id, null) <> '{}' then
    select u.ord, u.target, o.entity_type as o_type, o.entity_id as o_id into v_bad
    from unnest(p_entity_type, p_entity_id, p_target_id) with ordinality as u(et, eid, target, ord)
    left join cairn.observations o on o.id = u.target
    where u.target is not null and (o.id is null or o.entity_type <> u.et or o.entity_id <> u.eid)
    order by u.ord
    limit 1;
    if found then
      v_problem := case when v_bad.o_type is null then format('no stored observation %s', v_bad.target)
                        else format('observation %s is about %s/%s, not this entity', v_bad.target, v_bad.o_type, v_bad.o_id) end;
      raise exception 'observation [%] targetId: %', v_bad.ord - 1, v_problem
        using errcode = 'CN004',
              detail = json_build_object('index', v_bad.ord - 1, 'path', 'targetId', 'problem', v_problem)::text;
    end if;
  end if;
  if array_remove(p_derived_from, '{}') <> '{}' then
    select u.ord, d.ref, d.pos into v_bad
    from unnest(p_derived_from) with ordinality as u(refs, ord)
    cross join lateral unnest(u.refs::uuid[]) with ordinality as d(ref, pos)
    where not exists (select 1 from cairn.observations o where o.id = d.ref)
    order by u.ord, d.pos
    limit 1;
    if found then
      raise exception 'observation [%] derivedFrom[%]: no stored observation %', v_bad.ord - 1, v_bad.pos - 1, v_bad.ref
        using errcode = 'CN004',
              detail = json_build_object('index', v_bad.ord - 1, 'path', format('derivedFrom[%s]', v_bad.pos - 1),
                                         'problem', format('no stored observation %s', v_bad.ref))::text;
    end if;
  end if;
end
$$;

create function cairn.append_observation(
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
begin
  if p_target_id is not null or p_derived_from <> '{}' then
    perform cairn.check_references(array[p_entity_type], array[p_entity_id], array[p_target_id],
                                   array[p_derived_from::text]);
  end if;

  -- One statement in the common case: bump the head (creating and locking it) unless the key
  -- is already stored or the type is not registered, and insert the row it numbers.
  with head as (
    insert into cairn.entity_heads as h (entity_type, entity_id, version, chain_hash, prev_hash)
    select p_entity_type, p_entity_id, 1, encode(sha256(convert_to(p_content_hash, 'UTF8')), 'hex'), ''
    where exists (select 1 from cairn.observation_types ot where ot.name = p_type and ot.version = p_schema_version)
      and not exists (select 1 from cairn.observations o where o.idempotency_key = p_idempotency_key)
    on conflict (entity_type, entity_id) do update
      set version = h.version + 1,
          prev_hash = h.chain_hash,
          chain_hash = encode(sha256(convert_to(h.chain_hash || p_content_hash, 'UTF8')), 'hex')
    returning h.version, h.prev_hash, h.chain_hash
  )
  insert into cairn.observations (
    entity_type, entity_id, entity_version, type, schema_version, kind, fields, scope,
    task_key, workflow_id, run_id, activity_id, attempt, agent_id, role,
    derived_from, source, target_id, expected_version, observed_at,
    idempotency_key, content_hash, prev_hash, chain_hash)
  select p_entity_type, p_entity_id, head.version, p_type, p_schema_version, p_kind, p_fields, p_scope,
         p_task_key, p_workflow_id, p_run_id, p_activity_id, p_attempt, p_agent_id, p_role,
         p_derived_from, p_source, p_target_id,
         case when p_expected_version is null then null
              else cairn.expect_version(p_expected_version, head.version - 1, 0, p_entity_type, p_entity_id) end,
         p_observed_at, p_idempotency_key, p_content_hash, head.prev_hash, head.chain_hash
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
  select o.id, o.entity_type, o.entity_id, o.entity_version, o.content_hash, o.recorded_at into v_row
  from cairn.observations o
  where o.idempotency_key = p_idempotency_key;
  if found then
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

create function cairn.append_observations(
  p_entity_type      text[],
  p_entity_id        text[],
  p_type             text[],
  p_schema_version   int[],
  p_kind             text[],
  p_fields           jsonb[],
  p_scope            text[],
  p_derived_from     text[],  -- each element a uuid[] literal, e.g. '{}' or '{a,b}'
  p_source           jsonb[],
  p_target_id        uuid[],
  p_expected_version int[],
  p_idempotency_key  text[],
  p_content_hash     text[],
  p_observed_at      timestamptz[],
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
  v_n        int := coalesce(cardinality(p_idempotency_key), 0);
  v_existing int;
  v_bad      record;
begin
  if v_n = 0 then
    return;
  end if;
  if cardinality(p_entity_type) <> v_n or cardinality(p_entity_id) <> v_n or cardinality(p_type) <> v_n
     or cardinality(p_schema_version) <> v_n or cardinality(p_kind) <> v_n or cardinality(p_fields) <> v_n
     or cardinality(p_scope) <> v_n or cardinality(p_derived_from) <> v_n or cardinality(p_source) <> v_n
     or cardinality(p_target_id) <> v_n or cardinality(p_expected_version) <> v_n
     or cardinality(p_content_hash) <> v_n or cardinality(p_observed_at) <> v_n then
    raise exception 'append_observations: the parameter arrays must all have % elements', v_n
      using errcode = '22023';
  end if;
  if v_n = 1 then
    return query select * from cairn.append_observation(
      p_entity_type[1], p_entity_id[1], p_type[1], p_schema_version[1], p_kind[1], p_fields[1], p_scope[1],
      p_derived_from[1]::uuid[], p_source[1], p_target_id[1], p_expected_version[1], p_idempotency_key[1],
      p_content_hash[1], p_observed_at[1], p_task_key, p_workflow_id, p_run_id, p_activity_id, p_attempt,
      p_agent_id, p_role);
    return;
  end if;

  select u.typ, u.sv into v_bad
  from (select distinct t.typ, t.sv from unnest(p_type, p_schema_version) as t(typ, sv)) u
  where not exists (select 1 from cairn.observation_types ot where ot.name = u.typ and ot.version = u.sv)
  limit 1;
  if found then
    raise exception 'observation type %@% is not registered in cairn.observation_types', v_bad.typ, v_bad.sv
      using errcode = 'CN005',
            detail = json_build_object('type', v_bad.typ, 'schemaVersion', v_bad.sv)::text,
            hint = 'register the type first (registerObservationTypes)';
  end if;
  -- Stored rows are never deleted, so checking references before taking any lock is enough.
  perform cairn.check_references(p_entity_type, p_entity_id, p_target_id, p_derived_from);

  -- Sorts use the "C" collation: any fixed total order serves (for lock order and
  -- grouping) and byte comparison is much cheaper than the locale's.
  -- 1. Create missing heads and lock every head the batch touches, in sorted order.
  insert into cairn.entity_heads as h (entity_type, entity_id, version, chain_hash, prev_hash)
  select distinct u.et collate "C", u.eid collate "C", 0, '', ''
  from unnest(p_entity_type, p_entity_id) as u(et, eid)
  order by 1, 2
  on conflict (entity_type, entity_id) do update set version = h.version;

  -- 2. Idempotency, now that earlier writers to these entities have committed.
  select count(*)::int into v_existing
  from unnest(p_idempotency_key) as u(key)
  join cairn.observations o on o.idempotency_key = u.key;

  if v_existing > 0 then
    select u.ord, u.key, o.id into v_bad
    from unnest(p_idempotency_key, p_content_hash) with ordinality as u(key, hash, ord)
    join cairn.observations o on o.idempotency_key = u.key
    where o.content_hash <> u.hash
    order by u.ord
    limit 1;
    if found then
      perform cairn.raise_idempotency_conflict((v_bad.ord - 1)::int, v_bad.key, v_bad.id);
    end if;
  end if;

  -- 3. Number, chain, check expected versions, insert and advance the heads: one statement.
  --    Items already stored (replays) are left out of the numbering and come back flagged.
  --    Ids and recorded_at are drawn in `item` (materialized: it is read three times) rather
  --    than taken from RETURNING, so the result needs no join back to the inserted rows.
  return query
  with item as (
    select u.*, (h.version + row_number() over w)::int as ver,
           cairn.hash_chain(h.chain_hash, u.hash) over w as link,
           gen_random_uuid() as new_id, clock_timestamp() as rec
    from unnest(p_entity_type, p_entity_id, p_type, p_schema_version, p_kind, p_fields, p_scope,
                p_derived_from, p_source, p_target_id, p_expected_version, p_idempotency_key,
                p_content_hash, p_observed_at)
         with ordinality as u(et, eid, typ, sv, kind, fields, scope, refs, src, target, expv, key, hash,
                              obs_at, ord)
    join cairn.entity_heads h on h.entity_type = u.et and h.entity_id = u.eid
    where v_existing = 0
       or not exists (select 1 from cairn.observations o where o.idempotency_key = u.key)
    window w as (partition by u.et collate "C", u.eid collate "C" order by u.ord)
  ),
  ins as (
    insert into cairn.observations (
      id, entity_type, entity_id, entity_version, type, schema_version, kind, fields, scope,
      task_key, workflow_id, run_id, activity_id, attempt, agent_id, role,
      derived_from, source, target_id, expected_version, observed_at, recorded_at,
      idempotency_key, content_hash, prev_hash, chain_hash)
    select i.new_id, i.et, i.eid, i.ver, i.typ, i.sv, i.kind, i.fields, i.scope,
           p_task_key, p_workflow_id, p_run_id, p_activity_id, p_attempt, p_agent_id, p_role,
           i.refs::uuid[], i.src, i.target,
           case when i.expv is null then null
                else cairn.expect_version(i.expv, i.ver - 1, (i.ord - 1)::int, i.et, i.eid) end,
           i.obs_at, i.rec, i.key, i.hash, i.link[1], i.link[2]
    from item i
  ),
  advanced as (
    update cairn.entity_heads h
    set version = t.ver, chain_hash = t.link[2], prev_hash = t.link[1]
    from (select distinct on (i.et collate "C", i.eid collate "C") i.et, i.eid, i.ver, i.link
          from item i
          order by i.et collate "C", i.eid collate "C", i.ver desc) t
    where h.entity_type = t.et and h.entity_id = t.eid
  )
  select (i.ord - 1)::int, i.new_id, i.et, i.eid, i.ver, i.key, i.hash, i.rec, false
  from item i
  union all
  select (u.ord - 1)::int, o.id, o.entity_type, o.entity_id, o.entity_version, o.idempotency_key,
         o.content_hash, o.recorded_at, true
  from unnest(p_idempotency_key) with ordinality as u(key, ord)
  join cairn.observations o on o.idempotency_key = u.key
  where v_existing > 0;
end
$$;

-- The application reads everything it needs and writes the log only through the functions.
grant select on cairn.observations to cairn_app;
grant select on cairn.entity_heads to cairn_app;
grant select, insert on cairn.observation_types to cairn_app;
grant select, insert, delete on cairn.entity_snapshots to cairn_app;
revoke execute on function cairn.append_observation(text, text, text, int, text, jsonb, text, uuid[], jsonb, uuid, int,
  text, text, timestamptz, text, text, text, text, int, text, text) from public;
grant execute on function cairn.append_observation(text, text, text, int, text, jsonb, text, uuid[], jsonb, uuid, int,
  text, text, timestamptz, text, text, text, text, int, text, text) to cairn_app;
revoke execute on function cairn.append_observations(text[], text[], text[], int[], text[], jsonb[], text[], text[],
  jsonb[], uuid[], int[], text[], text[], timestamptz[], text, text, text, text, int, text, text) from public;
grant execute on function cairn.append_observations(text[], text[], text[], int[], text[], jsonb[], text[], text[],
  jsonb[], uuid[], int[], text[], text[], timestamptz[], text, text, text, text, int, text, text) to cairn_app;
