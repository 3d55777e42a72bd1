-- offload schema 13 for SQLite: roll-ups of the events for charts. The PostgreSQL script of
-- the same number explains the tables; here buckets are epoch seconds and the cursor is a
-- position (tx is always 0).
CREATE TABLE offload_stats (
    bucket REAL NOT NULL,
    queue TEXT NOT NULL,
    enqueued INTEGER NOT NULL DEFAULT 0,
    started INTEGER NOT NULL DEFAULT 0,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    dead INTEGER NOT NULL DEFAULT 0,
    latency_n INTEGER NOT NULL DEFAULT 0,
    latency_sum REAL NOT NULL DEFAULT 0,
    latency_max REAL,
    latency_bins TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (bucket, queue)
) WITHOUT ROWID;

CREATE TABLE offload_stats_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    tx INTEGER NOT NULL,
    position INTEGER NOT NULL
);
INSERT INTO offload_stats_cursor (id, tx, position) VALUES (1, 0, 0);

-- The error_type filter's index (see the PostgreSQL script); the rowid follows the key.
CREATE INDEX offload_jobs_error_type ON offload_jobs (errors ->> '$[#-1].type')
    WHERE errors <> '[]';
