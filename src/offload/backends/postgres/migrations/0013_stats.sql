-- offload schema 13 for PostgreSQL: roll-ups of the events for the dashboard's charts, per
-- minute and queue (offload.core.stats), and the cursor of the events rolled up so far;
-- and an index for the dashboard's filter by error type.
-- Stored, not kept in memory: they survive restarts and every API replica reads the same.
CREATE TABLE offload_stats (
    bucket timestamptz NOT NULL,
    queue text NOT NULL,
    enqueued bigint NOT NULL DEFAULT 0,
    started bigint NOT NULL DEFAULT 0,
    succeeded bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    dead bigint NOT NULL DEFAULT 0,
    -- First starts' waits: how many, their sum and largest, and a log-scale histogram as
    -- a JSON object of bin -> count (offload.core.stats.latency_bin).
    latency_n bigint NOT NULL DEFAULT 0,
    latency_sum float8 NOT NULL DEFAULT 0,
    latency_max float8,
    latency_bins text NOT NULL DEFAULT '{}',
    PRIMARY KEY (bucket, queue)
);

-- One row: the last event rolled up, in the events' cursor order (tx, position). A
-- roll-up locks it, adds a batch of events to the buckets and moves it past them in one
-- transaction, so concurrent rollers count each event once. Existing events are rolled
-- up from the start.
CREATE TABLE offload_stats_cursor (
    id integer PRIMARY KEY CHECK (id = 1),
    tx xid8 NOT NULL,
    position bigint NOT NULL
);
INSERT INTO offload_stats_cursor (id, tx, position) VALUES (1, '0', 0);

-- The dashboard's error_type filter, newest first: the exception type of a job's latest
-- error, for jobs with an error only (a new job has none, so an enqueue writes no entry).
CREATE INDEX offload_jobs_error_type ON offload_jobs ((errors -> -1 ->> 'type'), id)
    WHERE errors <> '[]'::jsonb;
