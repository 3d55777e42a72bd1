-- offload schema 7 for SQLite: batch groups. The PostgreSQL script of the same number
-- explains it.
CREATE INDEX offload_jobs_group ON offload_jobs (queue, task, group_key, sort_at, id)
    WHERE group_key IS NOT NULL AND state IN ('available', 'scheduled', 'retrying');
CREATE INDEX offload_jobs_group_due ON offload_jobs (queue, task, group_key, run_at)
    WHERE group_key IS NOT NULL AND state IN ('available', 'scheduled', 'retrying');
