-- 007: a step commits exactly once (issue 13, item 1).
--
-- An agent step's transaction records its completion here: the StepResult it hands back to the
-- workflow, the observations it appended and the read set it decided on. Temporal delivers an
-- activity at least once: a worker killed after COMMIT and before Temporal heard of it, or a
-- completion lost while the Temporal frontend was down, makes Temporal run the step again. The
-- new attempt finds the step's completion and returns the recorded result without running the
-- agent (which, being non-deterministic, would produce different content) and without writing.
--
--   * One row per step (workflow id + activity id), whichever attempt committed it.
--   * Append-only like the evidence tables of migration 003 (triggers refuse UPDATE, DELETE,
--     TRUNCATE even for the owner).
--   * The application writes and looks up only through the two SECURITY DEFINER functions
--     below; it may SELECT rows of the scopes it is granted (the task's scope, like the
--     observations the step wrote), as engineers' tools do with '{*}'.

create table cairn.step_completions (
  workflow_id     text        not null,
  activity_id     text        not null,
  run_id          text        not null,
  -- The attempt whose transaction committed the step.
  attempt         int         not null check (attempt >= 0),
  task_key        text        not null,
  role            text        not null,
  -- 'task:<task key>': completions belong to their task, like the step's default scope.
  scope           text        not null,
  -- The StepResult (output, observation references, messages, proposed steps, memory writes,
  -- acknowledgements), exactly as returned to the workflow by the committing attempt.
  result          jsonb       not null check (jsonb_typeof(result) = 'object'),
  observation_ids uuid[]      not null,
  read_set_id     uuid,
  committed_at    timestamptz not null default clock_timestamp(),
  constraint step_completions_pkey primary key (workflow_id, activity_id)
);
create index step_completions_task_key_idx on cairn.step_completions (task_key, committed_at);

create trigger step_completions_append_only before update or delete on cairn.step_completions
  for each row execute function cairn.refuse_evidence_change();
create trigger step_completions_no_truncate before truncate on cairn.step_completions
  for each statement execute function cairn.refuse_evidence_change();

-- Reads by the application: rows of granted scopes only (same expression as migration 006).
alter table cairn.step_completions enable row level security;
create policy step_completions_read_in_scope on cairn.step_completions
  for select to cairn_app
  using ((select coalesce('*' = any (nullif(pg_catalog.current_setting('cairn.read_scopes', true), '')::text[]), false))
         or scope = any ((select nullif(pg_catalog.current_setting('cairn.read_scopes', true), '')::text[])::text[]));

-- The completion of one step, or no row. Called first in the step's commit transaction: the
-- transaction-scoped advisory lock serialises concurrent attempts of the same step (a zombie
-- attempt whose heartbeat timed out and its retry), so exactly one of them writes; the other
-- waits for it, then finds its completion. Outside a transaction (the lookup before the agent
-- runs) the lock is released at the statement's end. Keyed by the exact workflow and activity
-- id, which only the step's own attempts know, so it is not bounded by the step's read grant
-- (a role may be granted no read of its own task's scope).
create function cairn.step_completion(p_workflow_id text, p_activity_id text)
returns table (result jsonb, attempt int, committed_at timestamptz)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform pg_advisory_xact_lock(hashtextextended('cairn.step:' || p_workflow_id || ':' || p_activity_id, 0));
  return query
    select c.result, c.attempt, c.committed_at
      from cairn.step_completions c
     where c.workflow_id = p_workflow_id and c.activity_id = p_activity_id;
end
$$;

-- Records a step's completion, in the step's transaction, after its append. A second record of
-- the same step violates the primary key (it cannot happen after cairn.step_completion's lock
-- and check; if it does, the transaction must fail rather than commit twice).
create function cairn.record_step_completion(
  p_workflow_id text, p_activity_id text, p_run_id text, p_attempt int,
  p_task_key text, p_role text, p_result jsonb, p_observation_ids uuid[], p_read_set_id uuid
) returns void
language sql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
  insert into cairn.step_completions
    (workflow_id, activity_id, run_id, attempt, task_key, role, scope, result, observation_ids, read_set_id)
  values
    (p_workflow_id, p_activity_id, p_run_id, p_attempt, p_task_key, p_role, 'task:' || p_task_key, p_result,
     p_observation_ids, p_read_set_id)
$$;

grant select on cairn.step_completions to cairn_app;
revoke execute on function cairn.step_completion(text, text) from public;
grant execute on function cairn.step_completion(text, text) to cairn_app;
revoke execute on function cairn.record_step_completion(text, text, text, int, text, text, jsonb, uuid[], uuid) from public;
grant execute on function cairn.record_step_completion(text, text, text, int, text, text, jsonb, uuid[], uuid) to cairn_app;
