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
WHERE queue = :name AND state IN ('available', 'scheduled', 'retrying')

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
