-- offload schema 21 for PostgreSQL: every statement that changes a job's state writes its
-- events itself, as SQLite's have since its schema 11, and the update trigger of schema 9
-- (which schemas 10 and 20 taught `released` and offload.defer_wake) goes with its
-- function. The claims, progress, `finish`, release and the sweep's statements write them
-- within the statement (a data-modifying WITH: no round trip more); the changes made in a
-- transaction of several statements with events.sql `written`, in it. Each NOTIFYs event
-- listeners as the trigger did: once per statement that wrote events, except in an
-- enqueue's transaction whose wake-ups follow its commit (offload.defer_wake). The
-- trigger's transition tables (every updated row kept twice, a heartbeat's too), its join
-- and its plpgsql call were about a third of a claim (benchmarks/claim_one.py).
DROP TRIGGER IF EXISTS offload_jobs_events_update ON offload_jobs;
DROP FUNCTION IF EXISTS offload_events_updated();
