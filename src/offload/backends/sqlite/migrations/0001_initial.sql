-- offload schema 1 for SQLite. Times are Unix epoch seconds (REAL, UTC).
CREATE TABLE offload_schema (
    version INTEGER NOT NULL PRIMARY KEY,
    applied_at REAL NOT NULL
);

CREATE TABLE offload_jobs (
    -- AUTOINCREMENT: an id is never reused, even after the newest job is pruned.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    queue TEXT NOT NULL,
    args TEXT NOT NULL DEFAULT '[]',
    kwargs TEXT NOT NULL DEFAULT '{}',
    priority INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL CHECK (state IN ('waiting', 'scheduled', 'available', 'running',
        'retrying', 'succeeded', 'dead', 'cancelled', 'shed')),
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
    progress TEXT
);

-- The claim walks this index in priority order and stops after LIMIT rows.
CREATE INDEX offload_jobs_claim ON offload_jobs (queue, priority DESC, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retrying');
CREATE INDEX offload_jobs_lease ON offload_jobs (lease_until) WHERE state = 'running';
CREATE INDEX offload_jobs_state ON offload_jobs (state, queue);
CREATE INDEX offload_jobs_finished ON offload_jobs (state, finished_at)
    WHERE state IN ('succeeded', 'dead', 'cancelled');
CREATE UNIQUE INDEX offload_jobs_idempotency ON offload_jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX offload_jobs_unique ON offload_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state NOT IN ('succeeded', 'dead', 'cancelled');

CREATE TABLE offload_workers (
    id TEXT NOT NULL PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    queues TEXT NOT NULL,
    concurrency INTEGER NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    -- Address of the worker's wake-up socket, so producers can signal new jobs.
    wake TEXT
);
