-- 008: provenance inside the hash chain, and no idempotency replay across scopes (issue #11).
--
--   * Rows written from now on (hash_format 2) carry provenance_hash, the hash of who wrote them
--     and under which key: task, workflow, run, activity, attempt, agent, role and idempotency
--     key (cairn.provenance_hash; src/store/observations/hash.ts computes the same). Their chain
--     link is sha256_hex(prev_hash || content_hash || provenance_hash), so an edit of any of those
--     columns, or of the idempotency key (which would let a retry append a duplicate), breaks the
--     chain and `cairn verify` names the row. The content hash stays what it was (what a row
--     says), so a retry in a new attempt or run still replays the stored row. Rows written
--     before keep hash_format 1 and verify as they always did.
--   * The append functions compute provenance_hash themselves and check provenance's shape
--     (present, at most 512 characters, attempt >= 0: the library's limits). When the worker binds an identity to
--     the transaction (settings cairn.agent_id, cairn.role, cairn.task_key), the provenance
--     must match it (CNP01). What the database cannot know: the Temporal workflow, run,
--     activity and attempt are believed as given; without the settings, so are agent, role and
--     task. Identity is only as good as the process that sets it (see docs/coordination.md).
--   * Replaying an idempotency key stored in a scope the caller may not read raises CN001
--     without naming the stored observation (it used to return that observation's id).

create function cairn.provenance_hash(p_task_key text, p_workflow_id text, p_run_id text, p_activity_id text,
                                      p_attempt int, p_agent_id text, p_role text, p_idempotency_key text)
returns text
language sql immutable parallel safe
as $$
  -- Each part as <UTF-8 byte length>:<text>, concatenated: unambiguous without escaping.
  select encode(sha256(convert_to(
           octet_length(p_task_key) || ':' || p_task_key ||
           octet_length(p_workflow_id) || ':' || p_workflow_id ||
           octet_length(p_run_id) || ':' || p_run_id ||
           octet_length(p_activity_id) || ':' || p_activity_id ||
           octet_length(p_attempt::text) || ':' || p_attempt::text ||
           octet_length(p_agent_id) || ':' || p_agent_id ||
           octet_length(p_role) || ':' || p_role ||
           octet_length(p_idempotency_key) || ':' || p_idempotency_key, 'UTF8')), 'hex')
$$;

alter table cairn.observations add column hash_format smallint not null default 1;
alter table cairn.observations alter column hash_format set default 2;
alter table cairn.observations add column provenance_hash text;

alter table cairn.observations add constraint observations_provenance_hash check (
  (hash_format = 1 and provenance_hash is null)
  or (hash_format = 2 and provenance_hash = cairn.provenance_hash(task_key, workflow_id, run_id, activity_id, attempt,
                                                                   agent_id, role, idempotency_key)));

-- The link now covers provenance_hash when the row has one (format 1 rows: unchanged).
alter table cairn.observations drop constraint observations_chain_link;
alter table cairn.observations add constraint observations_chain_link
  check (chain_hash = encode(sha256(convert_to(prev_hash || content_hash || coalesce(provenance_hash, ''), 'UTF8')), 'hex'));

-- Provenance's shape, and the identity the worker bound to the transaction, if any.
create function cairn.check_provenance(p_task_key text, p_workflow_id text, p_run_id text, p_activity_id text,
                                       p_attempt int, p_agent_id text, p_role text)
returns void
language plpgsql stable as $$
declare
  v_bad text;
begin
  -- The library's limits (src/store/observations/validate.ts): empty strings are allowed (tools
  -- acting outside a workflow leave its ids empty), attempt 0 too.
  v_bad := case
    when p_task_key is null or length(p_task_key) > 512 then 'task_key'
    when p_workflow_id is null or length(p_workflow_id) > 512 then 'workflow_id'
    when p_run_id is null or length(p_run_id) > 512 then 'run_id'
    when p_activity_id is null or length(p_activity_id) > 512 then 'activity_id'
    when p_attempt is null or p_attempt < 0 then 'attempt'
    when p_agent_id is null or length(p_agent_id) > 512 then 'agent_id'
    when p_role is null or length(p_role) > 512 then 'role'
  end;
  if v_bad is not null then
    raise exception 'provenance %: must be present and at most 512 characters (attempt: a whole number >= 0)', v_bad
      using errcode = 'CNP02', detail = json_build_object('field', v_bad)::text;
  end if;
  v_bad := case
    when coalesce(pg_catalog.current_setting('cairn.agent_id', true), '') not in ('', p_agent_id) then 'agent_id'
    when coalesce(pg_catalog.current_setting('cairn.role', true), '') not in ('', p_role) then 'role'
    when coalesce(pg_catalog.current_setting('cairn.task_key', true), '') not in ('', p_task_key) then 'task_key'
  end;
  if v_bad is not null then
    raise exception 'provenance %: "%" is not the % bound to this transaction ("%")', v_bad,
      case v_bad when 'agent_id' then p_agent_id when 'role' then p_role else p_task_key end, v_bad,
      pg_catalog.current_setting('cairn.' || v_bad, true)
      using errcode = 'CNP01', detail = json_build_object('field', v_bad)::text;
  end if;
end
$$;

-- CN001; existing_id null: the key is stored in a scope the caller may not read.
create or replace function cairn.raise_idempotency_conflict(item_index int, key text, existing_id uuid) returns void
language plpgsql as $$
begin
  if existing_id is null then
    raise exception 'idempotency key "%" is already used (by an observation this caller may not read)', key
      using errcode = 'CN001',
            detail = json_build_object('index', item_index, 'idempotencyKey', key, 'existingId', null)::text;
  end if;
  raise exception 'idempotency key "%" was already used for different content (observation %)', key, existing_id
    using errcode = 'CN001',
          detail = json_build_object('index', item_index, 'idempotencyKey', key, 'existingId', existing_id)::text;
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
  perform cairn.check_provenance(p_task_key, p_workflow_id, p_run_id, p_activity_id, p_attempt, p_agent_id, p_role);
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

create or replace function cairn.append_observations(
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
  perform cairn.check_provenance(p_task_key, p_workflow_id, p_run_id, p_activity_id, p_attempt, p_agent_id, p_role);
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
    select u.ord, u.key into v_bad
    from unnest(p_idempotency_key) with ordinality as u(key, ord)
    join cairn.observations o on o.idempotency_key = u.key
    where not cairn.caller_may_read(case when o.scope = 'task' then 'task:' || o.task_key else o.scope end)
    order by u.ord
    limit 1;
    if found then
      -- Another scope's row: say the key is taken, never which observation holds it.
      perform cairn.raise_idempotency_conflict((v_bad.ord - 1)::int, v_bad.key, null);
    end if;
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
           cairn.hash_chain(h.chain_hash, u.hash || u.prov) over w as link,
           gen_random_uuid() as new_id, clock_timestamp() as rec
    from (select u0.*, cairn.provenance_hash(p_task_key, p_workflow_id, p_run_id, p_activity_id, p_attempt,
                                             p_agent_id, p_role, u0.key) as prov
            from unnest(p_entity_type, p_entity_id, p_type, p_schema_version, p_kind, p_fields, p_scope,
                        p_derived_from, p_source, p_target_id, p_expected_version, p_idempotency_key,
                        p_content_hash, p_observed_at)
                 with ordinality as u0(et, eid, typ, sv, kind, fields, scope, refs, src, target, expv, key, hash,
                                       obs_at, ord)) u
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
      idempotency_key, content_hash, prev_hash, chain_hash, hash_format, provenance_hash)
    select i.new_id, i.et, i.eid, i.ver, i.typ, i.sv, i.kind, i.fields, i.scope,
           p_task_key, p_workflow_id, p_run_id, p_activity_id, p_attempt, p_agent_id, p_role,
           i.refs::uuid[], i.src, i.target,
           case when i.expv is null then null
                else cairn.expect_version(i.expv, i.ver - 1, (i.ord - 1)::int, i.et, i.eid) end,
           i.obs_at, i.rec, i.key, i.hash, i.link[1], i.link[2], 2, i.prov
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
