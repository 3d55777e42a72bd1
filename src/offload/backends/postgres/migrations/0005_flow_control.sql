-- offload schema 5 for PostgreSQL: flow control (DESIGN.md section 5).
--
-- Jobs gain `sort_at`, the virtual deadline claims take jobs in: run_at minus the job's
-- head start (priority * its queue's `aging` seconds), so priority is a head start and no
-- job waits behind jobs that became due more than (p_max - p) * aging seconds after it.
-- A retry or a rescue moves run_at and keeps the head start (sort_at moves with run_at).
-- `limit_key` is the key a task's per-key limits count by ('' for a task limited as a
-- whole, NULL for a task without limits).
ALTER TABLE offload_jobs ADD COLUMN sort_at timestamptz;
UPDATE offload_jobs SET sort_at = run_at - make_interval(secs => priority * 60.0);
ALTER TABLE offload_jobs ALTER COLUMN sort_at SET NOT NULL;
ALTER TABLE offload_jobs ADD COLUMN limit_key text;

DROP INDEX offload_jobs_claim;
CREATE INDEX offload_jobs_claim ON offload_jobs (queue, sort_at, id)
    WHERE state IN ('available', 'scheduled', 'retrying');

-- One row per queue with a policy (declared by `App.queue` or set by `offload queues set`).
-- A NULL bound means "none". `declared` is the code's declaration last written, so that a
-- run-time change lasts until the code declares something different.
CREATE TABLE offload_queues (
    name text PRIMARY KEY,
    max_depth integer CHECK (max_depth > 0),
    admit_depth integer CHECK (admit_depth > 0),
    admit_priority integer,
    max_wait float8 CHECK (max_wait > 0),
    overload text NOT NULL DEFAULT 'refuse' CHECK (overload IN ('refuse', 'shed')),
    shed_priority integer,
    shed_depth integer CHECK (shed_depth > 0),
    resume_depth integer CHECK (resume_depth >= 0),
    aging float8 NOT NULL DEFAULT 60 CHECK (aging >= 0),
    paused boolean NOT NULL DEFAULT false,
    concurrency integer CHECK (concurrency > 0),
    rate_count integer CHECK (rate_count > 0),
    rate_period float8 CHECK (rate_period > 0),
    declared text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Limits a task declares (`concurrency`, `rate_limit`, per `limit_key` when `keyed`).
CREATE TABLE offload_task_limits (
    task text PRIMARY KEY,
    concurrency integer CHECK (concurrency > 0),
    rate_count integer CHECK (rate_count > 0),
    rate_period float8 CHECK (rate_period > 0),
    keyed boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The starts rate limits count: one row per claim and bucket (a queue's, or a task's and
-- limit key's), with its starts `n` and the bucket's running `total` (the sum of n over the
-- bucket's rows so far), so that a claim counts the starts in any window with two seeks of
-- one index, however high the rate: the last total minus the total before the window.
-- Rows out of every window are pruned by the claims that log new ones.
CREATE TABLE offload_rate_starts (
    bucket text NOT NULL,
    at timestamptz NOT NULL,
    n integer NOT NULL DEFAULT 1,
    total bigint NOT NULL DEFAULT 0
);
CREATE INDEX offload_rate_starts_bucket ON offload_rate_starts (bucket, at, total, n);

-- Whether a queue holds due jobs a task limit counts, asked when a worker's view of the
-- queue is stale or a plain claim came back empty: a seek here, not a scan of the queue.
CREATE INDEX offload_jobs_limited ON offload_jobs (queue, run_at)
    WHERE limit_key IS NOT NULL AND state IN ('available', 'scheduled', 'retrying');

-- Each worker's measured completions per second per queue ({"queue": rate}), written with
-- its registry heartbeat: a queue's drain rate is the sum over live workers.
ALTER TABLE offload_workers ADD COLUMN rates json NOT NULL DEFAULT '{}';
