-- offload schema 9 for PostgreSQL: job events, the change sequence that event streams
-- (SSE) resume from, and the job's channel. Triggers write the events, in the transaction
-- of the change, so that every path that changes a job (enqueue, claim, progress, outcome,
-- release, rescue, cancel, supersede, shed, re-admission, admin retry, and any written
-- later) is covered without each statement having to remember.
ALTER TABLE offload_jobs ADD COLUMN channel text;

CREATE TABLE offload_events (
    position bigint GENERATED ALWAYS AS IDENTITY,
    -- The writing transaction: transactions commit out of order, so readers return only
    -- events of transactions older than every one still open, in (tx, position) order.
    tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
    kind text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    job_id bigint,
    task text,
    queue text,
    channel text,
    -- The job's state after the change (NULL for an application's notify).
    state text,
    attempt integer,
    data json,
    -- The cursor order: every read walks it, from a cursor onwards.
    PRIMARY KEY (tx, position)
);
-- A job's stream, and a channel's. A queue's stream walks the primary key and filters:
-- one more index on every event would cost each job change a third index write.
CREATE INDEX offload_events_job ON offload_events (job_id, tx, position)
    WHERE job_id IS NOT NULL;
CREATE INDEX offload_events_channel ON offload_events (channel, tx, position)
    WHERE channel IS NOT NULL;

-- One INSERT ... SELECT and one NOTIFY per statement, however many jobs it changed: a
-- per-row plpgsql trigger cost claims and outcomes 7-10% of a drain (schema 3's note).
CREATE FUNCTION offload_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)
    SELECT 'enqueued', n.id, n.task, n.queue, n.channel, n.state, n.attempt, '{}'
    FROM new_jobs AS n ORDER BY n.id;
    IF FOUND THEN
        PERFORM pg_notify('offload_events', '');
    END IF;
    RETURN NULL;
END
$$;

-- The kind of a change from the old and new rows; no event (NULL) for updates that move
-- no state and report no progress (heartbeats, stop requests, due jobs made available).
CREATE FUNCTION offload_events_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)
    SELECT e.kind, n.id, n.task, n.queue, n.channel, n.state, n.attempt,
        CASE e.kind
            WHEN 'progress' THEN n.progress
            WHEN 'retrying' THEN json_build_object('error', left(n.errors -> -1 ->> 'message', 500))
            WHEN 'dead' THEN json_build_object('error', left(n.errors -> -1 ->> 'message', 500))
            ELSE '{}'::json
        END
    FROM new_jobs AS n JOIN old_jobs AS o ON o.id = n.id
    CROSS JOIN LATERAL (SELECT CASE
        WHEN n.state = o.state THEN
            CASE WHEN n.state = 'running' AND n.progress IS NOT NULL
                      AND n.progress::text IS DISTINCT FROM o.progress::text
                 THEN 'progress' END
        WHEN n.state IN ('running', 'retrying', 'succeeded', 'dead', 'cancelled', 'shed')
            THEN CASE n.state WHEN 'running' THEN 'started' ELSE n.state END
        -- back to the queue from a run or an end; not the due and dependency moves
        WHEN o.state IN ('running', 'succeeded', 'dead', 'cancelled', 'shed') THEN 'requeued'
        END AS kind) AS e
    WHERE e.kind IS NOT NULL
    ORDER BY n.id;
    IF FOUND THEN
        PERFORM pg_notify('offload_events', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER offload_jobs_events_insert AFTER INSERT ON offload_jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION offload_events_inserted();
CREATE TRIGGER offload_jobs_events_update AFTER UPDATE ON offload_jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION offload_events_updated();
-- Pruning by age: rows are appended in time order, so a BRIN index (a few pages,
-- next to nothing per insert) finds the old ones.
CREATE INDEX offload_events_at ON offload_events USING brin (at);
