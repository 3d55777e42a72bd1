-- offload schema 10 for PostgreSQL: workflows, jobs that wait for jobs
-- (offload.core.workflow). A job with parents is stored `waiting` with `pending`, the count
-- of its parents not yet over; each statement that ends a parent resolves its edges and
-- counts the children down in its own transaction (offload.backends.sql.workflows). The
-- count lives on the child's row so that two parents ending at once take turns on its
-- row lock: each decrement reads the other's (a check of the parents' states would not,
-- under READ COMMITTED).
CREATE TABLE offload_workflows (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- "chain", "group", "chord", "workflow", "map": for listings.
    kind text NOT NULL,
    name text,
    created_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE offload_jobs
    ADD COLUMN workflow_id bigint,
    -- The node's name within its workflow.
    ADD COLUMN node text,
    -- Its edges, and those of them whose parent is not over yet (the release counter).
    ADD COLUMN parents integer NOT NULL DEFAULT 0,
    ADD COLUMN pending integer NOT NULL DEFAULT 0,
    -- Edges pointing at it: a statement that ends a job returns `children > 0`, so the
    -- release step costs jobs nobody waits for nothing.
    ADD COLUMN children integer NOT NULL DEFAULT 0,
    -- How it takes its parents' results (offload.core.workflow.Takes).
    ADD COLUMN takes text NOT NULL DEFAULT 'nothing';
CREATE INDEX offload_jobs_workflow ON offload_jobs (workflow_id) WHERE workflow_id IS NOT NULL;

-- One row per edge: child waits for parent. `position` orders a child's parents (the order
-- of their results); `outcome` is the parent's finished state once the edge is resolved,
-- which happens once: a parent retried by hand and ending again releases nothing more.
CREATE TABLE offload_dependencies (
    child_id bigint NOT NULL,
    position integer NOT NULL,
    parent_id bigint NOT NULL,
    on_failure text NOT NULL CHECK (on_failure IN ('fail', 'cancel', 'run')),
    outcome text,
    PRIMARY KEY (child_id, position)
);
CREATE INDEX offload_dependencies_parent ON offload_dependencies (parent_id)
    WHERE outcome IS NULL;

-- Schema 9's function, and a kind more: a waiting job released (its parents over) to
-- available or scheduled.
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
    IF FOUND THEN
        PERFORM pg_notify('offload_events', '');
    END IF;
    RETURN NULL;
END
$$;
