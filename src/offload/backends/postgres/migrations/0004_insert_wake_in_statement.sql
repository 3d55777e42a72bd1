-- offload schema 4 for PostgreSQL: inserts NOTIFY from their own statements (jobs.sql), so
-- the statement trigger of schema 3 goes. It cost a durable single-row enqueue about 5% in
-- an A/B (plpgsql call and after-trigger queue per statement); pg_notify in the insert's
-- own query does the same for every insert offload makes, whoever's transaction it is.
DROP TRIGGER IF EXISTS offload_jobs_wake_insert ON offload_jobs;
DROP FUNCTION IF EXISTS offload_jobs_wake();
