-- 021: the claims tables' single-column checks as domains (issue #14, claims round 2).
--
-- Postgres evaluates a table's CHECK constraints by parsing each one from its stored text,
-- planning and compiling it, once per statement that writes the table (ExecRelCheck: the
-- parsed form is kept only for that statement). The claim functions write `claims` and
-- `claim_events` in every call, one statement each, so the six constraints (four on claims, two
-- on claim_events) were parsed, planned and compiled on every claim, release, renewal and
-- nextFree: 6% of a backend's CPU in claim + release (perf, round 3).
--
-- A domain's checks are parsed once per backend (the type cache) and, unlike a table CHECK, run
-- only on the values a statement assigns: an UPDATE that sets holder and token checks those two,
-- not the untouched resource. The guarantees are the same, for every writer (the application
-- role writes these tables only through the SECURITY DEFINER functions — it has SELECT only —
-- and the owner's direct writes are checked as before): the same expressions, on the same
-- columns, with the same treatment of null (a null holder passes, as it did). Readers see no
-- change: a domain's values come back as the base type (text, bigint).
--
-- The one multi-column check, claims_granted_shape (token 0 exactly when holder and acquired_at
-- are null), cannot be a domain; alone it was still 4–6% of the backend's CPU (its stored text is
-- long). It moves into the claims_guard trigger, which runs on every UPDATE anyway, and into a
-- BEFORE INSERT trigger (inserts are a resource's first claim and the free rows of claim_next
-- and register_work_items): the same condition, for every writer, with the CHECK's error code
-- (23514).
--
-- Applying it rewrites claims and claim_events once (a column's type becoming a domain with
-- checks: Postgres re-checks every row in a rewrite), under an ACCESS EXCLUSIVE lock: claims
-- wait for it; for a large claim history, apply it in a quiet moment.

create domain cairn.claim_name as text check (length(value) between 1 and 512);
comment on domain cairn.claim_name is 'A claim''s resource or holder: 1 to 512 characters.';
create domain cairn.claim_token as bigint check (value >= 0);
comment on domain cairn.claim_token is 'A claim''s fencing token: 0 before the first grant, then one more per grant.';
create domain cairn.claim_event_token as bigint check (value >= 1);
comment on domain cairn.claim_event_token is 'The fencing token of a claim event: a grant''s, so at least 1.';
create domain cairn.claim_event_kind as text check (value in ('granted', 'renewed', 'released', 'expired-takeover'));
comment on domain cairn.claim_event_kind is 'What a claim event records.';

alter table cairn.claims
  drop constraint claims_resource_check,
  drop constraint claims_holder_check,
  drop constraint claims_token_check,
  alter column resource type cairn.claim_name,
  alter column holder type cairn.claim_name,
  alter column token type cairn.claim_token;

alter table cairn.claim_events
  drop constraint claim_events_event_check,
  drop constraint claim_events_token_check,
  alter column event type cairn.claim_event_kind,
  alter column token type cairn.claim_event_token;

-- The guard of 017, with the granted shape checked on the new row.
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
  if (new.token = 0) <> (new.holder is null) or (new.token = 0) <> (new.acquired_at is null) then
    raise exception 'cairn.claims: a claim has a holder and a grant time exactly when its token is above 0'
      using errcode = '23514', table = 'claims', schema = 'cairn', constraint = 'claims_granted_shape';
  end if;
  return new;
end
$$;

create function cairn.claims_shape() returns trigger
language plpgsql as $$
begin
  if new.token is null or (new.token = 0) <> (new.holder is null) or (new.token = 0) <> (new.acquired_at is null) then
    raise exception 'cairn.claims: a claim has a holder and a grant time exactly when its token is above 0'
      using errcode = '23514', table = 'claims', schema = 'cairn', constraint = 'claims_granted_shape';
  end if;
  return new;
end
$$;

create trigger claims_shape_on_insert before insert on cairn.claims
  for each row execute function cairn.claims_shape();

alter table cairn.claims drop constraint claims_granted_shape;
