-- Named queries of the queues area (sqlite): queue policies and task limits.

-- name: declare
-- The code's declaration of a queue. A run-time change (offload queues set) stays until
-- the code declares something different; the pause state is never the code's.
INSERT INTO offload_queues (name, max_depth, admit_depth, admit_priority, max_wait, overload,
    shed_priority, shed_depth, resume_depth, aging, concurrency, rate_count, rate_period,
    declared, updated_at)
VALUES (:name, :max_depth, :admit_depth, :admit_priority, :max_wait, :overload,
    :shed_priority, :shed_depth, :resume_depth, :aging, :concurrency, :rate_count, :rate_period,
    :declared, {now})
ON CONFLICT (name) DO UPDATE SET {assign}, declared = excluded.declared
WHERE offload_queues.declared IS NOT excluded.declared

-- name: set
-- A run-time change of a queue's policy; its declaration is kept.
INSERT INTO offload_queues (name, max_depth, admit_depth, admit_priority, max_wait, overload,
    shed_priority, shed_depth, resume_depth, aging, concurrency, rate_count, rate_period,
    updated_at)
VALUES (:name, :max_depth, :admit_depth, :admit_priority, :max_wait, :overload,
    :shed_priority, :shed_depth, :resume_depth, :aging, :concurrency, :rate_count, :rate_period,
    {now})
ON CONFLICT (name) DO UPDATE SET {assign}

-- name: assign
max_depth = excluded.max_depth, admit_depth = excluded.admit_depth,
    admit_priority = excluded.admit_priority, max_wait = excluded.max_wait,
    overload = excluded.overload, shed_priority = excluded.shed_priority,
    shed_depth = excluded.shed_depth, resume_depth = excluded.resume_depth,
    aging = excluded.aging, concurrency = excluded.concurrency,
    rate_count = excluded.rate_count, rate_period = excluded.rate_period,
    updated_at = excluded.updated_at

-- name: aging
-- A queue's aging before a change (locks its row on PostgreSQL until the change commits).
SELECT aging FROM offload_queues WHERE name = :name

-- name: resort
-- A new aging applies to the jobs already waiting too: their head start is recomputed.
UPDATE offload_jobs SET sort_at = run_at - priority * :aging
WHERE queue = :name AND {queued_states}

-- name: lock
-- A queue's policy before a run-time change (locked on PostgreSQL until it commits; the
-- SQLite transaction holds the write lock from its start).
SELECT * FROM offload_queues WHERE name = :name

-- name: pause
INSERT INTO offload_queues (name, paused, updated_at) VALUES (:name, :paused, {now})
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at

-- name: get
SELECT * FROM offload_queues WHERE name = :name

-- name: list
SELECT * FROM offload_queues ORDER BY name

-- name: limits_upsert
INSERT INTO offload_task_limits (task, concurrency, rate_count, rate_period, keyed, updated_at)
VALUES (:task, :concurrency, :rate_count, :rate_period, :keyed, {now})
ON CONFLICT (task) DO UPDATE SET concurrency = excluded.concurrency,
    rate_count = excluded.rate_count, rate_period = excluded.rate_period,
    keyed = excluded.keyed, updated_at = excluded.updated_at

-- name: limits_delete
DELETE FROM offload_task_limits WHERE task = :task

-- name: limits_list
SELECT * FROM offload_task_limits ORDER BY task

-- name: due
j.state <> 'running' AND j.run_at <= {now}

-- name: stats
-- Per queue and task with unfinished jobs: how long the oldest due job has waited, and the
-- due jobs a full concurrency limit holds back (running jobs counted per queue, and per
-- task or per task and key, as the claim counts them); the caller sums them per queue.
-- One scan groups the jobs by queue, task and key first, so that the limits are looked up
-- per group, not per job. Rate limits are left out: that would count every bucket's starts
-- in its window.
WITH grouped AS (
    SELECT j.queue, j.task, j.limit_key, sum(CASE WHEN {due} THEN 1 ELSE 0 END) AS due,
        min(CASE WHEN {due} THEN j.run_at END) AS oldest
    FROM (  -- the claim index's jobs, then the running index's (schema 17)
        SELECT queue, task, limit_key, state, run_at FROM offload_jobs
        WHERE {queued_states}
        UNION ALL
        SELECT queue, task, limit_key, state, run_at FROM offload_jobs
        WHERE state = 'running') AS j
    GROUP BY j.queue, j.task, j.limit_key
), running_queue AS (
    SELECT queue, count(*) AS n FROM offload_jobs WHERE state = 'running' GROUP BY queue
), running_task AS (
    SELECT r.task, CASE WHEN l.keyed THEN coalesce(r.limit_key, '') ELSE '' END AS k,
        count(*) AS n
    FROM offload_jobs AS r JOIN offload_task_limits AS l ON l.task = r.task
    WHERE r.state = 'running' AND l.concurrency IS NOT NULL
    GROUP BY r.task, CASE WHEN l.keyed THEN coalesce(r.limit_key, '') ELSE '' END
)
SELECT g.queue, g.task, l.task IS NOT NULL AS limited, {now} - min(g.oldest) AS oldest,
    sum(CASE WHEN coalesce(rq.n, 0) >= q.concurrency OR coalesce(rt.n, 0) >= l.concurrency
        THEN g.due ELSE 0 END) AS held
FROM grouped AS g
LEFT JOIN offload_queues AS q ON q.name = g.queue
LEFT JOIN running_queue AS rq ON rq.queue = g.queue
LEFT JOIN offload_task_limits AS l ON l.task = g.task
LEFT JOIN running_task AS rt ON rt.task = g.task
    AND rt.k = CASE WHEN l.keyed THEN coalesce(g.limit_key, '') ELSE '' END
GROUP BY g.queue, g.task, l.task

-- name: drain
-- A queue's drain rate: the completions per second the live workers measured for it.
SELECT r.key AS queue, sum(r.value) AS rate
FROM offload_workers AS w JOIN json_each(w.rates) AS r
WHERE w.heartbeat_at >= {now} - :lost_after
GROUP BY r.key
