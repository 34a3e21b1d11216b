-- Task protocol integrity (issue #10).
--
-- 1. Context messages are keyed by task: ids are chosen by senders (also `cairn task send --id`),
--    so the same id in two tasks is two messages. Existing rows keep their data; only the key
--    widens from (id) to (task_key, id), in the working table and the archive.
-- 2. Messages are persisted when they arrive at a running task (admission); `admitted_by` names
--    the admission batch that inserted a row, so a retried admission recognises its own inserts.
-- 3. One task key, one task: cairn.task_keys binds a key to the workflow (id + first run id) that
--    runs it, before any step runs; the recorded result lets a re-run of a finished key return it.

alter table cairn.context_messages drop constraint context_messages_pkey;
alter table cairn.context_messages add constraint context_messages_pkey primary key (task_key, id);
alter table cairn.context_messages add column admitted_by text;

alter table cairn.context_messages_archive drop constraint context_messages_archive_pkey;
alter table cairn.context_messages_archive add constraint context_messages_archive_pkey primary key (task_key, id);

-- 005's archiver, with the archive's conflict target on the new key.
create or replace function cairn.archive_context_messages(p_before timestamptz) returns int
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_moved int;
begin
  perform set_config('cairn.archiving_messages', 'on', true);
  with moved as (
    delete from cairn.context_messages m
    where m.acked_at is not null and m.acked_at < p_before
    returning m.id, m.task_key, m.from_task, m.from_role, m.to_role, m.type, m.content, m.sent_by_workflow_id,
              m.sent_by_activity_id, m.created_at, m.acked_at, m.acked_by_workflow_id, m.acked_by_activity_id
  ),
  archived as (
    insert into cairn.context_messages_archive (id, task_key, from_task, from_role, to_role, type, content,
      sent_by_workflow_id, sent_by_activity_id, created_at, acked_at, acked_by_workflow_id, acked_by_activity_id)
    select * from moved
    on conflict (task_key, id) do nothing
  )
  select count(*)::int into v_moved from moved;
  perform set_config('cairn.archiving_messages', 'off', true);
  return v_moved;
end
$$;

create table cairn.task_keys (
  task_key      text        primary key,
  workflow_id   text        not null,
  -- Continue-as-new keeps the first run id: one task across its runs; a new start does not.
  first_run_id  text        not null,
  bound_at      timestamptz not null default clock_timestamp(),
  outcome       text        check (outcome in ('completed', 'failed', 'cancelled')),
  result        jsonb,
  ended_at      timestamptz,
  constraint task_keys_end_shape check ((outcome is null) = (ended_at is null))
);

-- A binding never moves to another workflow, and its outcome is set once.
create function cairn.task_keys_guard() returns trigger language plpgsql as $$
begin
  if tg_op = 'DELETE' then
    raise exception 'cairn.task_keys rows are never deleted';
  end if;
  if (new.task_key, new.workflow_id, new.first_run_id) is distinct from (old.task_key, old.workflow_id, old.first_run_id)
     or old.outcome is not null then
    raise exception 'cairn.task_keys: a key stays bound to its workflow and ends once (key %)', old.task_key;
  end if;
  return new;
end $$;
create trigger task_keys_guard before update or delete on cairn.task_keys
  for each row execute function cairn.task_keys_guard();

grant select, insert, update on cairn.task_keys to cairn_app;
