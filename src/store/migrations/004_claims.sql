-- 004: claims — exclusive, expiring leases on named resources, with fencing tokens.
--
-- The invariants live here, not in application code:
--   * one row per resource, never deleted: the row is the resource's fencing-token counter, so
--     a token only grows, by one per grant, across releases and takeovers (a trigger refuses
--     anything else, even from the owner, and refuses a grant over a lease that is still live);
--   * every decision is taken on the row's newest version, locked, with the database's clock
--     read after the lock: clients' clocks do not matter and one caller wins any race;
--   * every grant, renewal, release and takeover is recorded in the append-only
--     cairn.claim_events by the same statement that made it, so an auditor can check the
--     history without trusting this code;
--   * the application role writes only through the functions below (SECURITY DEFINER).
-- Error codes: CNF01 stale fencing token, CNF02 bad argument, CNF03 refused change.

create table cairn.claims (
  resource        text        primary key check (length(resource) between 1 and 512),
  -- null only before the first grant (a row created free by claim_next / register_work_items).
  holder          text        check (length(holder) between 1 and 512),
  -- 0 = never granted; the first grant is 1.
  token           bigint      not null default 0 check (token >= 0),
  acquired_at     timestamptz,
  -- null until the holder renews.
  renewed_at      timestamptz,
  -- '-infinity' before the first grant.
  expires_at      timestamptz not null default '-infinity',
  released_at     timestamptz,
  -- Set by an expired takeover: whose lapsed lease this grant replaced.
  previous_holder text,
  constraint claims_granted_shape check ((token = 0) = (holder is null) and (token = 0) = (acquired_at is null))
) with (fillfactor = 50);  -- room for HOT updates: a hot resource's row is rewritten on every change

create table cairn.claim_events (
  seq             bigint      generated always as identity,
  resource        text        not null,
  event           text        not null check (event in ('granted', 'renewed', 'released', 'expired-takeover')),
  token           bigint      not null check (token >= 1),
  holder          text        not null,
  -- Database time the event took effect.
  at              timestamptz not null,
  -- The lease's expiry after the event (a release ends the lease at `at`).
  expires_at      timestamptz not null,
  -- expired-takeover: whose lapsed lease was taken over.
  previous_holder text,
  -- Append order (an ever-growing key: inserts touch only the rightmost page).
  primary key (seq)
);

-- Resources that are units of work of a kind (`<kind>/<id>`): nextFree hands out the oldest
-- one that is neither claimed nor done; completing one is fenced by its claim.
create table cairn.work_items (
  seq           bigint      generated always as identity,
  kind          text        not null check (kind ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$'),
  id            text        not null check (length(id) between 1 and 300),
  resource      text        generated always as (kind || '/' || id) stored,
  registered_at timestamptz not null default clock_timestamp(),
  done_at       timestamptz,
  done_by       text,
  done_token    bigint,
  primary key (kind, id),
  constraint work_items_done_shape check ((done_at is null) = (done_by is null) and (done_at is null) = (done_token is null))
);
create unique index work_items_resource_idx on cairn.work_items (resource);
create index work_items_pending_idx on cairn.work_items (kind, seq) where done_at is null;

-- The fencing invariants, for every writer including the owner; and the times of grants and
-- releases. An UPDATE computes its new row before it waits for the row lock (say, of a fenced
-- writer's FOR SHARE), and a row that was only locked meanwhile is not re-evaluated: so a grant
-- or release is stamped here, where the row is locked, never before the wait. (Renewals are
-- decided on an explicitly locked row with one clock reading; see extend_claim.)
create function cairn.claims_guard() returns trigger
language plpgsql as $$
declare
  v_now timestamptz;
begin
  if new.token = old.token + 1 then
    v_now := clock_timestamp();
    new.expires_at := v_now + (new.expires_at - new.acquired_at);
    new.acquired_at := v_now;
  elsif new.released_at is not null and old.released_at is null then
    new.released_at := clock_timestamp();
  end if;
  if new.resource <> old.resource or new.token < old.token or new.token > old.token + 1 then
    raise exception 'cairn.claims: the fencing token of % can only grow by one per grant (% to %)', old.resource, old.token, new.token
      using errcode = 'CNF03';
  end if;
  if new.token = old.token + 1 and old.token > 0 and old.released_at is null and old.expires_at > new.acquired_at then
    raise exception 'cairn.claims: % is held by % until %; it cannot be granted at %', old.resource, old.holder, old.expires_at, new.acquired_at
      using errcode = 'CNF03';
  end if;
  if new.token = old.token and (new.holder is distinct from old.holder or new.acquired_at is distinct from old.acquired_at) then
    raise exception 'cairn.claims: % token % changes holder only by a new grant', old.resource, old.token using errcode = 'CNF03';
  end if;
  return new;
end
$$;

create trigger claims_guard before update on cairn.claims
  for each row execute function cairn.claims_guard();

create function cairn.refuse_claim_delete() returns trigger
language plpgsql as $$
begin
  raise exception 'cairn.%: refused %; a claim row is its resource''s fencing-token counter and claim events are history',
    tg_table_name, tg_op using errcode = 'CNF03', detail = format('refused %s', tg_op);
end
$$;

create trigger claims_no_delete before delete on cairn.claims
  for each row execute function cairn.refuse_claim_delete();
create trigger claims_no_truncate before truncate on cairn.claims
  for each statement execute function cairn.refuse_claim_delete();
create trigger claim_events_append_only before update or delete on cairn.claim_events
  for each row execute function cairn.refuse_claim_delete();
create trigger claim_events_no_truncate before truncate on cairn.claim_events
  for each statement execute function cairn.refuse_claim_delete();

-- The result of claim, claim_next, renew_claim and release_claim. outcome:
--   granted | expired-takeover | renewed  — the caller holds the claim (token, until expires_at);
--   held       — someone else does (holder, token, until expires_at);
--   released   — release_claim succeeded;
--   refused    — renew/release by a caller that is not the current holder with that token, or
--                of a lease that ended (the row's current state comes back);
--   none       — no claim row / nothing free.
-- checked_at is the database time the answer holds for, so callers compute "expires in"
-- without trusting their own clocks.
create type cairn.claim_result as (
  outcome         text,
  resource        text,
  holder          text,
  token           bigint,
  acquired_at     timestamptz,
  expires_at      timestamptz,
  released_at     timestamptz,
  checked_at      timestamptz,
  previous_holder text
);

-- Grants p_resource to p_holder if its claim is free — never granted, released, or lapsed — on
-- the row's newest version (an UPDATE re-checks its WHERE once it holds the row lock; the clock
-- is read then, and the grant's times after it). Returns the new row, or null if not free.
create function cairn.take_claim(p_resource text, p_holder text, p_ttl_ms int)
returns cairn.claims
language plpgsql as $$
declare
  r cairn.claims;
begin
  with granted as (
    update cairn.claims c
    set holder = p_holder, token = c.token + 1, acquired_at = clock_timestamp(), renewed_at = null,
        expires_at = clock_timestamp() + p_ttl_ms * interval '1 millisecond', released_at = null,
        previous_holder = case when c.token > 0 and c.released_at is null then c.holder end
    where c.resource = p_resource
      and (c.token = 0 or c.released_at is not null or c.expires_at <= clock_timestamp())
    returning c.*
  ), logged as (
    insert into cairn.claim_events (resource, event, token, holder, at, expires_at, previous_holder)
    select g.resource, case when g.previous_holder is null then 'granted' else 'expired-takeover' end,
           g.token, g.holder, g.acquired_at, g.expires_at, g.previous_holder
    from granted g
  )
  select * into r from granted;
  return r;
end
$$;

-- Renews the locked row `r` of its holder at v_now (a clock read after the lock); a renewal
-- never shortens a lease.
create function cairn.extend_claim(r cairn.claims, p_ttl_ms int, v_now timestamptz)
returns cairn.claim_result
language plpgsql as $$
declare
  v_expires timestamptz := greatest(r.expires_at, v_now + p_ttl_ms * interval '1 millisecond');
begin
  with renewed as (
    update cairn.claims c set renewed_at = v_now, expires_at = v_expires
    where c.resource = r.resource
    returning c.*
  )
  insert into cairn.claim_events (resource, event, token, holder, at, expires_at)
  select g.resource, 'renewed', g.token, g.holder, v_now, v_expires from renewed g;
  return row('renewed', r.resource, r.holder, r.token, r.acquired_at, v_expires, null, v_now, null)::cairn.claim_result;
end
$$;

create function cairn.granted_result(r cairn.claims) returns cairn.claim_result
language sql immutable as $$
  select row(case when r.previous_holder is null then 'granted' else 'expired-takeover' end, r.resource, r.holder,
             r.token, r.acquired_at, r.expires_at, null, r.acquired_at, r.previous_holder)::cairn.claim_result
$$;

-- CLAIM: grants p_resource to p_holder for p_ttl_ms, renews it if p_holder already holds it,
-- or says who holds it and until when. One winner under any race.
create function cairn.claim(p_resource text, p_holder text, p_ttl_ms int)
returns cairn.claim_result
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  r      cairn.claims;
  f      record;
  v_now  timestamptz;
  v_read timestamptz;
begin
  if p_resource is null or length(p_resource) not between 1 and 512 or p_holder is null or length(p_holder) not between 1 and 512
     or p_ttl_ms is null or p_ttl_ms not between 1 and 604800000 then
    raise exception 'claim: resource and holder must be 1 to 512 characters, ttl 1 ms to 7 days' using errcode = 'CNF02';
  end if;
  -- 1. Free: taken in one statement.
  r := cairn.take_claim(p_resource, p_holder, p_ttl_ms);
  if r.resource is not null then
    return cairn.granted_result(r);
  end if;
  -- 2. Someone else's live claim, read without a lock from a row nobody is changing (xmax 0:
  --    every change locks the row before it reads the clock, so a release in flight cannot have
  --    ended the lease before this read). The answer holds as of greatest(clock before the read,
  --    its grant): a moment the lease was certainly live.
  v_read := clock_timestamp();
  select c.holder, c.token, c.acquired_at, c.expires_at, c.released_at, c.xmax::text = '0' as quiet into f
  from cairn.claims c where c.resource = p_resource;
  v_now := clock_timestamp();
  if found and f.quiet and f.token > 0 and f.released_at is null and f.expires_at > v_now and f.holder <> p_holder then
    return row('held', p_resource, f.holder, f.token, f.acquired_at, f.expires_at, null,
               greatest(v_read, f.acquired_at), null)::cairn.claim_result;
  end if;
  -- 3. Everything else on the locked row: a first claim (insert), a renewal by the holder, a
  --    claim freed since step 1, or a held answer while someone is changing the row.
  loop
    select * into r from cairn.claims c where c.resource = p_resource for update;
    exit when found;
    with inserted as (
      insert into cairn.claims (resource, holder, token, acquired_at, expires_at)
      values (p_resource, p_holder, 1, clock_timestamp(), clock_timestamp() + p_ttl_ms * interval '1 millisecond')
      on conflict (resource) do nothing
      returning *
    ), logged as (
      insert into cairn.claim_events (resource, event, token, holder, at, expires_at)
      select i.resource, 'granted', 1, i.holder, i.acquired_at, i.expires_at from inserted i
    )
    select * into r from inserted;
    if found then
      return cairn.granted_result(r);
    end if;
    -- Another claimer inserted it first: lock its row and decide on that.
  end loop;
  v_now := clock_timestamp();
  if r.holder = p_holder and r.released_at is null and r.expires_at > v_now then
    return cairn.extend_claim(r, p_ttl_ms, v_now);
  end if;
  if r.token = 0 or r.released_at is not null or r.expires_at <= v_now then
    return cairn.granted_result(cairn.take_claim(p_resource, p_holder, p_ttl_ms));
  end if;
  return row('held', r.resource, r.holder, r.token, r.acquired_at, r.expires_at, null, v_now, null)::cairn.claim_result;
end
$$;

-- NEXT FREE: grants the first of p_resources (in order) whose claim is free — never granted,
-- released or lapsed — and not locked by a concurrent claimer (SKIP LOCKED: claimers never
-- queue behind each other). With p_kind instead (p_resources null): the kind's oldest
-- registered work item that is not done.
create function cairn.claim_next(p_resources text[], p_kind text, p_holder text, p_ttl_ms int)
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
      insert into cairn.claims (resource)
      select u.res from unnest(p_resources) u(res)
      where not exists (select 1 from cairn.claims c where c.resource = u.res)
      on conflict (resource) do nothing;
      get diagnostics v_created = row_count;
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
    -- The claim row is locked now; done-ness is re-read on a fresh snapshot, so an item
    -- completed by a holder whose lease then lapsed is never handed out again.
    exit when not exists (select 1 from cairn.work_items w where w.resource = v_res and w.done_at is not null);
    v_skip := v_skip || v_res;
  end loop;
  return cairn.granted_result(cairn.take_claim(v_res, p_holder, p_ttl_ms));
end
$$;

-- RENEW: extends the lease to p_ttl_ms from now (never shortening it), only for its holder
-- with its token, before it expires. Refused otherwise, with the claim's current state.
create function cairn.renew_claim(p_resource text, p_holder text, p_token bigint, p_ttl_ms int)
returns cairn.claim_result
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  r     cairn.claims;
  v_now timestamptz;
begin
  if p_ttl_ms is null or p_ttl_ms not between 1 and 604800000 then
    raise exception 'renew_claim: ttl must be 1 ms to 7 days' using errcode = 'CNF02';
  end if;
  select * into r from cairn.claims c where c.resource = p_resource for update;
  v_now := clock_timestamp();
  if not found then
    return row('none', p_resource, null, null, null, null, null, v_now, null)::cairn.claim_result;
  end if;
  if r.holder is distinct from p_holder or r.token <> p_token or r.released_at is not null or r.expires_at <= v_now then
    return row('refused', r.resource, r.holder, r.token, r.acquired_at, r.expires_at, r.released_at, v_now, null)::cairn.claim_result;
  end if;
  return cairn.extend_claim(r, p_ttl_ms, v_now);
end
$$;

-- RELEASE: ends the lease now, only by its holder (and token, when given). Releasing a lease
-- that expired but was not taken over is accepted: it changes nothing but the record.
create function cairn.release_claim(p_resource text, p_holder text, p_token bigint)
returns cairn.claim_result
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  r cairn.claims;
begin
  with released as (
    update cairn.claims c set released_at = clock_timestamp()
    where c.resource = p_resource and c.holder = p_holder and (p_token is null or c.token = p_token)
      and c.released_at is null
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

-- FENCE: the guard of a fenced write, called inside the writer's transaction before it writes.
-- Passes only if p_token is the resource's current token, unreleased and unexpired (database
-- clock, read after the lock). The FOR SHARE lock is held until the writer commits, so no
-- takeover (or renewal, or release) can happen between this check and the write: the next
-- holder's lease starts after every write the old token was allowed to make. Returns the
-- check's database time. Stale: SQLSTATE CNF01, detail JSON {resource, token, reason,
-- currentToken, holder, expiresAt, checkedAt}.
create function cairn.check_fence(p_resource text, p_token bigint)
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
                                       'expiresAt', r.expires_at, 'checkedAt', v_now)::text;
  end if;
  return v_now;
end
$$;

-- Registers units of work `<p_kind>/<id>`; returns how many were new. Idempotent.
create function cairn.register_work_items(p_kind text, p_ids text[])
returns int
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_new int;
begin
  insert into cairn.work_items (kind, id)
  select p_kind, u.id from unnest(p_ids) with ordinality u(id, ord) order by u.ord
  on conflict (kind, id) do nothing;
  get diagnostics v_new = row_count;
  insert into cairn.claims (resource)
  select p_kind || '/' || u.id from unnest(p_ids) u(id)
  on conflict (resource) do nothing;
  return v_new;
end
$$;

-- Marks a work item done, fenced by its claim (see check_fence). Returns 'done', 'already-done'
-- (idempotent for a retried step) or 'not-a-work-item'.
create function cairn.complete_work_item(p_resource text, p_holder text, p_token bigint)
returns text
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
  perform cairn.check_fence(p_resource, p_token);
  update cairn.work_items set done_at = clock_timestamp(), done_by = p_holder, done_token = p_token
  where resource = p_resource and done_at is null;
  if found then
    return 'done';
  end if;
  return case when exists (select 1 from cairn.work_items where resource = p_resource) then 'already-done' else 'not-a-work-item' end;
end
$$;

grant select on cairn.claims, cairn.claim_events, cairn.work_items to cairn_app;
revoke execute on function cairn.take_claim(text, text, int) from public;
revoke execute on function cairn.extend_claim(cairn.claims, int, timestamptz) from public;
revoke execute on function cairn.claim(text, text, int) from public;
revoke execute on function cairn.claim_next(text[], text, text, int) from public;
revoke execute on function cairn.renew_claim(text, text, bigint, int) from public;
revoke execute on function cairn.release_claim(text, text, bigint) from public;
revoke execute on function cairn.check_fence(text, bigint) from public;
revoke execute on function cairn.register_work_items(text, text[]) from public;
revoke execute on function cairn.complete_work_item(text, text, bigint) from public;
grant execute on function cairn.claim(text, text, int) to cairn_app;
grant execute on function cairn.claim_next(text[], text, text, int) to cairn_app;
grant execute on function cairn.renew_claim(text, text, bigint, int) to cairn_app;
grant execute on function cairn.release_claim(text, text, bigint) to cairn_app;
grant execute on function cairn.check_fence(text, bigint) to cairn_app;
grant execute on function cairn.register_work_items(text, text[]) to cairn_app;
grant execute on function cairn.complete_work_item(text, text, bigint) to cairn_app;
