-- Named queries of the PostgreSQL backend. :name placeholders become psycopg's %(name)s;
-- lists arrive as JSON text. now() is the transaction's start: one instant per statement.
-- A statement that makes jobs available also NOTIFYs (the queue name only) in the same
-- statement, so it needs no extra round trip and fires at commit, whoever's transaction it is.

-- name: schema_exists
SELECT 1 FROM pg_catalog.pg_tables
WHERE tablename = 'offload_schema' AND schemaname = current_schema()

-- name: schema_version
SELECT max(version) FROM offload_schema

-- name: schema_lock
-- Serialises concurrent `offload migrate` runs; released at commit (safe behind PgBouncer).
SELECT pg_advisory_xact_lock(hashtext('offload_migrate'))

-- name: schema_record
INSERT INTO offload_schema (version) VALUES (:version)

-- name: now
SELECT now()

-- name: job_insert
-- One job; it runs at :run_at (epoch seconds) if given, else :delay seconds from now.
WITH ins AS (
INSERT INTO offload_jobs (task, queue, args, kwargs, priority, state, max_attempts, run_at,
    enqueued_at, unique_key, idempotency_key, group_key, meta)
VALUES (:task, :queue, :args::json, :kwargs::json, :priority,
    CASE WHEN coalesce(to_timestamp(:run_at::float8), now() + make_interval(secs => :delay))
        > now() THEN 'scheduled' ELSE 'available' END,
    :max_attempts,
    coalesce(to_timestamp(:run_at::float8), now() + make_interval(secs => :delay)), now(),
    :unique_key, :idempotency_key, :group_key, :meta::json)
RETURNING id, queue)
SELECT id, pg_notify('offload_jobs', queue) FROM ins

-- name: job_insert_many
-- Many jobs in one statement from a JSON array of row objects (a function scan keeps order).
WITH ins AS (
INSERT INTO offload_jobs (task, queue, args, kwargs, priority, state, max_attempts, run_at,
    enqueued_at, unique_key, idempotency_key, group_key, meta)
SELECT r.task, r.queue, r.args::json, r.kwargs::json, r.priority,
    CASE WHEN coalesce(to_timestamp(r.run_at), now() + make_interval(secs => r.delay)) > now()
        THEN 'scheduled' ELSE 'available' END,
    r.max_attempts, coalesce(to_timestamp(r.run_at), now() + make_interval(secs => r.delay)),
    now(),
    r.unique_key, r.idempotency_key, r.group_key, r.meta::json
FROM json_to_recordset(:rows::json) AS r(task text, queue text, args text, kwargs text,
    priority int, max_attempts int, delay float8, run_at float8, unique_key text,
    idempotency_key text,
    group_key text, meta text)
RETURNING id, queue),
woke AS (SELECT pg_notify('offload_jobs', queue) FROM (SELECT DISTINCT queue FROM ins) AS q)
SELECT id FROM ins, (SELECT count(*) FROM woke) AS w

-- name: job_insert_batch
-- Many jobs of one template; :payloads is a JSON array of [args, kwargs] pairs, one per job,
-- each payload as JSON text in a string (PostgreSQL's json cannot take \u0000 apart).
WITH ins AS (
INSERT INTO offload_jobs (task, queue, args, kwargs, priority, state, max_attempts, run_at,
    enqueued_at, unique_key, idempotency_key, group_key, meta)
SELECT :task, :queue, (p.value ->> 0)::json, (p.value ->> 1)::json, :priority,
    CASE WHEN coalesce(to_timestamp(:run_at::float8), now() + make_interval(secs => :delay))
        > now() THEN 'scheduled' ELSE 'available' END,
    :max_attempts,
    coalesce(to_timestamp(:run_at::float8), now() + make_interval(secs => :delay)), now(),
    :unique_key, :idempotency_key, :group_key, :meta::json
FROM json_array_elements(:payloads::json) WITH ORDINALITY AS p(value, n)
ORDER BY p.n
RETURNING id)
SELECT id FROM ins, (SELECT pg_notify('offload_jobs', :queue)) AS woke

-- name: job_claim
-- Take due jobs of one queue in priority order, skipping rows other claimers hold.
WITH picked AS (
    SELECT id FROM offload_jobs
    WHERE queue = :queue AND state IN ('available', 'scheduled', 'retrying') AND run_at <= now()
    ORDER BY priority DESC, run_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED)
UPDATE offload_jobs AS j
SET state = 'running', attempt = j.attempt + 1, worker = :worker,
    started_at = now(), lease_until = now() + make_interval(secs => :lease)
FROM picked WHERE j.id = picked.id
RETURNING {job_columns_j}

-- name: job_heartbeat
-- Renew every listed lease still held by this worker in one statement.
UPDATE offload_jobs AS j
SET lease_until = now() + make_interval(secs => :lease)
FROM json_to_recordset(:leases::json) AS l(id bigint, attempt int)
WHERE j.id = l.id AND j.attempt = l.attempt AND j.worker = :worker AND j.state = 'running'
  AND j.id = ANY(:ids)  -- lets the planner use the primary key
RETURNING j.id, j.cancel_requested

-- name: job_progress
UPDATE offload_jobs AS j
SET progress = p.progress::json
FROM json_to_recordset(:items::json) AS p(id bigint, attempt int, progress text)
WHERE j.id = p.id AND j.attempt = p.attempt AND j.worker = :worker AND j.state = 'running'
  AND j.id = ANY(:ids)

-- name: job_finish
-- Record many outcomes at once; rows whose lease was taken over are left alone.
UPDATE offload_jobs AS j
SET state = o.state,
    result = o.result::json,
    errors = CASE WHEN o.error IS NULL THEN j.errors
             ELSE j.errors || jsonb_build_array(o.error::jsonb) END,
    run_at = CASE WHEN o.state = 'retrying' THEN now() + make_interval(secs => o.delay)
             ELSE j.run_at END,
    finished_at = CASE WHEN o.state = 'retrying' THEN NULL ELSE now() END,
    lease_until = NULL
FROM json_to_recordset(:items::json) AS o(id bigint, attempt int, state text, result text,
    error text, delay float8)
WHERE j.id = o.id AND j.attempt = o.attempt AND j.worker = :worker AND j.state = 'running'
  AND j.id = ANY(:ids)
RETURNING j.id

-- name: job_release
-- Give held jobs back untouched: the attempt they were claimed with is not spent.
WITH released AS (
UPDATE offload_jobs AS j
SET state = 'available', attempt = j.attempt - 1, lease_until = NULL, started_at = NULL,
    worker = NULL
FROM json_to_recordset(:leases::json) AS l(id bigint, attempt int)
WHERE j.id = l.id AND j.attempt = l.attempt AND j.worker = :worker AND j.state = 'running'
  AND j.id = ANY(:ids)
RETURNING j.id, j.queue),
woke AS (SELECT pg_notify('offload_jobs', queue) FROM (SELECT DISTINCT queue FROM released) AS q)
SELECT id, queue FROM released, (SELECT count(*) FROM woke) AS w

-- name: job_get
SELECT {job_columns} FROM offload_jobs WHERE id = :id

-- name: job_list
SELECT {job_columns} FROM offload_jobs
WHERE (:queue::text IS NULL OR queue = :queue)
  AND (:state::text IS NULL OR state = :state)
  AND (:task::text IS NULL OR task = :task)
  AND (:before_id::bigint IS NULL OR id < :before_id)
ORDER BY id DESC
LIMIT :limit

-- name: job_cancel
-- Queued jobs end at once; a running job gets a stop request its worker acts on (the
-- NOTIFY wakes it to look).
WITH changed AS (
UPDATE offload_jobs
SET state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
    finished_at = CASE WHEN state = 'running' THEN finished_at ELSE now() END,
    cancel_requested = true
WHERE id = :id
  AND state IN ('waiting', 'scheduled', 'available', 'retrying', 'shed', 'running')
RETURNING {job_columns}),
woke AS (SELECT pg_notify('offload_jobs', queue) FROM changed WHERE state = 'running')
SELECT changed.* FROM changed, (SELECT count(*) FROM woke) AS w

-- name: job_retry
WITH changed AS (
UPDATE offload_jobs
SET state = 'available', attempt = 0, run_at = now(), finished_at = NULL, started_at = NULL,
    lease_until = NULL, worker = NULL, result = NULL, cancel_requested = false
WHERE id = :id AND state IN ('dead', 'cancelled', 'shed')
RETURNING {job_columns}),
woke AS (SELECT pg_notify('offload_jobs', queue) FROM changed)
SELECT changed.* FROM changed, (SELECT count(*) FROM woke) AS w

-- name: job_rescue
-- A lease that ran out means the worker died or hung: the attempt counts, the job runs again.
WITH rescued AS (
UPDATE offload_jobs
SET state = CASE WHEN cancel_requested THEN 'cancelled'
                 WHEN attempt >= max_attempts THEN 'dead' ELSE 'available' END,
    finished_at = CASE WHEN cancel_requested OR attempt >= max_attempts THEN now() END,
    run_at = now(),
    errors = errors || jsonb_build_array(jsonb_build_object(
        'at', extract(epoch FROM now()), 'attempt', attempt, 'type', 'WorkerLost',
        'message', 'lease expired: worker ' || coalesce(worker, '?') || ' stopped renewing it',
        'traceback', NULL)),
    lease_until = NULL
WHERE state = 'running' AND lease_until < now()
RETURNING id, queue, state),
woke AS (
    SELECT pg_notify('offload_jobs', queue)
    FROM (SELECT DISTINCT queue FROM rescued WHERE state = 'available') AS q)
SELECT id, queue, state FROM rescued, (SELECT count(*) FROM woke) AS w

-- name: job_prune
DELETE FROM offload_jobs
WHERE state = :state AND finished_at < now() - make_interval(secs => :age)

-- name: queue_counts
SELECT queue, state, count(*) FROM offload_jobs GROUP BY queue, state

-- name: worker_register
INSERT INTO offload_workers (id, host, pid, queues, concurrency, started_at, heartbeat_at, wake)
VALUES (:id, :host, :pid, :queues::json, :concurrency, now(), now(), :wake)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, wake = excluded.wake

-- name: worker_heartbeat
UPDATE offload_workers SET heartbeat_at = now() WHERE id = :id

-- name: worker_unregister
DELETE FROM offload_workers WHERE id = :id

-- name: worker_list
SELECT {worker_columns} FROM offload_workers ORDER BY started_at

-- name: worker_prune
DELETE FROM offload_workers WHERE heartbeat_at < now() - make_interval(secs => :age)

-- name: schedule_upsert
-- Declared schedules are written at scheduler start; pause state and progress are kept.
INSERT INTO offload_schedules (name, cron, tz, task, misfire, last_tick, checked_at, created_at)
VALUES (:name, :cron, :tz, :task, :misfire, now(), now(), now())
ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, tz = excluded.tz,
    task = excluded.task, misfire = excluded.misfire

-- name: schedule_lock
-- Row lock: schedulers deciding the same schedule's ticks take turns.
SELECT last_tick, checked_at, paused, now() FROM offload_schedules WHERE name = :name
FOR UPDATE

-- name: schedule_advance
UPDATE offload_schedules
SET last_tick = greatest(last_tick, coalesce(:last_tick::timestamptz, last_tick)),
    checked_at = :checked_at,
    last_job_id = coalesce(:last_job_id::bigint, last_job_id)
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
DELETE FROM offload_cron_ticks WHERE tick_at < now() - make_interval(secs => :age)
