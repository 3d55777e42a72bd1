-- offload schema 3 for PostgreSQL: the wake-up path. Any statement that makes jobs
-- available (an enqueue, a transactional enqueue, a release, a rescue, a retry) or asks a
-- running job to stop NOTIFYs the queues concerned, whoever runs it; PostgreSQL delivers at
-- commit and folds repeats within a transaction. The payload is a queue name only: NOTIFY
-- is a hint (capped at 8000 bytes, never replayed) and workers poll behind it.

-- Inserts: once per statement, however many rows (a batch of 10,000 makes one call).
CREATE FUNCTION offload_jobs_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('offload_jobs', queue)
    FROM (SELECT DISTINCT queue FROM inserted WHERE state = 'available') AS woken;
    RETURN NULL;
END
$$;

CREATE TRIGGER offload_jobs_wake_insert AFTER INSERT ON offload_jobs
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION offload_jobs_wake();

-- Updates: per row, but only rows that become available or are asked to stop run the
-- function; the WHEN test alone costs a claim or an outcome next to nothing, and updates
-- that set neither column (heartbeats, progress) skip the trigger altogether.
CREATE FUNCTION offload_job_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('offload_jobs', NEW.queue);
    RETURN NULL;
END
$$;

CREATE TRIGGER offload_jobs_wake_update AFTER UPDATE OF state, cancel_requested
    ON offload_jobs FOR EACH ROW
    WHEN ((NEW.state = 'available' AND OLD.state <> 'available')
          OR (NEW.state = 'running' AND NEW.cancel_requested AND NOT OLD.cancel_requested))
    EXECUTE FUNCTION offload_job_wake();
