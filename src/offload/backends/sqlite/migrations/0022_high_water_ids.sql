-- offload schema 22 for SQLite: job ids and event positions without AUTOINCREMENT. Both
-- kept their counter in the one sqlite_sequence page, which every insert rewrote: a fifth of
-- a lone enqueue's WAL (5 pages a commit: the job row, its claim index, the event row, its
-- job index, and that page; benchmarks/RESULTS.md, issue 20). The rule it kept stays: an id
-- or a position is never given twice, even after the newest rows are deleted (a handle must
-- not come to name another job; an event stream's cursor must not skip new events).
--
-- How: both tables are plain rowid tables, so SQLite numbers a new row after the newest
-- left, and the one row of `offload_high_water` holds a mark per table for when that is not
-- enough. Only a delete sets a mark: the row triggers below, in the deleting statement's
-- transaction, record a deleted row's id when it was above every row left (so a delete that
-- removes the current newest records it, however many rows it deletes and in whatever
-- order). While a mark is set (> 0), every insert numbers its rows after the larger of the
-- mark and the newest row (the `*_mark` macros of SQLiteBackend, NULL when no mark is set);
-- the enqueue's trigger, which runs after every job stored, sets the marks its insert and its
-- event passed back to 0 (a write only then). So the common insert reads the mark's cached
-- page, writes none, and lets SQLite number the row (a number given per row costs a seek
-- more). Numbering runs under SQLite's one write lock (a stale snapshot cannot write), and a
-- mark commits or rolls back with its statement, so several processes and a crash at any
-- point keep the rule. As with AUTOINCREMENT, an id that only a rolled-back transaction held
-- may be given again (tests/conformance/test_transactional.py).
--
-- The tables are rebuilt (SQLite cannot drop AUTOINCREMENT) with their rows, indexes and
-- triggers; each mark starts at the old sequence, the newest id ever given, which may be
-- above the newest left. Workflows keep AUTOINCREMENT: no enqueue writes their sequence.
-- (PostgreSQL's sequences write no page per commit: its script changes nothing.)
CREATE TABLE offload_high_water (
    jobs INTEGER NOT NULL,
    events INTEGER NOT NULL
);
INSERT INTO offload_high_water (jobs, events)
SELECT coalesce((SELECT max(seq) FROM sqlite_sequence WHERE name = 'offload_jobs'), 0),
    coalesce((SELECT max(seq) FROM sqlite_sequence WHERE name = 'offload_events'), 0);

DROP TRIGGER offload_jobs_events_insert;

CREATE TABLE offload_events_rebuilt (
    -- Never reused: see offload_high_water (schema 22).
    position INTEGER PRIMARY KEY,
    tx INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL,
    at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    job_id INTEGER,
    task TEXT,
    queue TEXT,
    channel TEXT,
    state TEXT,
    attempt INTEGER,
    data TEXT
);
INSERT INTO offload_events_rebuilt (position, tx, kind, at, job_id, task, queue, channel,
    state, attempt, data)
SELECT position, tx, kind, at, job_id, task, queue, channel, state, attempt, data
FROM offload_events ORDER BY position;
DROP TABLE offload_events;

CREATE TABLE offload_jobs_rebuilt (
    -- Never reused: see offload_high_water (schema 22).
    id INTEGER PRIMARY KEY,
    task TEXT NOT NULL,
    queue TEXT NOT NULL,
    args TEXT NOT NULL DEFAULT '[]',
    kwargs TEXT NOT NULL DEFAULT '{}',
    priority INTEGER NOT NULL DEFAULT 0,
    -- Comparisons, not `IN (...)`: see schema 18.
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
DROP TABLE offload_jobs;

-- A view of the user's over either table would fail the rename's check of the schema (the
-- table it names is gone for that moment); the legacy rename leaves views alone.
PRAGMA legacy_alter_table = ON;
ALTER TABLE offload_events_rebuilt RENAME TO offload_events;
ALTER TABLE offload_jobs_rebuilt RENAME TO offload_jobs;
PRAGMA legacy_alter_table = OFF;

CREATE INDEX offload_events_job ON offload_events (job_id, position) WHERE job_id IS NOT NULL;
CREATE INDEX offload_events_channel ON offload_events (channel, position)
    WHERE channel IS NOT NULL;

CREATE INDEX offload_jobs_idempotency ON offload_jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX offload_jobs_unique ON offload_jobs (unique_key) WHERE unique_key IS NOT NULL;
CREATE INDEX offload_jobs_workflow ON offload_jobs (workflow_id) WHERE workflow_id IS NOT NULL;
CREATE INDEX offload_jobs_error_type ON offload_jobs (errors ->> '$[#-1].type')
    WHERE errors <> '[]';
CREATE INDEX offload_jobs_running ON offload_jobs (queue) WHERE state = 'running';
CREATE INDEX offload_jobs_finished ON offload_jobs (state, finished_at)
    WHERE (state = 'succeeded' OR state = 'dead' OR state = 'cancelled');
CREATE INDEX offload_jobs_limited ON offload_jobs (queue, run_at)
    WHERE limit_key IS NOT NULL
      AND (state = 'available' OR state = 'scheduled' OR state = 'retrying');
CREATE INDEX offload_jobs_replace ON offload_jobs (replace_key)
    WHERE replace_key IS NOT NULL
      AND (state = 'waiting' OR state = 'scheduled' OR state = 'available'
           OR state = 'retrying' OR state = 'shed' OR state = 'running');
CREATE INDEX offload_jobs_group ON offload_jobs (queue, task, group_key, sort_at, id)
    WHERE group_key IS NOT NULL
      AND (state = 'available' OR state = 'scheduled' OR state = 'retrying');
CREATE INDEX offload_jobs_group_due ON offload_jobs (queue, task, group_key, run_at)
    WHERE group_key IS NOT NULL
      AND (state = 'available' OR state = 'scheduled' OR state = 'retrying');
CREATE INDEX offload_jobs_state ON offload_jobs (state, queue)
    WHERE state <> 'available' AND state <> 'running';
CREATE INDEX offload_jobs_claim ON offload_jobs (queue, sort_at, id, state)
    WHERE (state = 'available' OR state = 'scheduled' OR state = 'retrying');

-- The enqueue's event, numbered as events.sql numbers them; then the marks passed go back to
-- 0: the job's (its id is after it: jobs.sql) and the events' (this event is after it).
CREATE TRIGGER offload_jobs_events_insert AFTER INSERT ON offload_jobs
BEGIN
    INSERT INTO offload_events (position, kind, job_id, task, queue, channel, state, attempt,
        data)
    VALUES ((SELECT max(h.events, coalesce((SELECT max(position) FROM offload_events), 0))
             FROM offload_high_water AS h WHERE h.events > 0) + 1,
        'enqueued', new.id, new.task, new.queue, new.channel, new.state, new.attempt, '{}');
    UPDATE offload_high_water SET jobs = CASE WHEN new.id > jobs THEN 0 ELSE jobs END, events = 0
    WHERE jobs > 0 OR events > 0;
END;

-- A delete that takes the newest row records its id (a cold path: purges and prunes).
CREATE TRIGGER offload_jobs_high_water AFTER DELETE ON offload_jobs
WHEN old.id > coalesce((SELECT max(id) FROM offload_jobs), 0)
BEGIN
    UPDATE offload_high_water SET jobs = max(jobs, old.id);
END;
CREATE TRIGGER offload_events_high_water AFTER DELETE ON offload_events
WHEN old.position > coalesce((SELECT max(position) FROM offload_events), 0)
BEGIN
    UPDATE offload_high_water SET events = max(events, old.position);
END;

-- A process of the previous release still running numbers a batch's jobs from the table's
-- row in sqlite_sequence, which no longer moves: that row now holds the largest id SQLite
-- has, so such a batch fails ("datatype mismatch": no id follows it) instead of being
-- stored under ids of other jobs. (That release's single inserts let SQLite number, as this
-- one does while no mark is live.) SQLite reads no sequence of a table without
-- AUTOINCREMENT, so nothing of this version looks at the row. Stop the older processes
-- before the upgrade all the same (docs/operations.md, upgrade notes).
INSERT INTO sqlite_sequence (name, seq) VALUES ('offload_jobs', 9223372036854775807);
