-- Named queries of the sweep area (SQLite): shedding waiting jobs and bringing them back.
-- A queue's depth is its jobs not yet started (available, scheduled, retrying), counted
-- by the claim index. Writers take turns on SQLite, so each statement sees the last.

-- name: depth
-- A queue's jobs not yet started, the measure of both watermarks, counted up to one past
-- shed_depth: that is exact for every test below, and a backlog of millions costs no more.
(SELECT count(*) FROM (
    SELECT 1 FROM offload_jobs AS d
    WHERE d.queue = :queue AND {queued_states}
    LIMIT (SELECT coalesce(c.shed_depth + 1, 0) FROM offload_queues AS c
           WHERE c.name = :queue)) AS capped)

-- name: shed
-- Above its shed watermark, a queue's waiting jobs below its shed priority move to shed.
UPDATE offload_jobs SET state = 'shed', lease_until = NULL
WHERE queue = :queue AND {queued_states}
  AND priority < (SELECT q.shed_priority FROM offload_queues AS q
                  WHERE q.name = :queue AND q.shed_depth IS NOT NULL AND {depth} > q.shed_depth)
RETURNING id

-- name: lock
-- Readmissions take turns by the write lock every SQLite transaction holds: nothing to do.
SELECT name FROM offload_queues WHERE name = :queue

-- name: readmit
-- At or under its resume watermark, a queue takes back its oldest shed jobs, as many as
-- fit under the shed watermark; jobs of tasks with a sweep hook (:hooked) wait for it.
UPDATE offload_jobs
SET state = CASE WHEN run_at > {at} THEN 'scheduled' ELSE 'available' END
WHERE id IN (
    SELECT id FROM offload_jobs
    WHERE queue = :queue AND state = 'shed' AND {rare_states}
      AND task NOT IN (SELECT value FROM json_each(:hooked))
    ORDER BY enqueued_at, id
    LIMIT coalesce((SELECT max(q.shed_depth - {depth}, 0) FROM offload_queues AS q
                    WHERE q.name = :queue AND q.shed_depth IS NOT NULL
                      AND {depth} <= q.resume_depth), 0))
RETURNING id, queue, state

-- name: take
-- At or under its resume watermark, a queue's oldest shed jobs of one task with a sweep
-- hook become the sweeper's, leased like a claim: no other replica's hook gets them.
UPDATE offload_jobs
SET state = 'running', attempt = attempt + 1, worker = :worker,
    started_at = {at}, lease_until = {at} + :lease
WHERE id IN (
    SELECT id FROM offload_jobs
    WHERE queue = :queue AND state = 'shed' AND {rare_states} AND task = :task
      AND EXISTS (SELECT 1 FROM offload_queues AS q WHERE q.name = :queue
                  AND q.shed_depth IS NOT NULL AND {depth} <= q.resume_depth)
    ORDER BY enqueued_at, id
    LIMIT :limit)
RETURNING {job_columns}

-- name: untake
-- A hook that failed gives its jobs back to shed untouched (their attempt is not spent).
UPDATE offload_jobs AS j
SET state = 'shed', attempt = j.attempt - 1, lease_until = NULL, started_at = NULL,
    worker = NULL
FROM (SELECT value ->> 'id' AS id, value ->> 'attempt' AS attempt FROM json_each(:leases)) AS l
WHERE j.id = l.id AND j.attempt = l.attempt AND j.worker = :worker AND +j.state = 'running'
RETURNING id
