-- cairn: non-breaking
-- The read policies of the log, the heads and the snapshots (migration 006) in a cheaper form with
-- exactly the same visibility: a row is visible when its scope, or '*', is in cairn.read_scopes.
--
-- 006 wrote each as `(select coalesce('*' = any (grant), false)) or scope = any ((select grant))`:
-- two InitPlans, each reading and parsing the setting, per table per statement, so an entity read
-- (cairn.read_current: heads, snapshots and the log in one statement, the log again for a tail)
-- parsed the grant six to ten times. `array['*', scope] && (select grant)` is one InitPlan: the
-- same test, since && is true exactly when the two arrays share a non-null element:
--   * '*' in the grant: true for every row, as before (a NULL scope included, as before);
--   * otherwise: true exactly when the row's scope is in the grant; a NULL scope or a NULL element
--     of the grant matches nothing (before: NULL, which a policy treats as false);
--   * no setting, or an empty one: the grant is NULL, && is NULL, no rows, as before.
-- Text equality under the database's (deterministic) collation either way. Measured in
-- bench/README.md ("Scoped read, round 3"); the equivalence over random grants and rows, task-
-- scoped ones included, is test/integration/readPolicies.test.ts.
-- Same visibility for every grant, so nothing older code relies on changes: non-breaking.
alter policy observations_read_in_scope on cairn.observations
  using (array['*', case when scope = 'task' then 'task:' || task_key else scope end]
         && (select nullif(pg_catalog.current_setting('cairn.read_scopes', true), '')::text[]));

alter policy entity_heads_read_in_scope on cairn.entity_heads
  using (array['*', scope] && (select nullif(pg_catalog.current_setting('cairn.read_scopes', true), '')::text[]));

alter policy entity_snapshots_in_scope on cairn.entity_snapshots
  using (array['*', scope] && (select nullif(pg_catalog.current_setting('cairn.read_scopes', true), '')::text[]))
  with check (array['*', scope] && (select nullif(pg_catalog.current_setting('cairn.read_scopes', true), '')::text[]));
