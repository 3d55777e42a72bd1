-- Named queries of the claims area (PostgreSQL): a worker's leases. Every write is fenced
-- by (id, attempt, worker): a worker whose lease was taken over changes nothing.

-- name: claim
-- Take due jobs of one queue in sort_at order (priority aged by waiting), skipping rows
-- other claimers hold.
WITH picked AS (
    SELECT id FROM offload_jobs
    WHERE queue = :queue AND state IN ('available', 'scheduled', 'retrying') AND run_at <= {at}
    ORDER BY sort_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED)
UPDATE offload_jobs AS j
SET state = 'running', attempt = j.attempt + 1, worker = :worker,
    started_at = {at}, lease_until = {at} + make_interval(secs => :lease)
FROM picked WHERE j.id = picked.id
RETURNING {job_columns_j}

-- name: heartbeat
-- Renew every listed lease still held by this worker in one statement.
UPDATE offload_jobs AS j
SET lease_until = {at} + make_interval(secs => :lease)
FROM json_to_recordset(:leases::json) AS l(id bigint, attempt int)
WHERE j.id = l.id AND j.attempt = l.attempt AND j.worker = :worker AND j.state = 'running'
  AND j.id = ANY(:ids)  -- lets the planner use the primary key
RETURNING j.id, j.cancel_requested

-- name: progress
UPDATE offload_jobs AS j
SET progress = p.progress::json
FROM json_to_recordset(:items::json) AS p(id bigint, attempt int, progress text)
WHERE j.id = p.id AND j.attempt = p.attempt AND j.worker = :worker AND j.state = 'running'
  AND j.id = ANY(:ids)

-- name: finish
-- Record many outcomes at once; rows whose lease was taken over are left alone.
UPDATE offload_jobs AS j
SET state = o.state,
    result = o.result::json,
    errors = CASE WHEN o.error IS NULL THEN j.errors
             ELSE j.errors || jsonb_build_array(o.error::jsonb) END,
    run_at = CASE WHEN o.state = 'retrying' THEN {at} + make_interval(secs => o.delay)
             ELSE j.run_at END,
    -- a retry keeps the job's head start (sort_at - run_at) from its new run_at
    sort_at = CASE WHEN o.state = 'retrying'
              THEN {at} + make_interval(secs => o.delay) - (j.run_at - j.sort_at)
              ELSE j.sort_at END,
    finished_at = CASE WHEN o.state = 'retrying' THEN NULL ELSE {at} END,
    lease_until = NULL
FROM json_to_recordset(:items::json) AS o(id bigint, attempt int, state text, result text,
    error text, delay float8)
WHERE j.id = o.id AND j.attempt = o.attempt AND j.worker = :worker AND j.state = 'running'
  AND j.id = ANY(:ids)
RETURNING j.id

-- name: release
-- Give held jobs back untouched: the attempt they were claimed with is not spent.
UPDATE offload_jobs AS j
SET state = 'available', attempt = j.attempt - 1, lease_until = NULL, started_at = NULL,
    worker = NULL
FROM json_to_recordset(:leases::json) AS l(id bigint, attempt int)
WHERE j.id = l.id AND j.attempt = l.attempt AND j.worker = :worker AND j.state = 'running'
  AND j.id = ANY(:ids)
RETURNING j.id, j.queue

-- name: rescue
-- A lease that ran out means the worker died or hung: the attempt counts, the job runs again.
UPDATE offload_jobs
SET state = CASE WHEN cancel_requested THEN 'cancelled'
                 WHEN attempt >= max_attempts THEN 'dead' ELSE 'available' END,
    finished_at = CASE WHEN cancel_requested OR attempt >= max_attempts THEN {at} END,
    run_at = {at}, sort_at = {at} - (run_at - sort_at),
    errors = errors || jsonb_build_array(jsonb_build_object(
        'at', extract(epoch FROM {at}), 'attempt', attempt, 'type', 'WorkerLost',
        'message', 'lease expired: worker ' || coalesce(worker, '?') || ' stopped renewing it',
        'traceback', NULL)),
    lease_until = NULL
WHERE state = 'running' AND lease_until < {at}
RETURNING id, queue, state
