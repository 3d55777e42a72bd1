-- offload schema 7 for PostgreSQL: batch groups (aggregation, DESIGN.md section 5).
--
-- A batch task's jobs carry their group in `group_key` (a column since schema 1). A group
-- claim hops from group to group and, in each, finds its first job in claim order
-- (sort_at), its oldest (run_at) and whether it holds max_size due jobs: two indexes of
-- waiting batch jobs only, by queue, task and group, make each a seek or a short range,
-- and never hold the queue's single jobs (plain claims skip rows with a group).
CREATE INDEX offload_jobs_group ON offload_jobs (queue, task, group_key, sort_at, id)
    WHERE group_key IS NOT NULL AND state IN ('available', 'scheduled', 'retrying');
CREATE INDEX offload_jobs_group_due ON offload_jobs (queue, task, group_key, run_at)
    WHERE group_key IS NOT NULL AND state IN ('available', 'scheduled', 'retrying');
