-- offload schema 20 for PostgreSQL: a durable enqueue's transaction may NOTIFY nothing.
-- PostgreSQL serialises the commits of transactions that NOTIFY: PreCommit_Notify takes a
-- database-wide lock held until the transaction ends, across its WAL flush, so producers in
-- many processes could not share a group commit (8 connections inserting with pg_notify:
-- about half the rate of plain inserts). With `wake=after_commit` in the URL, an enqueue on
-- offload's own connection sets
-- `offload.defer_wake` for its transaction (jobs.sql) and sends its wake-ups in a second,
-- tiny transaction after the commit (PostgresBackend.enqueuing); the event triggers below
-- skip their NOTIFY in such a transaction. Every other writer notifies as before.

-- Schema 9's function, its NOTIFY skipped in a deferring transaction.
CREATE OR REPLACE FUNCTION offload_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)
    SELECT 'enqueued', n.id, n.task, n.queue, n.channel, n.state, n.attempt, '{}'
    FROM new_jobs AS n ORDER BY n.id;
    IF FOUND AND current_setting('offload.defer_wake', true) IS DISTINCT FROM 'on' THEN
        PERFORM pg_notify('offload_events', '');
    END IF;
    RETURN NULL;
END
$$;

-- Schema 10's function, likewise.
CREATE OR REPLACE FUNCTION offload_events_updated() RETURNS trigger LANGUAGE plpgsql AS $$
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
        -- back to the queue from a run or an end; not the due moves
        WHEN o.state IN ('running', 'succeeded', 'dead', 'cancelled', 'shed') THEN 'requeued'
        WHEN o.state = 'waiting' THEN 'released'
        END AS kind) AS e
    WHERE e.kind IS NOT NULL
    ORDER BY n.id;
    IF FOUND AND current_setting('offload.defer_wake', true) IS DISTINCT FROM 'on' THEN
        PERFORM pg_notify('offload_events', '');
    END IF;
    RETURN NULL;
END
$$;
