-- cairn: non-breaking
-- Wakes read-after-write waiters (minVersion) when an entity's head moves, instead of polling.
-- The payload is md5(entity_type || E'\x1f' || entity_id): fixed length (NOTIFY payloads are
-- capped at 8000 bytes) and it names no entity to a listener of another scope. Delivered at
-- commit, exactly when the new head becomes visible; identical payloads within one transaction
-- are folded by Postgres. Adds a trigger and changes no result older code relies on, hence
-- non-breaking.
create function cairn.notify_head_moved() returns trigger
language plpgsql as $$
begin
  perform pg_notify('cairn_heads', md5(new.entity_type || E'\x1f' || new.entity_id));
  return null;
end;
$$;

create trigger entity_heads_notify
  after insert or update of version on cairn.entity_heads
  for each row execute function cairn.notify_head_moved();
