-- 017: the claim functions answer with a claim's details only to callers who may read its scope
-- (issue #11, the last residual leaks), and do less work per call (issue #14).
--
-- Since 013 claims, claim events and work items carry a scope and row-level security, but the
-- SECURITY DEFINER functions (which RLS does not reach) still told any caller who held what:
-- cairn.claim's "held" answer, renew/release refusals (they return the claim's current state),
-- the stale-fence error of check_fence, the claims_guard trigger's message; and claim_next over
-- work items handed out a kind's items whichever scope had registered them.
--
-- Now, in every one of them, the details of a claim — holder, token, acquired/expiry/release
-- times, previous holder — come back only when the caller may read the claim's scope, by the
-- same rule as the RLS policy of 013 (cairn.claim_visible below), or when the caller proves it
-- is the holder of that very grant (renew/release with the holder's name and token; claim by the
-- holder's name alone renews only for a caller who may read the scope: a name is no proof). Otherwise
-- the answer keeps its outcome and says nothing else: "held" (someone holds it, under a scope
-- the caller may not read), "refused", or a stale fence with its reason. Exclusivity stays
-- global: resource names are one namespace, and a grant is refused whoever holds the claim.
--
-- claim_next over registered work items hands out only items of scopes the caller may read (an
-- item belongs to the scope it was registered under; one registered outside any scope — scope
-- null — only to all-scopes sessions, as for its rows in 013). With a candidate list it works as
-- before: the caller names the resources, as with claim.
--
-- Cost (issue #14): a grant is one statement that also sets the claim's scope (the acting scope,
-- computed once per statement) and logs the event, inside the function (take_claim, a nested
-- plpgsql call, is gone), and the claims_scope_on_grant trigger is dropped: the functions, the
-- only writers, set the scope themselves. The claims_guard trigger stays (it guards the owner's
-- writes too and stamps grants and releases after the row lock).
-- Error codes unchanged: CNF01 stale fencing token, CNF02 bad argument, CNF03 refused change.

-- Whether the caller may see the details of a claim (or event, or work item) of scope p_scope:
-- the RLS rule of 013 ('{*}', or the scope among the read grant, the write grant and the task the
-- transaction acts for); a row of no scope only with '{*}'. The owner and superusers acting as
-- themselves see everything, as RLS lets them. For the definer functions, which RLS does not
-- reach; the cheap tests first (the catalog lookup only for a session not acting as cairn_app).
create function cairn.claim_visible(p_scope text) returns boolean
language sql stable
as $$
  select case when '*' = any (cairn.bookkeeping_scopes()) or p_scope = any (cairn.bookkeeping_scopes()) then true
              when pg_catalog.current_setting('role') = 'cairn_app' then false
              else not cairn.acting_as_application() end
$$;
revoke execute on function cairn.claim_visible(text) from public;

-- ---------------------------------------------------------------------------------------------
-- The guard: as in 004, but a refused grant over a live lease no longer names its holder and
-- expiry (the message reaches whoever made the call).

create or replace function cairn.claims_guard() returns trigger
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
    raise exception 'cairn.claims: % is held by a lease that is still live; it cannot be granted', old.resource
      using errcode = 'CNF03';
  end if;
  if new.token = old.token and (new.holder is distinct from old.holder or new.acquired_at is distinct from old.acquired_at) then
    raise exception 'cairn.claims: % token % changes holder only by a new grant', old.resource, old.token using errcode = 'CNF03';
  end if;
  return new;
end
$$;

-- The functions set a grant's scope themselves (the acting scope, in the granting statement).
drop trigger claims_scope_on_grant on cairn.claims;
drop function cairn.claims_set_scope();

-- ---------------------------------------------------------------------------------------------
-- CLAIM: as in 004; the grant is one statement here (no nested take_claim); a "held" answer
-- names holder, token and times only to a caller who may read the claim's scope.
create or replace function cairn.claim(p_resource text, p_holder text, p_ttl_ms int)
returns cairn.claim_result
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  r      cairn.claim_result;
  v_c    cairn.claims;
  f      record;
  v_now  timestamptz;
  v_read timestamptz;
begin
  if p_resource is null or length(p_resource) not between 1 and 512 or p_holder is null or length(p_holder) not between 1 and 512
     or p_ttl_ms is null or p_ttl_ms not between 1 and 604800000 then
    raise exception 'claim: resource and holder must be 1 to 512 characters, ttl 1 ms to 7 days' using errcode = 'CNF02';
  end if;
  -- 1. Free (never granted, released or lapsed, re-checked on the row's newest version once the
  --    UPDATE holds its lock): granted, scoped and logged in one statement.
  with granted as (
    update cairn.claims c
    set holder = p_holder, token = c.token + 1, acquired_at = clock_timestamp(), renewed_at = null,
        expires_at = clock_timestamp() + p_ttl_ms * interval '1 millisecond', released_at = null,
        previous_holder = case when c.token > 0 and c.released_at is null then c.holder end,
        scope = cairn.acting_scope()
    where c.resource = p_resource
      and (c.token = 0 or c.released_at is not null or c.expires_at <= clock_timestamp())
    returning c.*
  ), logged as (
    insert into cairn.claim_events (resource, event, token, holder, at, expires_at, previous_holder, scope)
    select g.resource, case when g.previous_holder is null then 'granted' else 'expired-takeover' end,
           g.token, g.holder, g.acquired_at, g.expires_at, g.previous_holder, g.scope
    from granted g
  )
  select case when g.previous_holder is null then 'granted' else 'expired-takeover' end, g.resource, g.holder,
         g.token, g.acquired_at, g.expires_at, null::timestamptz, g.acquired_at, g.previous_holder
    into r from granted g;
  if found then
    return r;
  end if;
  -- 2. Someone else's live claim, read without a lock from a row nobody is changing (see 004).
  --    The answer holds as of greatest(clock before the read, its grant).
  v_read := clock_timestamp();
  select c.holder, c.token, c.acquired_at, c.expires_at, c.released_at, c.scope, c.xmax::text = '0' as quiet into f
  from cairn.claims c where c.resource = p_resource;
  v_now := clock_timestamp();
  if found and f.quiet and f.token > 0 and f.released_at is null and f.expires_at > v_now and f.holder <> p_holder then
    if cairn.claim_visible(f.scope) then
      return row('held', p_resource, f.holder, f.token, f.acquired_at, f.expires_at, null,
                 greatest(v_read, f.acquired_at), null)::cairn.claim_result;
    end if;
    -- Held under a scope the caller may not read: no holder, token or times (not even the
    -- grant's time through checked_at: a grant made after v_read answers with v_now).
    return row('held', p_resource, null, null, null, null, null,
               case when f.acquired_at <= v_read then v_read else v_now end, null)::cairn.claim_result;
  end if;
  -- 3. Everything else on the locked row: a first claim (insert), a renewal by the holder, a
  --    claim freed since step 1, or a held answer while someone is changing the row.
  loop
    select * into v_c from cairn.claims x where x.resource = p_resource for update;
    exit when found;
    with inserted as (
      insert into cairn.claims (resource, holder, token, acquired_at, expires_at, scope)
      values (p_resource, p_holder, 1, clock_timestamp(), clock_timestamp() + p_ttl_ms * interval '1 millisecond',
              cairn.acting_scope())
      on conflict (resource) do nothing
      returning *
    ), logged as (
      insert into cairn.claim_events (resource, event, token, holder, at, expires_at, scope)
      select i.resource, 'granted', 1, i.holder, i.acquired_at, i.expires_at, i.scope from inserted i
    )
    select 'granted', i.resource, i.holder, i.token, i.acquired_at, i.expires_at, null::timestamptz, i.acquired_at, null::text
      into r from inserted i;
    if found then
      return r;
    end if;
    -- Another claimer inserted it first: lock its row and decide on that.
  end loop;
  v_now := clock_timestamp();
  if v_c.holder = p_holder and v_c.released_at is null and v_c.expires_at > v_now then
    -- A renewal by name answers with the grant (its token and expiry): only to a caller who may
    -- read the claim's scope, since a holder's name is no proof (anyone can say it; renew_claim
    -- and release_claim need the token). Others get the masked "held", and nothing is renewed.
    if cairn.claim_visible(v_c.scope) then
      return cairn.extend_claim(v_c, p_ttl_ms, v_now);
    end if;
    return row('held', v_c.resource, null, null, null, null, null, v_now, null)::cairn.claim_result;
  end if;
  if v_c.token = 0 or v_c.released_at is not null or v_c.expires_at <= v_now then
    -- Free on the locked row: granted as in step 1 (the row is ours, the WHERE holds).
    with granted as (
      update cairn.claims x
      set holder = p_holder, token = x.token + 1, acquired_at = clock_timestamp(), renewed_at = null,
          expires_at = clock_timestamp() + p_ttl_ms * interval '1 millisecond', released_at = null,
          previous_holder = case when x.token > 0 and x.released_at is null then x.holder end,
          scope = cairn.acting_scope()
      where x.resource = p_resource
      returning x.*
    ), logged as (
      insert into cairn.claim_events (resource, event, token, holder, at, expires_at, previous_holder, scope)
      select g.resource, case when g.previous_holder is null then 'granted' else 'expired-takeover' end,
             g.token, g.holder, g.acquired_at, g.expires_at, g.previous_holder, g.scope
      from granted g
    )
    select case when g.previous_holder is null then 'granted' else 'expired-takeover' end, g.resource, g.holder,
           g.token, g.acquired_at, g.expires_at, null::timestamptz, g.acquired_at, g.previous_holder
      into r from granted g;
    return r;
  end if;
  if cairn.claim_visible(v_c.scope) then
    return row('held', v_c.resource, v_c.holder, v_c.token, v_c.acquired_at, v_c.expires_at, null, v_now, null)::cairn.claim_result;
  end if;
  return row('held', v_c.resource, null, null, null, null, null, v_now, null)::cairn.claim_result;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- NEXT FREE: as in 009; the grant sets the claim's scope in its statement; over registered work
-- items, only items of scopes the caller may read.
create or replace function cairn.claim_next(p_resources text[], p_kind text, p_holder text, p_ttl_ms int)
returns cairn.claim_result
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  r         cairn.claim_result;
  v_res     text;
  v_skip    text[] := '{}';
  v_created int := 0;
  v_n       int;
  v_scopes  text[];
  v_all     boolean;
begin
  if p_holder is null or length(p_holder) not between 1 and 512 or p_ttl_ms is null or p_ttl_ms not between 1 and 604800000 then
    raise exception 'claim_next: holder must be 1 to 512 characters, ttl 1 ms to 7 days' using errcode = 'CNF02';
  end if;
  if p_resources is not null then
    if cardinality(p_resources) > 10000 or array_position(p_resources, null) is not null then
      raise exception 'claim_next takes 0 to 10000 non-null candidates' using errcode = 'CNF02';
    end if;
    -- The first 16 candidates first: the pick looks up every candidate it is given before it
    -- takes the first free one in order, and under contention the first free one is near the
    -- front (callers release in turn); only if none of those is free, all of them.
    v_n := least(cardinality(p_resources), 16);
    loop
      -- Pick (locked, skipping rows others hold locked), grant, scope and log: one statement.
      with pick as (
        select c.resource
        from unnest(p_resources[1:v_n]) with ordinality u(res, ord)
        join cairn.claims c on c.resource = u.res
        where c.token = 0 or c.released_at is not null or c.expires_at <= clock_timestamp()
        order by u.ord
        limit 1
        for update of c skip locked
      ), granted as (
        update cairn.claims c
        set holder = p_holder, token = c.token + 1, acquired_at = clock_timestamp(), renewed_at = null,
            expires_at = clock_timestamp() + p_ttl_ms * interval '1 millisecond', released_at = null,
            previous_holder = case when c.token > 0 and c.released_at is null then c.holder end,
            scope = cairn.acting_scope()
        from pick
        where c.resource = pick.resource
        returning c.*
      ), logged as (
        insert into cairn.claim_events (resource, event, token, holder, at, expires_at, previous_holder, scope)
        select g.resource, case when g.previous_holder is null then 'granted' else 'expired-takeover' end,
               g.token, g.holder, g.acquired_at, g.expires_at, g.previous_holder, g.scope
        from granted g
      )
      select case when g.previous_holder is null then 'granted' else 'expired-takeover' end, g.resource, g.holder,
             g.token, g.acquired_at, g.expires_at, null::timestamptz, g.acquired_at, g.previous_holder
        into r from granted g;
      if found then
        return r;
      end if;
      if v_n < cardinality(p_resources) then
        v_n := cardinality(p_resources);
        continue;
      end if;
      -- Candidates never claimed have no row yet: create them free (once), then look again.
      exit when v_created > 0;
      v_created := cairn.create_free_claims(p_resources);
      exit when v_created = 0;
    end loop;
    return row('none', null, null, null, null, null, null, clock_timestamp(), null)::cairn.claim_result;
  end if;

  -- Work items of the scopes the caller may read (the RLS rule of 013, as in claim_visible).
  v_scopes := cairn.bookkeeping_scopes();
  v_all := '*' = any (v_scopes);
  if not v_all and pg_catalog.current_setting('role') <> 'cairn_app' then
    v_all := not cairn.acting_as_application();
  end if;
  loop
    select c.resource into v_res
    from cairn.work_items w
    join cairn.claims c on c.resource = w.resource
    where w.kind = p_kind and w.done_at is null
      and (v_all or w.scope = any (v_scopes))
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
  -- Free on the locked row: granted, scoped and logged.
  with granted as (
    update cairn.claims c
    set holder = p_holder, token = c.token + 1, acquired_at = clock_timestamp(), renewed_at = null,
        expires_at = clock_timestamp() + p_ttl_ms * interval '1 millisecond', released_at = null,
        previous_holder = case when c.token > 0 and c.released_at is null then c.holder end,
        scope = cairn.acting_scope()
    where c.resource = v_res
    returning c.*
  ), logged as (
    insert into cairn.claim_events (resource, event, token, holder, at, expires_at, previous_holder, scope)
    select g.resource, case when g.previous_holder is null then 'granted' else 'expired-takeover' end,
           g.token, g.holder, g.acquired_at, g.expires_at, g.previous_holder, g.scope
    from granted g
  )
  select case when g.previous_holder is null then 'granted' else 'expired-takeover' end, g.resource, g.holder,
         g.token, g.acquired_at, g.expires_at, null::timestamptz, g.acquired_at, g.previous_holder
    into r from granted g;
  return r;
end
$$;

-- take_claim's callers now grant in their own statement.
drop function cairn.take_claim(text, text, int);

-- ---------------------------------------------------------------------------------------------
-- RENEW: as in 004; a refusal shows the claim's current state only to a caller who may read its
-- scope, or who named its current holder and token (its own grant, lapsed or released).
create or replace function cairn.renew_claim(p_resource text, p_holder text, p_token bigint, p_ttl_ms int)
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
    if (r.holder = p_holder and r.token = p_token) or cairn.claim_visible(r.scope) then
      return row('refused', r.resource, r.holder, r.token, r.acquired_at, r.expires_at, r.released_at, v_now, null)::cairn.claim_result;
    end if;
    return row('refused', r.resource, null, null, null, null, null, v_now, null)::cairn.claim_result;
  end if;
  return cairn.extend_claim(r, p_ttl_ms, v_now);
end
$$;

-- RELEASE: as in 009; the event's scope is computed in its statement; a refusal shows the
-- claim's current state only as renew_claim does.
create or replace function cairn.release_claim(p_resource text, p_holder text, p_token bigint)
returns cairn.claim_result
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  r   cairn.claim_result;
  v_c cairn.claims;
begin
  if p_token is null then
    raise exception 'release_claim: the holder''s fencing token is required' using errcode = 'CNF02';
  end if;
  with released as (
    update cairn.claims c set released_at = clock_timestamp()
    where c.resource = p_resource and c.holder = p_holder and c.token = p_token and c.released_at is null
    returning c.*
  ), logged as (
    insert into cairn.claim_events (resource, event, token, holder, at, expires_at, scope)
    select g.resource, 'released', g.token, g.holder, g.released_at, least(g.expires_at, g.released_at), cairn.acting_scope()
    from released g
  )
  select 'released', g.resource, g.holder, g.token, g.acquired_at, least(g.expires_at, g.released_at),
         g.released_at, g.released_at, null::text
    into r from released g;
  if found then
    return r;
  end if;
  select * into v_c from cairn.claims x where x.resource = p_resource;
  if not found then
    return row('none', p_resource, null, null, null, null, null, clock_timestamp(), null)::cairn.claim_result;
  end if;
  if (v_c.holder = p_holder and v_c.token = p_token) or cairn.claim_visible(v_c.scope) then
    return row('refused', p_resource, v_c.holder, v_c.token, v_c.acquired_at, v_c.expires_at, v_c.released_at, clock_timestamp(), null)::cairn.claim_result;
  end if;
  return row('refused', p_resource, null, null, null, null, null, clock_timestamp(), null)::cairn.claim_result;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- FENCE: as in 009; the refusal's message never names the current holder, and its detail
-- carries the current token, holder and times only for a caller who may read the claim's scope
-- (otherwise "hidden": true). The reason is the caller's token against the current one; for a
-- hidden claim a token other than the current one is "superseded" whether it is below or above
-- it (which would tell the current token), and a token never granted at all stays
-- "never-granted" (no row, or no grant yet: nothing to hide).
create or replace function cairn.check_fence(p_resource text, p_token bigint)
returns timestamptz
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  r        cairn.claims;
  v_now    timestamptz;
  v_reason text;
  v_shown  boolean;
begin
  select * into r from cairn.claims c where c.resource = p_resource for share;
  v_now := clock_timestamp();
  v_reason := case
    when r.token is null or r.token = 0 or p_token > r.token then 'never-granted'
    when p_token < r.token then 'superseded'
    when r.released_at is not null then 'released'
    when r.expires_at <= v_now then 'expired'
  end;
  if v_reason is not null then
    v_shown := r.token is null or r.token = 0 or cairn.claim_visible(r.scope);
    if v_shown then
      raise exception 'fencing token % of % is stale (%)', p_token, p_resource, v_reason
        using errcode = 'CNF01',
              detail = json_build_object('resource', p_resource, 'token', p_token, 'reason', v_reason,
                                         'currentToken', r.token, 'holder', r.holder,
                                         'expiresAt', r.expires_at, 'releasedAt', r.released_at,
                                         'checkedAt', v_now)::text;
    end if;
    if p_token <> r.token then
      v_reason := 'superseded';
    end if;
    raise exception 'fencing token % of % is stale (%)', p_token, p_resource, v_reason
      using errcode = 'CNF01',
            detail = json_build_object('resource', p_resource, 'token', p_token, 'reason', v_reason,
                                       'currentToken', null, 'holder', null, 'expiresAt', null,
                                       'releasedAt', null, 'checkedAt', v_now, 'hidden', true)::text;
  end if;
  return v_now;
end
$$;
