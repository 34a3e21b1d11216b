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
-- Non-breaking: an older worker's waiters do not register, so its minVersion waits are answered
-- by their fallback poll (at most 1 s apart while listening) instead of a notification; no
-- result changes.

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
