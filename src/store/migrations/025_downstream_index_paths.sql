-- cairn: non-breaking
-- 025: the blast radius walks by index again, however long the log.
--
-- cairn.downstream (023) joins two set-returning SQL functions per step of its walk,
-- cairn.derived_children (009) and cairn.read_set_readers (023). Being SECURITY DEFINER they are
-- never inlined, so the planner took each for Postgres' default of 1000 rows and hash-joined them
-- with sequential scans of every observation (twice per level: the derived and the read edges)
-- and of every read set. A blast radius of 4 observations with 60,000 unrelated ones in the log
-- took 300-360 ms instead of 6 ms (test/integration/plansAtScale.test.ts), and it grows with the
-- log; loadTaint walks the same way for every active quarantine. Declared at 10 rows (an
-- observation has few children, an entity version few readers), the joins go through
-- observations_pkey, read_sets_pkey, observation_read_sets_read_set_idx and
-- observations_idempotency_key_unique.
--
-- read_set_readers' scope test asked EXISTS (a read set of the caller's tasks) inside an OR; the
-- planner may turn that into a hashed subplan, which reads every read set to build its hash
-- before the first row (7 ms per call at 20,000 read sets, under any grant without '*'). As a
-- scalar subquery on the read set's primary key it is one index probe per candidate, and only
-- when reached: the same answer (no such read set: NULL, not true, as EXISTS was false).
-- Same signatures, owners and grants; CREATE OR REPLACE keeps them.

CREATE OR REPLACE FUNCTION cairn.derived_children(p_parent uuid)
 RETURNS SETOF uuid
 LANGUAGE sql
 STABLE SECURITY DEFINER
 ROWS 10
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select d.id from cairn.observations d
   where d.derived_from @> array[p_parent]
     and cairn.caller_may_read(case when d.scope = 'task' then 'task:' || d.task_key else d.scope end)
$function$;

CREATE OR REPLACE FUNCTION cairn.read_set_readers(p_entity_type text, p_entity_id text, p_from integer, p_before integer, p_keys text[])
 RETURNS SETOF uuid
 LANGUAGE sql
 STABLE SECURITY DEFINER
 ROWS 10
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select p.read_set_id
    from cairn.read_set_parts p
   cross join lateral unnest(p.entity_types, p.entity_ids, p.versions, p.fields) as e(t, i, v, f)
   where p.entity_keys @> array[p_entity_type || chr(31) || p_entity_id]
     and e.t = p_entity_type and e.i = p_entity_id and e.v >= p_from
     and (p_before is null or e.v < p_before)
     and (e.f is null or e.f::text[] && p_keys)
     -- Cheapest first, each subquery without outer reference an InitPlan run at most once per
     -- call, and only when reached: acting_as_application reads the catalogs. The read set's
     -- task by its primary key (a scalar subquery: never hashed over every read set).
     and ((select '*' = any (cairn.bookkeeping_scopes()))
          or 'task:' || (select r.task_key from cairn.read_sets r where r.id = p.read_set_id)
             = any ((select cairn.bookkeeping_scopes())::text[])
          or (select not cairn.acting_as_application()))
$function$;
