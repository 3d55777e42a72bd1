-- Named queries of the claims area (SQLite): a worker's leases. Every write is fenced by
-- (id, attempt, worker): a worker whose lease was taken over changes nothing.
-- +j.state below: look rows up by id, not by scanning every running job.

-- name: claim
-- Take due jobs of one queue in sort_at order (priority aged by waiting); the attempt
-- number is the fencing token.
UPDATE offload_jobs
SET state = 'running', attempt = attempt + 1, worker = :worker,
    started_at = {at}, lease_until = {at} + :lease
WHERE id IN (
    SELECT id FROM offload_jobs
    WHERE queue = :queue AND state IN ('available', 'scheduled', 'retrying') AND run_at <= {at}
    ORDER BY sort_at, id
    LIMIT :limit)
RETURNING {job_columns}

-- name: heartbeat
-- Renew every listed lease still held by this worker in one statement.
UPDATE offload_jobs AS j
SET lease_until = {at} + :lease
FROM (SELECT value ->> 'id' AS id, value ->> 'attempt' AS attempt FROM json_each(:leases)) AS l
WHERE j.id = l.id AND j.attempt = l.attempt AND j.worker = :worker AND +j.state = 'running'
RETURNING id, cancel_requested

-- name: progress
UPDATE offload_jobs AS j
SET progress = p.progress
FROM (SELECT value ->> 'id' AS id, value ->> 'attempt' AS attempt,
             value ->> 'progress' AS progress
      FROM json_each(:items)) AS p
WHERE j.id = p.id AND j.attempt = p.attempt AND j.worker = :worker AND +j.state = 'running'

-- name: finish
-- Record many outcomes at once; rows whose lease was taken over are left alone.
UPDATE offload_jobs AS j
SET state = o.state,
    result = o.result,
    errors = CASE WHEN o.error IS NULL THEN j.errors
             ELSE json_insert(j.errors, '$[#]', json(o.error)) END,
    run_at = CASE WHEN o.state = 'retrying' THEN {at} + o.delay ELSE j.run_at END,
    -- a retry keeps the job's head start (sort_at - run_at) from its new run_at
    sort_at = CASE WHEN o.state = 'retrying' THEN {at} + o.delay - (j.run_at - j.sort_at)
              ELSE j.sort_at END,
    finished_at = CASE WHEN o.state = 'retrying' THEN NULL ELSE {at} END,
    lease_until = NULL
FROM (SELECT value ->> 'id' AS id, value ->> 'attempt' AS attempt, value ->> 'state' AS state,
             value ->> 'result' AS result, value ->> 'error' AS error,
             value ->> 'delay' AS delay
      FROM json_each(:items)) AS o
WHERE j.id = o.id AND j.attempt = o.attempt AND j.worker = :worker AND +j.state = 'running'
RETURNING id

-- name: release
-- Give held jobs back untouched: the attempt they were claimed with is not spent.
UPDATE offload_jobs AS j
SET state = 'available', attempt = j.attempt - 1, lease_until = NULL, started_at = NULL,
    worker = NULL
FROM (SELECT value ->> 'id' AS id, value ->> 'attempt' AS attempt FROM json_each(:leases)) AS l
WHERE j.id = l.id AND j.attempt = l.attempt AND j.worker = :worker AND +j.state = 'running'
RETURNING id, queue

-- name: rescue
-- A lease that ran out means the worker died or hung: the attempt counts, the job runs again.
UPDATE offload_jobs
SET state = CASE WHEN cancel_requested THEN 'cancelled'
                 WHEN attempt >= max_attempts THEN 'dead' ELSE 'available' END,
    finished_at = CASE WHEN cancel_requested OR attempt >= max_attempts THEN {at} END,
    run_at = {at}, sort_at = {at} - (run_at - sort_at),
    errors = json_insert(errors, '$[#]', json_object(
        'at', {at}, 'attempt', attempt, 'type', 'WorkerLost',
        'message', 'lease expired: worker ' || coalesce(worker, '?') || ' stopped renewing it',
        'traceback', NULL)),
    lease_until = NULL
WHERE state = 'running' AND lease_until < {at}
RETURNING id, queue, state
