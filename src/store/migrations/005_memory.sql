-- 005: memory — searchable episodes and their retention, archived context, idempotent
-- external effects. See docs/memory.md.
--
-- Nothing here rewrites history: old episodes are condensed into a *new* summary episode (and
-- a summary observation in the log) and stay where they are, linked to it; acknowledged
-- context moves, whole, to an archive table; completed effects are immutable.

-- EPISODES --------------------------------------------------------------------------------
-- A summary episode condenses task episodes; outcome 'mixed' when theirs differ.
alter table cairn.episodes
  add column kind text not null default 'task' constraint episodes_kind check (kind in ('task', 'summary')),
  add column summary jsonb;
alter table cairn.episodes drop constraint episodes_outcome_check;
alter table cairn.episodes
  add constraint episodes_outcome check (outcome in ('completed', 'failed', 'cancelled') or (kind = 'summary' and outcome = 'mixed')),
  add constraint episodes_summary_shape check ((kind = 'summary') = (summary is not null));

-- "What happened last time": goal text (full text, English stemming; ILIKE for fragments),
-- tags, and the newest first.
create index episodes_goal_fts on cairn.episodes using gin (to_tsvector('english', goal));
create index episodes_tags_idx on cairn.episodes using gin (tags);
create index episodes_kind_ended_at on cairn.episodes (kind, ended_at);

-- Which summary an episode was condensed into (once). A table rather than an UPDATE of the
-- episode: episodes stay insert-only for the application.
create table cairn.episode_summary_members (
  episode_id uuid        primary key references cairn.episodes (id),
  summary_id uuid        not null references cairn.episodes (id),
  added_at   timestamptz not null default clock_timestamp(),
  constraint episode_summary_members_not_self check (episode_id <> summary_id)
);
create index episode_summary_members_summary_idx on cairn.episode_summary_members (summary_id);

-- Tags added to a task's episode (before or after it is recorded), by task key.
create table cairn.episode_tags (
  task_key text        not null,
  tag      text        not null check (tag ~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$'),
  added_at timestamptz not null default clock_timestamp(),
  primary key (task_key, tag)
);

create function cairn.refuse_memory_change() returns trigger
language plpgsql as $$
begin
  raise exception 'cairn.% is append-only', tg_table_name
    using errcode = 'CN003', detail = format('refused %s on cairn.%s', tg_op, tg_table_name);
end
$$;

create trigger episode_summary_members_append_only before update or delete on cairn.episode_summary_members
  for each row execute function cairn.refuse_memory_change();
create trigger episode_summary_members_no_truncate before truncate on cairn.episode_summary_members
  for each statement execute function cairn.refuse_memory_change();
create trigger episode_tags_append_only before update or delete on cairn.episode_tags
  for each row execute function cairn.refuse_memory_change();
create trigger episode_tags_no_truncate before truncate on cairn.episode_tags
  for each statement execute function cairn.refuse_memory_change();

-- CONTEXT MESSAGES ------------------------------------------------------------------------
-- Acknowledged messages past retention leave the working table for this archive, unchanged
-- (they are evidence of what a step read). Only cairn.archive_context_messages moves them.
create table cairn.context_messages_archive (
  id                   text        primary key,
  task_key             text        not null,
  from_task            text,
  from_role            text        not null,
  to_role              text        not null,
  type                 text        not null,
  content              jsonb       not null,
  sent_by_workflow_id  text,
  sent_by_activity_id  text,
  created_at           timestamptz not null,
  acked_at             timestamptz not null,
  acked_by_workflow_id text,
  acked_by_activity_id text,
  archived_at          timestamptz not null default clock_timestamp()
);
create index context_messages_archive_task on cairn.context_messages_archive (task_key, created_at);

create trigger context_messages_archive_append_only before update or delete on cairn.context_messages_archive
  for each row execute function cairn.refuse_memory_change();
create trigger context_messages_archive_no_truncate before truncate on cairn.context_messages_archive
  for each statement execute function cairn.refuse_memory_change();

-- 002's guard, plus one way out: an acknowledged message may be deleted while
-- cairn.archiving_messages is 'on' in the transaction, which only the function below sets (the
-- application role has no DELETE privilege on the table, so it cannot delete directly anyway).
create or replace function cairn.context_messages_guard() returns trigger language plpgsql as $$
begin
  if tg_op = 'DELETE' then
    if old.acked_at is not null and current_setting('cairn.archiving_messages', true) = 'on' then
      return old;
    end if;
    raise exception 'cairn.context_messages rows are never deleted';
  end if;
  if old.acked_at is not null
     or (new.id, new.task_key, new.from_role, new.to_role, new.type, new.content)
        is distinct from (old.id, old.task_key, old.from_role, old.to_role, old.type, old.content) then
    raise exception 'cairn.context_messages: a message can only be acknowledged, once';
  end if;
  return new;
end $$;

-- Moves acknowledged messages acknowledged before p_before into the archive, in one statement;
-- returns how many moved. Idempotent: a second call finds nothing left to move.
create function cairn.archive_context_messages(p_before timestamptz) returns int
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
  -- An id already archived (the same message delivered again after its first copy was
  -- archived) keeps its first archived copy.
  archived as (
    insert into cairn.context_messages_archive (id, task_key, from_task, from_role, to_role, type, content,
      sent_by_workflow_id, sent_by_activity_id, created_at, acked_at, acked_by_workflow_id, acked_by_activity_id)
    select * from moved
    on conflict (id) do nothing
  )
  select count(*)::int into v_moved from moved;
  perform set_config('cairn.archiving_messages', 'off', true);
  return v_moved;
end
$$;

-- EFFECTS ---------------------------------------------------------------------------------
-- ctx.once(key, fn): the first completed result of an outside call, per key. A row is pending
-- (claimed by one attempt, `holder`, until `lease_until`) or completed (result stored, frozen).
-- A failed call deletes its pending row; a crashed one's lease lapses and the next caller
-- takes it over.
create table cairn.effects (
  key          text        primary key check (length(key) between 1 and 700),
  task_key     text,
  workflow_id  text        not null,
  activity_id  text        not null,
  attempt      int         not null check (attempt >= 0),
  holder       text        not null,
  lease_until  timestamptz not null,
  started_at   timestamptz not null default clock_timestamp(),
  result       jsonb,
  completed_at timestamptz,
  constraint effects_completed_shape check ((result is null) = (completed_at is null))
);

create function cairn.effects_guard() returns trigger language plpgsql as $$
begin
  if tg_op = 'DELETE' then
    if old.completed_at is not null then
      raise exception 'cairn.effects: a completed effect is never deleted (key %)', old.key using errcode = 'CN003';
    end if;
    return old;
  end if;
  if old.completed_at is not null then
    raise exception 'cairn.effects: a completed effect never changes (key %)', old.key using errcode = 'CN003';
  end if;
  if new.key <> old.key then
    raise exception 'cairn.effects: the key of an effect never changes' using errcode = 'CN003';
  end if;
  return new;
end $$;
create trigger effects_guard before update or delete on cairn.effects
  for each row execute function cairn.effects_guard();
create trigger effects_no_truncate before truncate on cairn.effects
  for each statement execute function cairn.refuse_memory_change();

-- PRIVILEGES ------------------------------------------------------------------------------
grant select, insert on cairn.episode_summary_members, cairn.episode_tags to cairn_app;
grant select on cairn.context_messages_archive to cairn_app;
grant select, insert, update, delete on cairn.effects to cairn_app;
revoke execute on function cairn.archive_context_messages(timestamptz) from public;
grant execute on function cairn.archive_context_messages(timestamptz) to cairn_app;
