-- offload schema 21 for PostgreSQL: every statement that changes a job writes its events
-- itself, as SQLite's have since its schema 11, and the event triggers of schema 9 (which
-- schemas 10 and 20 taught `released` and offload.defer_wake) go with their functions.
-- The inserts, the claims, progress, `finish`, release and the sweep's statements write
-- them within the statement (a data-modifying WITH: no round trip more); the changes made
-- in a transaction of several statements with events.sql `written`, in it. Each NOTIFYs
-- event listeners as the triggers did: once per statement that wrote events, except in an
-- enqueue's transaction whose wake-ups follow its commit (offload.defer_wake). The update
-- trigger's transition tables (every updated row kept twice, a heartbeat's too), its join
-- and its plpgsql call were about a third of a claim (benchmarks/claim_one.py), and the
-- insert trigger a tenth of a lone enqueue's server CPU (benchmarks/insert_events.py).
DROP TRIGGER IF EXISTS offload_jobs_events_update ON offload_jobs;
DROP TRIGGER IF EXISTS offload_jobs_events_insert ON offload_jobs;
DROP FUNCTION IF EXISTS offload_events_updated();
DROP FUNCTION IF EXISTS offload_events_inserted();
