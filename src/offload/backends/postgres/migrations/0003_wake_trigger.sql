-- offload schema 3 for PostgreSQL: the wake-up path. Any statement that makes jobs
-- available (an enqueue, a transactional enqueue, a release, a rescue, a retry) or asks a
-- running job to stop NOTIFYs the queues concerned, once per statement and whoever runs
-- it; PostgreSQL delivers at commit and folds repeats within a transaction. The payload is
-- a queue name only: NOTIFY is a hint (capped at 8000 bytes, never replayed) and workers
-- poll behind it.
CREATE FUNCTION offload_jobs_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('offload_jobs', queue)
    FROM (SELECT DISTINCT queue FROM changed
          WHERE state = 'available' OR (state = 'running' AND cancel_requested)) AS woken;
    RETURN NULL;
END
$$;

CREATE TRIGGER offload_jobs_wake_insert AFTER INSERT ON offload_jobs
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION offload_jobs_wake();

-- (Transition tables cannot go with UPDATE OF a column list: the statement-level trigger
-- costs some 10 us per UPDATE statement, and claims, outcomes and heartbeats are batched.)
CREATE TRIGGER offload_jobs_wake_update AFTER UPDATE ON offload_jobs
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION offload_jobs_wake();
