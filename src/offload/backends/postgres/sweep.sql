-- Named queries of the sweep area (PostgreSQL): shedding waiting jobs and bringing them back.
-- The statements that run alone (shed, take, untake) write their jobs' events within the
-- statement (see claims.sql); readmit's transaction writes them with events.sql `written`.
-- A queue's depth is its jobs not yet started (available, scheduled, retrying), counted
-- by the claim index. Every scheduler replica may run these at once: each is atomic.

-- name: depth
-- A queue's jobs not yet started, the measure of both watermarks, counted up to one past
-- shed_depth: that is exact for every test below, and a backlog of millions costs no more.
(SELECT count(*) FROM (
    SELECT 1 FROM offload_jobs AS d
    WHERE d.queue = :queue AND d.state IN ('available', 'scheduled', 'retrying')
    LIMIT (SELECT coalesce(c.shed_depth + 1, 0) FROM offload_queues AS c
           WHERE c.name = :queue)) AS capped)

-- name: shed
-- Above its shed watermark, a queue's waiting jobs below its shed priority move to shed.
-- A row a concurrent sweep or claim changed first no longer matches the state test.
WITH moved AS (
    UPDATE offload_jobs AS j SET state = 'shed', lease_until = NULL
    FROM offload_queues AS q
    WHERE q.name = :queue AND q.shed_depth IS NOT NULL AND {depth} > q.shed_depth
      AND j.queue = :queue AND j.state IN ('available', 'scheduled', 'retrying')
      AND j.priority < q.shed_priority
    RETURNING j.id, j.task, j.queue, j.channel, j.state, j.attempt),
told AS (
    {shed_events})
SELECT id, {wake_events} AS woken FROM moved

-- name: shed_events
-- The `shed` events of jobs `moved` back to shed, in id order.
INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)
SELECT 'shed', id, task, queue, channel, state, attempt, '{}' FROM moved ORDER BY id

-- name: lock
-- Readmissions of one queue take turns (held to the commit), so that two replicas'
-- counts of the room left under the watermark never add up past it.
SELECT name FROM offload_queues WHERE name = :queue FOR UPDATE

-- name: readmit
-- At or under its resume watermark, a queue takes back its oldest shed jobs, as many as
-- fit under the shed watermark; jobs of tasks with a sweep hook (:hooked) wait for it.
-- Counted after `lock` (a new snapshot), so a replica that went first is seen.
WITH room AS (
    SELECT greatest(q.shed_depth - {depth}, 0) AS n FROM offload_queues AS q
    WHERE q.name = :queue AND q.shed_depth IS NOT NULL AND {depth} <= q.resume_depth),
picked AS (
    SELECT id FROM offload_jobs
    WHERE queue = :queue AND state = 'shed'
      AND task NOT IN (SELECT json_array_elements_text(:hooked::json))
    ORDER BY enqueued_at, id
    LIMIT coalesce((SELECT n FROM room), 0)
    FOR UPDATE SKIP LOCKED)
UPDATE offload_jobs AS j
SET state = CASE WHEN j.run_at > {at} THEN 'scheduled' ELSE 'available' END
FROM picked WHERE j.id = picked.id
RETURNING j.id, j.queue, j.state

-- name: take
-- At or under its resume watermark, a queue's oldest shed jobs of one task with a sweep
-- hook become the sweeper's, leased like a claim: no other replica's hook gets them.
WITH picked AS (
    SELECT id FROM offload_jobs
    WHERE queue = :queue AND state = 'shed' AND task = :task
      AND EXISTS (SELECT 1 FROM offload_queues AS q WHERE q.name = :queue
                  AND q.shed_depth IS NOT NULL AND {depth} <= q.resume_depth)
    ORDER BY enqueued_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED),
took AS (
    UPDATE offload_jobs AS j
    SET state = 'running', attempt = j.attempt + 1, worker = :worker,
        started_at = {at}, lease_until = {at} + make_interval(secs => :lease)
    FROM picked WHERE j.id = picked.id
    RETURNING {job_columns_j}),
told AS (
    INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)
    SELECT 'started', id, task, queue, channel, state, attempt, '{}' FROM took ORDER BY id)
SELECT took.*, {wake_events} AS woken FROM took

-- name: untake
-- A hook that failed gives its jobs back to shed untouched (their attempt is not spent).
WITH moved AS (
    UPDATE offload_jobs AS j
    SET state = 'shed', attempt = j.attempt - 1, lease_until = NULL, started_at = NULL,
        worker = NULL
    FROM json_to_recordset(:leases::json) AS l(id bigint, attempt int)
    WHERE j.id = l.id AND j.attempt = l.attempt AND j.worker = :worker AND j.state = 'running'
      AND j.id = ANY(:ids)
    RETURNING j.id, j.task, j.queue, j.channel, j.state, j.attempt),
told AS (
    {shed_events})
SELECT id, {wake_events} AS woken FROM moved
