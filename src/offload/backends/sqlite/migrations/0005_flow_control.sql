-- offload schema 5 for SQLite: flow control (DESIGN.md section 5). The PostgreSQL script
-- of the same number explains each part; times are epoch seconds here.
ALTER TABLE offload_jobs ADD COLUMN sort_at REAL NOT NULL DEFAULT 0;
UPDATE offload_jobs SET sort_at = run_at - priority * 60.0;
ALTER TABLE offload_jobs ADD COLUMN limit_key TEXT;

DROP INDEX offload_jobs_claim;
CREATE INDEX offload_jobs_claim ON offload_jobs (queue, sort_at, id)
    WHERE state IN ('available', 'scheduled', 'retrying');

CREATE TABLE offload_queues (
    name TEXT NOT NULL PRIMARY KEY,
    max_depth INTEGER CHECK (max_depth > 0),
    admit_depth INTEGER CHECK (admit_depth > 0),
    admit_priority INTEGER,
    max_wait REAL CHECK (max_wait > 0),
    overload TEXT NOT NULL DEFAULT 'refuse' CHECK (overload IN ('refuse', 'shed')),
    shed_priority INTEGER,
    shed_depth INTEGER CHECK (shed_depth > 0),
    resume_depth INTEGER CHECK (resume_depth >= 0),
    aging REAL NOT NULL DEFAULT 60 CHECK (aging >= 0),
    paused INTEGER NOT NULL DEFAULT 0,
    concurrency INTEGER CHECK (concurrency > 0),
    rate_count INTEGER CHECK (rate_count > 0),
    rate_period REAL CHECK (rate_period > 0),
    declared TEXT,
    updated_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
);

CREATE TABLE offload_task_limits (
    task TEXT NOT NULL PRIMARY KEY,
    concurrency INTEGER CHECK (concurrency > 0),
    rate_count INTEGER CHECK (rate_count > 0),
    rate_period REAL CHECK (rate_period > 0),
    keyed INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
);

CREATE TABLE offload_rate_starts (
    bucket TEXT NOT NULL,
    at REAL NOT NULL,
    n INTEGER NOT NULL DEFAULT 1,
    total INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX offload_rate_starts_bucket ON offload_rate_starts (bucket, at, total, n);

CREATE INDEX offload_jobs_limited ON offload_jobs (queue, run_at)
    WHERE limit_key IS NOT NULL AND state IN ('available', 'scheduled', 'retrying');

ALTER TABLE offload_workers ADD COLUMN rates TEXT NOT NULL DEFAULT '{}';
