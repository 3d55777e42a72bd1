-- offload schema 17 for PostgreSQL: a lighter job row (benchmarks/wal.py measures it).
-- `offload_jobs_state (state, queue)` held every job, so every enqueue, claim and outcome
-- wrote an entry that only counts read (a quarter of the WAL of a claim and its outcome on
-- SQLite, a tenth of an enqueue's). It now holds the jobs no other index finds by state:
-- not the available ones (the claim index holds them) nor the running ones (the running
-- index below holds them, as many as the workers' slots). An enqueue, a claim and a
-- success each write one index entry fewer.
DROP INDEX offload_jobs_state;
CREATE INDEX offload_jobs_state ON offload_jobs (state, queue)
    WHERE state NOT IN ('available', 'running');

-- The running jobs' index was keyed by lease_until, which every heartbeat moves: each
-- renewal wrote an entry here and, the column being indexed, could not be a HOT update, so
-- it wrote a primary-key entry and a whole new row too. Keyed by queue, it holds the same
-- jobs (the rescue reads them all, as many as the workers' slots, and checks each lease),
-- counts them per queue alone, and leaves lease_until in no index: a heartbeat is a HOT
-- update, one heap record.
DROP INDEX offload_jobs_lease;
CREATE INDEX offload_jobs_running ON offload_jobs (queue) WHERE state = 'running';

-- Events: schema 9's BRIN index on `at` was to find old events for pruning "next to
-- nothing per insert"; measured, every one-row insert extends the summary of the range it
-- lands in: 72 WAL bytes per single enqueue (a tenth of it) and 144 per claim and outcome.
-- Pruning walks the primary key from the oldest instead, as SQLite's does.
DROP INDEX offload_events_at;
