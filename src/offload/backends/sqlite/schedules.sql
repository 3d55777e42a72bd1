-- Named queries of the schedules area (SQLite).

-- name: upsert
-- Declared schedules are written at scheduler start; pause state and progress are kept.
INSERT INTO offload_schedules (name, cron, tz, task, misfire, last_tick, checked_at, created_at)
VALUES (:name, :cron, :tz, :task, :misfire, {now}, {now}, {now})
ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, tz = excluded.tz,
    task = excluded.task, misfire = excluded.misfire

-- name: lock
-- The write transaction (BEGIN IMMEDIATE) already serialises schedulers on SQLite.
SELECT last_tick, checked_at, paused, {now} AS db_now FROM offload_schedules WHERE name = :name

-- name: advance
UPDATE offload_schedules
SET last_tick = max(last_tick, coalesce(:last_tick, last_tick)), checked_at = :checked_at,
    last_job_id = coalesce(:last_job_id, last_job_id)
WHERE name = :name

-- name: tick_insert
-- Returns a row only for the one scheduler that records this tick first.
INSERT INTO offload_cron_ticks (schedule, tick_at, job_id) VALUES (:schedule, :tick_at, 0)
ON CONFLICT DO NOTHING
RETURNING schedule

-- name: tick_job
UPDATE offload_cron_ticks SET job_id = :job_id WHERE schedule = :schedule AND tick_at = :tick_at

-- name: pause
UPDATE offload_schedules SET paused = :paused WHERE name = :name RETURNING name

-- name: list
SELECT s.name, s.cron, s.tz, s.task, s.misfire, s.paused, s.last_tick, s.checked_at,
    s.last_job_id, j.state AS last_state
FROM offload_schedules AS s LEFT JOIN offload_jobs AS j ON j.id = s.last_job_id
ORDER BY s.name

-- name: tick_prune
DELETE FROM offload_cron_ticks WHERE tick_at < {now} - :age
