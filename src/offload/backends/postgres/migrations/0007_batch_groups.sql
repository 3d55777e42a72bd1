-- offload schema 7 for PostgreSQL: batch groups (aggregation, DESIGN.md section 5).
--
-- A batch task's jobs carry their group in `group_key` (a column since schema 1). A group
-- claim counts each group's due jobs and finds its oldest: this index holds only due jobs
-- of batch tasks, by queue, task and group, so it reads them alone and never the queue's
-- single jobs (nor do plain claims, which skip rows with a group, read it).
CREATE INDEX offload_jobs_group ON offload_jobs (queue, task, group_key, run_at)
    WHERE group_key IS NOT NULL AND state IN ('available', 'scheduled', 'retrying');
