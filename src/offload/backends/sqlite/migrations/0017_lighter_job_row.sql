-- offload schema 17 for SQLite: a lighter job row. The PostgreSQL script of the same number
-- explains it; here the claim index carries the state as a last key column (SQLite has no
-- INCLUDE).
DROP INDEX offload_jobs_state;
CREATE INDEX offload_jobs_state ON offload_jobs (state, queue)
    WHERE state NOT IN ('available', 'running');
DROP INDEX offload_jobs_claim;
CREATE INDEX offload_jobs_claim ON offload_jobs (queue, sort_at, id, state)
    WHERE state IN ('available', 'scheduled', 'retrying');
DROP INDEX offload_jobs_lease;
CREATE INDEX offload_jobs_running ON offload_jobs (queue) WHERE state = 'running';
