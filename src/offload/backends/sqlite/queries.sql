-- Named queries of the SQLite backend. {now} is the current time in epoch seconds;
-- {job_columns} the column list the shared decoder reads. Lists arrive as JSON text.

-- name: schema_exists
SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'offload_schema'

-- name: schema_version
SELECT max(version) FROM offload_schema

-- name: schema_record
INSERT INTO offload_schema (version, applied_at) VALUES (:version, {now})

-- name: now
SELECT {now}

-- name: job_insert
-- One job; it runs at :run_at (epoch seconds) if given, else :delay seconds from now.
INSERT INTO offload_jobs (task, queue, args, kwargs, priority, state, max_attempts, run_at,
    enqueued_at, unique_key, idempotency_key, group_key, meta)
VALUES (:task, :queue, :args, :kwargs, :priority,
    CASE WHEN coalesce(:run_at, {now} + :delay) > {now} THEN 'scheduled' ELSE 'available' END,
    :max_attempts, coalesce(:run_at, {now} + :delay), {now},
    :unique_key, :idempotency_key, :group_key, :meta)
RETURNING id

-- name: job_insert_many
-- Many jobs in one statement from a JSON array of row objects.
INSERT INTO offload_jobs (task, queue, args, kwargs, priority, state, max_attempts, run_at,
    enqueued_at, unique_key, idempotency_key, group_key, meta)
SELECT value ->> 'task', value ->> 'queue', value ->> 'args', value ->> 'kwargs',
    value ->> 'priority',
    CASE WHEN coalesce(value ->> 'run_at', {now} + (value ->> 'delay')) > {now}
        THEN 'scheduled' ELSE 'available' END,
    value ->> 'max_attempts', coalesce(value ->> 'run_at', {now} + (value ->> 'delay')), {now},
    value ->> 'unique_key', value ->> 'idempotency_key', value ->> 'group_key', value ->> 'meta'
FROM json_each(:rows)
ORDER BY key
RETURNING id

-- name: job_insert_batch
-- Many jobs of one template; :payloads is a JSON array of [args, kwargs] pairs, one per job,
-- each payload as JSON text in a string (PostgreSQL's json cannot take \u0000 apart).
INSERT INTO offload_jobs (task, queue, args, kwargs, priority, state, max_attempts, run_at,
    enqueued_at, unique_key, idempotency_key, group_key, meta)
SELECT :task, :queue, p.value ->> 0, p.value ->> 1, :priority,
    CASE WHEN coalesce(:run_at, {now} + :delay) > {now} THEN 'scheduled' ELSE 'available' END,
    :max_attempts, coalesce(:run_at, {now} + :delay), {now},
    :unique_key, :idempotency_key, :group_key, :meta
FROM json_each(:payloads) AS p
ORDER BY p.key
RETURNING id

-- name: job_claim
-- Take due jobs of one queue in priority order; the attempt number is the fencing token.
UPDATE offload_jobs
SET state = 'running', attempt = attempt + 1, worker = :worker,
    started_at = {now}, lease_until = {now} + :lease
WHERE id IN (
    SELECT id FROM offload_jobs
    WHERE queue = :queue AND state IN ('available', 'scheduled', 'retrying') AND run_at <= {now}
    ORDER BY priority DESC, run_at, id
    LIMIT :limit)
RETURNING {job_columns}

-- name: job_heartbeat
-- Renew every listed lease still held by this worker in one statement.
UPDATE offload_jobs AS j
SET lease_until = {now} + :lease
FROM (SELECT value ->> 'id' AS id, value ->> 'attempt' AS attempt FROM json_each(:leases)) AS l
-- +j.state: look rows up by id, not by scanning every running job
WHERE j.id = l.id AND j.attempt = l.attempt AND j.worker = :worker AND +j.state = 'running'
RETURNING id, cancel_requested

-- name: job_progress
UPDATE offload_jobs AS j
SET progress = p.progress
FROM (SELECT value ->> 'id' AS id, value ->> 'attempt' AS attempt,
             value ->> 'progress' AS progress
      FROM json_each(:items)) AS p
WHERE j.id = p.id AND j.attempt = p.attempt AND j.worker = :worker AND +j.state = 'running'

-- name: job_finish
-- Record many outcomes at once; rows whose lease was taken over are left alone.
UPDATE offload_jobs AS j
SET state = o.state,
    result = o.result,
    errors = CASE WHEN o.error IS NULL THEN j.errors
             ELSE json_insert(j.errors, '$[#]', json(o.error)) END,
    run_at = CASE WHEN o.state = 'retrying' THEN {now} + o.delay ELSE j.run_at END,
    finished_at = CASE WHEN o.state = 'retrying' THEN NULL ELSE {now} END,
    lease_until = NULL
FROM (SELECT value ->> 'id' AS id, value ->> 'attempt' AS attempt, value ->> 'state' AS state,
             value ->> 'result' AS result, value ->> 'error' AS error,
             value ->> 'delay' AS delay
      FROM json_each(:items)) AS o
WHERE j.id = o.id AND j.attempt = o.attempt AND j.worker = :worker AND +j.state = 'running'
RETURNING id

-- name: job_release
-- Give held jobs back untouched: the attempt they were claimed with is not spent.
UPDATE offload_jobs AS j
SET state = 'available', attempt = j.attempt - 1, lease_until = NULL, started_at = NULL,
    worker = NULL
FROM (SELECT value ->> 'id' AS id, value ->> 'attempt' AS attempt FROM json_each(:leases)) AS l
-- +j.state: look rows up by id, not by scanning every running job
WHERE j.id = l.id AND j.attempt = l.attempt AND j.worker = :worker AND +j.state = 'running'
RETURNING id, queue

-- name: job_get
SELECT {job_columns} FROM offload_jobs WHERE id = :id

-- name: job_list
SELECT {job_columns} FROM offload_jobs
WHERE (:queue IS NULL OR queue = :queue)
  AND (:state IS NULL OR state = :state)
  AND (:task IS NULL OR task = :task)
  AND (:before_id IS NULL OR id < :before_id)
ORDER BY id DESC
LIMIT :limit

-- name: job_cancel
-- Queued jobs end at once; a running job gets a stop request its worker acts on.
UPDATE offload_jobs
SET state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
    finished_at = CASE WHEN state = 'running' THEN finished_at ELSE {now} END,
    cancel_requested = 1
WHERE id = :id
  AND state IN ('waiting', 'scheduled', 'available', 'retrying', 'shed', 'running')
RETURNING {job_columns}

-- name: job_retry
UPDATE offload_jobs
SET state = 'available', attempt = 0, run_at = {now}, finished_at = NULL, started_at = NULL,
    lease_until = NULL, worker = NULL, result = NULL, cancel_requested = 0
WHERE id = :id AND state IN ('dead', 'cancelled', 'shed')
RETURNING {job_columns}

-- name: job_rescue
-- A lease that ran out means the worker died or hung: the attempt counts, the job runs again.
UPDATE offload_jobs
SET state = CASE WHEN cancel_requested THEN 'cancelled'
                 WHEN attempt >= max_attempts THEN 'dead' ELSE 'available' END,
    finished_at = CASE WHEN cancel_requested OR attempt >= max_attempts THEN {now} END,
    run_at = {now},
    errors = json_insert(errors, '$[#]', json_object(
        'at', {now}, 'attempt', attempt, 'type', 'WorkerLost',
        'message', 'lease expired: worker ' || coalesce(worker, '?') || ' stopped renewing it',
        'traceback', NULL)),
    lease_until = NULL
WHERE state = 'running' AND lease_until < {now}
RETURNING id, queue, state

-- name: job_prune
DELETE FROM offload_jobs
WHERE state = :state AND finished_at < {now} - :age

-- name: queue_counts
SELECT queue, state, count(*) FROM offload_jobs GROUP BY queue, state

-- name: worker_register
INSERT INTO offload_workers (id, host, pid, queues, concurrency, started_at, heartbeat_at, wake)
VALUES (:id, :host, :pid, :queues, :concurrency, {now}, {now}, :wake)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, wake = excluded.wake

-- name: worker_heartbeat
UPDATE offload_workers SET heartbeat_at = {now} WHERE id = :id

-- name: worker_unregister
DELETE FROM offload_workers WHERE id = :id

-- name: worker_list
SELECT {worker_columns} FROM offload_workers ORDER BY started_at

-- name: wake_addresses
-- Workers heard from in the last minute; a SIGKILLed worker's address is soon dropped.
SELECT wake FROM offload_workers WHERE wake IS NOT NULL AND heartbeat_at > {now} - 60

-- name: worker_prune
DELETE FROM offload_workers WHERE heartbeat_at < {now} - :age

-- name: schedule_upsert
-- Declared schedules are written at scheduler start; pause state and progress are kept.
INSERT INTO offload_schedules (name, cron, tz, task, misfire, last_tick, checked_at, created_at)
VALUES (:name, :cron, :tz, :task, :misfire, {now}, {now}, {now})
ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, tz = excluded.tz,
    task = excluded.task, misfire = excluded.misfire

-- name: schedule_lock
-- The write transaction (BEGIN IMMEDIATE) already serialises schedulers on SQLite.
SELECT last_tick, checked_at, paused, {now} FROM offload_schedules WHERE name = :name

-- name: schedule_advance
UPDATE offload_schedules
SET last_tick = max(last_tick, coalesce(:last_tick, last_tick)), checked_at = :checked_at,
    last_job_id = coalesce(:last_job_id, last_job_id)
WHERE name = :name

-- name: cron_tick_insert
-- Returns a row only for the one scheduler that records this tick first.
INSERT INTO offload_cron_ticks (schedule, tick_at, job_id) VALUES (:schedule, :tick_at, 0)
ON CONFLICT DO NOTHING
RETURNING schedule

-- name: cron_tick_job
UPDATE offload_cron_ticks SET job_id = :job_id WHERE schedule = :schedule AND tick_at = :tick_at

-- name: schedule_pause
UPDATE offload_schedules SET paused = :paused WHERE name = :name RETURNING name

-- name: schedule_list
SELECT s.name, s.cron, s.tz, s.task, s.misfire, s.paused, s.last_tick, s.checked_at,
    s.last_job_id, j.state
FROM offload_schedules AS s LEFT JOIN offload_jobs AS j ON j.id = s.last_job_id
ORDER BY s.name

-- name: cron_tick_prune
DELETE FROM offload_cron_ticks WHERE tick_at < {now} - :age
