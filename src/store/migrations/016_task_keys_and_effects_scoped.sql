-- 016: a task key's binding and its ctx.once results are the task's, like its episode (013).
-- cairn.task_keys keeps the task's result (step outputs included) for re-runs of the key to return, so under 013 alone any
-- cairn_app session could read every task's outputs there, whatever its grant.
--
-- Visible to, and written by, a transaction whose grant names `task:<key>` or that acts for the
-- task (cairn.task_key: the task workflow's bind and episode activities run under
-- withTaskBookkeeping), and to all-scopes sessions ('{*}': the CLI's task sweep).
--
-- Breaking: a worker older than this binds keys outside any task scope, which the policy refuses.

alter table cairn.task_keys enable row level security;
create policy task_keys_in_task_scope on cairn.task_keys
  for all to cairn_app
  using ((select '*' = any (cairn.bookkeeping_scopes()))
         or 'task:' || task_key = any ((select cairn.bookkeeping_scopes())::text[]))
  with check ((select '*' = any (cairn.bookkeeping_scopes()))
              or 'task:' || task_key = any ((select cairn.bookkeeping_scopes())::text[]));

-- ctx.once results (cairn.effects): a task's effect (key `task:<key>/…`, task_key set) is the
-- task's, like its binding; a global one (`ctx.once(key, fn, { global: true })`, task_key null)
-- is shared by design. An agent step's once acts for its task (src/store/scope.ts actingFor).
alter table cairn.effects enable row level security;
create policy effects_global_or_in_task_scope on cairn.effects
  for all to cairn_app
  using (task_key is null
         or (select '*' = any (cairn.bookkeeping_scopes()))
         or 'task:' || task_key = any ((select cairn.bookkeeping_scopes())::text[]))
  with check (task_key is null
              or (select '*' = any (cairn.bookkeeping_scopes()))
              or 'task:' || task_key = any ((select cairn.bookkeeping_scopes())::text[]));
