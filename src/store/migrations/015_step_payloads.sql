-- cairn: non-breaking
-- Step payloads by reference (claim-check, issue 14 item 2; issue 10's size limits).
--
-- A step output, or the input of a step an agent proposes, above the worker's threshold (16 KiB
-- by default) is stored here, in the step's commit transaction, and travels through Temporal's
-- history as a small reference ({"$cairnRef": "step-payload", id, bytes, sha256}). Temporal's
-- payload limit (2 MB) and history limits (50 MB) no longer depend on what agents return. The
-- step's next attempt, the steps that depend on it and CairnClient.result() resolve the
-- reference; written only by the committing transaction, so a step's payloads exist exactly
-- when its completion (migration 007) does.
--
--   * Append-only like the evidence tables (triggers refuse UPDATE, DELETE, TRUNCATE).
--   * Scoped 'task:<task key>' like the step's completion; the application sees them as it sees
--     the task's other bookkeeping (migration 013). Written and resolved through the SECURITY DEFINER functions below:
--     resolution is keyed by the task key and the reference's random id, which only holders of
--     the reference know (a role may be granted no read of its own task's scope, yet the
--     workflow hands it its upstream outputs).
--   * Additive (a new table and functions): older workers never call them, hence non-breaking.

create table cairn.step_payloads (
  id          uuid        not null default gen_random_uuid(),
  task_key    text        not null,
  workflow_id text        not null,
  activity_id text        not null,
  -- Which part of the step's result: 'output', 'proposedSteps[2].input'.
  part        text        not null,
  scope       text        not null,
  bytes       int         not null check (bytes >= 0),
  sha256      text        not null check (sha256 ~ '^[0-9a-f]{64}$'),
  content     jsonb       not null,
  created_at  timestamptz not null default clock_timestamp(),
  constraint step_payloads_pkey primary key (id),
  -- One payload per part of a step: a second commit of the same step fails rather than duplicates.
  constraint step_payloads_part_key unique (workflow_id, activity_id, part)
);
create index step_payloads_task_key_idx on cairn.step_payloads (task_key);

create trigger step_payloads_append_only before update or delete on cairn.step_payloads
  for each row execute function cairn.refuse_evidence_change();
create trigger step_payloads_no_truncate before truncate on cairn.step_payloads
  for each statement execute function cairn.refuse_evidence_change();

alter table cairn.step_payloads enable row level security;
-- Seen like the rest of a task's bookkeeping (migration 013's cairn.bookkeeping_scopes).
create policy step_payloads_read_in_scope on cairn.step_payloads
  for select to cairn_app
  using ((select '*' = any (cairn.bookkeeping_scopes()))
         or scope = any ((select cairn.bookkeeping_scopes())::text[]));

-- Stores one payload of a step; returns its id. Call in the step's commit transaction.
create function cairn.record_step_payload(
  p_task_key text, p_workflow_id text, p_activity_id text, p_part text, p_bytes int, p_sha256 text, p_content jsonb
) returns uuid
language sql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
  insert into cairn.step_payloads (task_key, workflow_id, activity_id, part, scope, bytes, sha256, content)
  values (p_task_key, p_workflow_id, p_activity_id, p_part, 'task:' || p_task_key, p_bytes, p_sha256, p_content)
  returning id
$$;

-- The payloads of a task with these ids (missing ones are absent from the result).
create function cairn.step_payloads_of(p_task_key text, p_ids uuid[])
returns table (id uuid, bytes int, sha256 text, content jsonb)
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select p.id, p.bytes, p.sha256, p.content
    from cairn.step_payloads p
   where p.task_key = p_task_key and p.id = any (p_ids)
$$;

grant select on cairn.step_payloads to cairn_app;
revoke execute on function cairn.record_step_payload(text, text, text, text, int, text, jsonb) from public;
grant execute on function cairn.record_step_payload(text, text, text, text, int, text, jsonb) to cairn_app;
revoke execute on function cairn.step_payloads_of(text, uuid[]) from public;
grant execute on function cairn.step_payloads_of(text, uuid[]) to cairn_app;
