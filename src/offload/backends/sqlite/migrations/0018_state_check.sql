-- offload schema 18 for SQLite: the job row's state CHECK as a chain of comparisons. SQLite
-- (3.40) codes a CHECK's `state IN (nine names)` by building a temporary b-tree of the nine
-- names for every row it writes, each insert and each update of a job: measured, a fifth of
-- the instructions of `enqueue_many` per job (benchmarks/RESULTS.md, issue 20, batched
-- enqueue). The same rule written as comparisons costs a few of them. SQLite cannot alter a
-- CHECK, so the table is rebuilt, with its rows, its AUTOINCREMENT sequence (an id is never
-- given twice), its indexes and its trigger as they were (PostgreSQL's is an array test
-- already: its script changes nothing).
CREATE TABLE offload_jobs_rebuilt (
    -- AUTOINCREMENT: an id is never reused, even after the newest job is pruned.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    queue TEXT NOT NULL,
    args TEXT NOT NULL DEFAULT '[]',
    kwargs TEXT NOT NULL DEFAULT '{}',
    priority INTEGER NOT NULL DEFAULT 0,
    -- Comparisons, not `IN (...)`: see above.
    state TEXT NOT NULL CHECK (state = 'waiting' OR state = 'scheduled' OR state = 'available'
        OR state = 'running' OR state = 'retrying' OR state = 'succeeded' OR state = 'dead'
        OR state = 'cancelled' OR state = 'shed'),
    attempt INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    run_at REAL NOT NULL,
    enqueued_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    lease_until REAL,
    worker TEXT,
    result TEXT,
    errors TEXT NOT NULL DEFAULT '[]',
    unique_key TEXT,
    idempotency_key TEXT,
    group_key TEXT,
    meta TEXT NOT NULL DEFAULT '{}',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress TEXT,
    sort_at REAL NOT NULL DEFAULT 0,
    limit_key TEXT,
    replace_key TEXT,
    superseded_by INTEGER,
    channel TEXT,
    workflow_id INTEGER,
    node TEXT,
    parents INTEGER NOT NULL DEFAULT 0,
    pending INTEGER NOT NULL DEFAULT 0,
    children INTEGER NOT NULL DEFAULT 0,
    takes TEXT NOT NULL DEFAULT 'nothing'
);
INSERT INTO offload_jobs_rebuilt (id, task, queue, args, kwargs, priority, state, attempt,
    max_attempts, run_at, enqueued_at, started_at, finished_at, lease_until, worker, result,
    errors, unique_key, idempotency_key, group_key, meta, cancel_requested, progress, sort_at,
    limit_key, replace_key, superseded_by, channel, workflow_id, node, parents, pending,
    children, takes)
SELECT id, task, queue, args, kwargs, priority, state, attempt, max_attempts, run_at,
    enqueued_at, started_at, finished_at, lease_until, worker, result, errors, unique_key,
    idempotency_key, group_key, meta, cancel_requested, progress, sort_at, limit_key,
    replace_key, superseded_by, channel, workflow_id, node, parents, pending, children, takes
FROM offload_jobs ORDER BY id;
-- The sequence goes on from the newest id ever given, which may be above the newest left.
DELETE FROM sqlite_sequence WHERE name = 'offload_jobs_rebuilt';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'offload_jobs_rebuilt', seq FROM sqlite_sequence WHERE name = 'offload_jobs';
DROP TABLE offload_jobs;
-- A view of the user's over offload_jobs would fail the rename's check of the schema (the
-- table it names is gone for that moment); the legacy rename leaves views alone.
PRAGMA legacy_alter_table = ON;
ALTER TABLE offload_jobs_rebuilt RENAME TO offload_jobs;
PRAGMA legacy_alter_table = OFF;

CREATE INDEX offload_jobs_finished ON offload_jobs (state, finished_at)
    WHERE state IN ('succeeded', 'dead', 'cancelled');
CREATE INDEX offload_jobs_limited ON offload_jobs (queue, run_at)
    WHERE limit_key IS NOT NULL AND state IN ('available', 'scheduled', 'retrying');
CREATE INDEX offload_jobs_idempotency ON offload_jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX offload_jobs_unique ON offload_jobs (unique_key) WHERE unique_key IS NOT NULL;
CREATE INDEX offload_jobs_replace ON offload_jobs (replace_key)
    WHERE replace_key IS NOT NULL
      AND state IN ('waiting', 'scheduled', 'available', 'retrying', 'shed', 'running');
CREATE INDEX offload_jobs_group ON offload_jobs (queue, task, group_key, sort_at, id)
    WHERE group_key IS NOT NULL AND state IN ('available', 'scheduled', 'retrying');
CREATE INDEX offload_jobs_group_due ON offload_jobs (queue, task, group_key, run_at)
    WHERE group_key IS NOT NULL AND state IN ('available', 'scheduled', 'retrying');
CREATE INDEX offload_jobs_workflow ON offload_jobs (workflow_id) WHERE workflow_id IS NOT NULL;
CREATE INDEX offload_jobs_error_type ON offload_jobs (errors ->> '$[#-1].type')
    WHERE errors <> '[]';
CREATE INDEX offload_jobs_state ON offload_jobs (state, queue)
    WHERE state NOT IN ('available', 'running');
CREATE INDEX offload_jobs_claim ON offload_jobs (queue, sort_at, id, state)
    WHERE state IN ('available', 'scheduled', 'retrying');
CREATE INDEX offload_jobs_running ON offload_jobs (queue) WHERE state = 'running';

CREATE TRIGGER offload_jobs_events_insert AFTER INSERT ON offload_jobs
BEGIN
    INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)
    VALUES ('enqueued', new.id, new.task, new.queue, new.channel, new.state, new.attempt, '{}');
END;
