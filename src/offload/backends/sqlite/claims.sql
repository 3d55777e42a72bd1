-- Named queries of the claims area (SQLite): a worker's leases. Every write is fenced by
-- (id, attempt, worker): a worker whose lease was taken over changes nothing.
-- +j.state below: look rows up by id, not by scanning every running job.

-- name: claim
-- Take due jobs of one queue in sort_at order (priority aged by waiting); the attempt
-- number is the fencing token. The plain claim, for queues without limits: its guard
-- (one primary-key probe, rows a limit counts skipped) makes it take nothing a limit must
-- count, so a worker whose view of the policies is stale can only be late, never over.
UPDATE offload_jobs
SET state = 'running', attempt = attempt + 1, worker = :worker,
    started_at = {at}, lease_until = {at} + :lease
WHERE id IN (
    SELECT id FROM offload_jobs
    WHERE queue = :queue AND {queued_states} AND run_at <= {at}
      AND limit_key IS NULL AND group_key IS NULL  -- batch tasks' jobs go by group_claim
      AND NOT EXISTS (SELECT 1 FROM offload_queues AS q WHERE q.name = :queue
                      AND (q.paused OR q.concurrency IS NOT NULL OR q.rate_count IS NOT NULL))
    ORDER BY sort_at, id
    LIMIT :limit)
RETURNING {job_columns}, sort_at

-- name: probe
-- Does the queue need the limited claim (paused or limited, or a due job a task limit
-- counts)? Asked when a worker's view of it is stale, or a plain claim took nothing.
SELECT EXISTS (SELECT 1 FROM offload_queues AS q WHERE q.name = :queue
               AND (q.paused OR q.concurrency IS NOT NULL OR q.rate_count IS NOT NULL))
    OR EXISTS (SELECT 1 FROM offload_jobs
               WHERE queue = :queue AND {queued_states}
                 AND run_at <= {at} AND limit_key IS NOT NULL) AS limited

-- name: limited_begin
-- The limited claim's clock, read once: every statement of the claim uses this time.
-- (BEGIN IMMEDIATE has serialised the claim with every other write.)
SELECT {at} AS now

-- name: limited_pick
-- Which due jobs of the queue may start now under every limit, in claim order. Reads the
-- first :window due jobs (the caller widens it, up to a bound, while keys at their limit
-- fill it); within them a (task, key) group at its limit is skipped, so jobs of other keys
-- behind it are taken (no head-of-line blocking). Concurrency counts running rows (a
-- rescued lease frees its slot). A rate counts the starts logged after now - period: the
-- log holds one row per claim and bucket with its starts `n` and the bucket's running
-- `total`, so a window's count is two index seeks (last total - total before the window's
-- first row), whatever the rate. Every row (one with id NULL when none is picked) also
-- carries the queue's rate bucket, how many due jobs were read, and, when a rate holds
-- jobs back, when the oldest start in its window leaves it (a lower bound on the next
-- start: waking then is never too late).
WITH
win AS (
    SELECT id, task, limit_key, sort_at FROM offload_jobs
    WHERE queue = :queue AND {queued_states} AND run_at <= :now
      AND group_key IS NULL
    ORDER BY sort_at, id LIMIT :window),
cand AS (
    SELECT w.id, w.sort_at, w.task, t.task IS NOT NULL AS limited,
           CASE WHEN t.keyed THEN w.limit_key ELSE '' END AS key
    FROM win AS w
    LEFT JOIN offload_task_limits AS t ON t.task = w.task AND w.limit_key IS NOT NULL),
grp AS (
    SELECT c.task, c.key, t.keyed, t.concurrency, t.rate_count, t.rate_period,
        CASE WHEN t.rate_count IS NOT NULL THEN json_array('task', c.task, c.key) END AS bucket,
        count(*) AS waiting
    FROM cand AS c JOIN offload_task_limits AS t ON t.task = c.task
    WHERE c.limited
    GROUP BY c.task, c.key),
used AS (
    SELECT g.*,
        (SELECT count(*) FROM offload_jobs AS r
         WHERE r.state = 'running' AND r.task = g.task AND r.limit_key IS NOT NULL
           AND (NOT g.keyed OR r.limit_key = g.key)) AS running,
        {window_count} AS started,
        {window_oldest} AS oldest
    FROM grp AS g),
room AS (
    SELECT task, key, bucket, rate_period,
        min(coalesce(concurrency - running, :limit), coalesce(rate_count - started, :limit)) AS room,
        CASE WHEN rate_count - started < waiting
             THEN coalesce(oldest, :now) + rate_period END AS next_at
    FROM used),
ok AS (
    SELECT c.id, c.sort_at, r.bucket, r.rate_period
    FROM (SELECT cand.*, row_number() OVER (PARTITION BY task, key ORDER BY sort_at, id) AS n
          FROM cand) AS c
    LEFT JOIN room AS r ON r.task = c.task AND r.key = c.key
    WHERE NOT c.limited OR c.n <= r.room),
qb AS (
    SELECT q.*, json_array('queue', q.name) AS bucket
    FROM offload_queues AS q WHERE q.name = :queue),
qs AS (
    SELECT g.*, {window_count} AS started, {window_oldest} AS oldest FROM qb AS g),
q AS (
    SELECT paused, rate_period, CASE WHEN rate_count IS NOT NULL THEN bucket END AS bucket,
        min(coalesce(concurrency - (SELECT count(*) FROM offload_jobs
                                    WHERE state = 'running' AND queue = :queue), :limit),
            coalesce(rate_count - started, :limit)) AS room,
        CASE WHEN rate_count - started < (SELECT count(*) FROM ok)
             THEN coalesce(oldest, :now) + rate_period END AS next_at
    FROM qs),
picked AS (
    SELECT id, bucket, rate_period FROM (
        SELECT ok.*, row_number() OVER (ORDER BY sort_at, id) AS n FROM ok) AS o
    WHERE n <= coalesce((SELECT CASE WHEN paused THEN 0 ELSE room END FROM q), :limit))
SELECT p.id, p.bucket, p.rate_period AS period, s.*
FROM (SELECT (SELECT bucket FROM q) AS queue_bucket, (SELECT rate_period FROM q) AS queue_period,
        (SELECT min(t) FROM (SELECT next_at AS t FROM room UNION ALL SELECT next_at FROM q))
            AS next_at,
        (SELECT count(*) FROM win) AS seen, :now AS clock) AS s
LEFT JOIN picked AS p ON true

-- name: window_count
-- Starts logged in a bucket's window (g.bucket, g.rate_period), for limited_pick.
coalesce((SELECT total FROM offload_rate_starts AS s WHERE s.bucket = g.bucket
          ORDER BY s.at DESC, s.total DESC LIMIT 1)
         - (SELECT total - n FROM offload_rate_starts AS s
            WHERE s.bucket = g.bucket AND s.at > :now - g.rate_period
            ORDER BY s.at, s.total LIMIT 1), 0)

-- name: window_oldest
-- When the oldest start in a bucket's window was logged, for limited_pick.
(SELECT at FROM offload_rate_starts AS s
 WHERE s.bucket = g.bucket AND s.at > :now - g.rate_period ORDER BY s.at, s.total LIMIT 1)

-- name: limited_take
-- Start the picked jobs (still waiting: a cancel in between wins).
UPDATE offload_jobs
SET state = 'running', attempt = attempt + 1, worker = :worker,
    started_at = :now, lease_until = :now + :lease
WHERE id IN (SELECT value FROM json_each(:picked))
  AND +state IN ('available', 'scheduled', 'retrying')  -- +: by id, not a scan of a state
RETURNING {job_columns}, sort_at

-- name: rate_log
-- Log a claim's starts: per bucket one row of `n` starts carrying the bucket's new running
-- total, stamped no earlier than the bucket's last row (so rows in a window are the newest
-- ones; a later stamp only makes the limit count a start for longer).
INSERT INTO offload_rate_starts (bucket, at, n, total)
SELECT b.value ->> 'bucket',
    max(:now, coalesce(last.at, :now)),
    b.value ->> 'n',
    coalesce(last.total, 0) + (b.value ->> 'n')
FROM json_each(:buckets) AS b
LEFT JOIN offload_rate_starts AS last ON last.rowid = (
    SELECT s.rowid FROM offload_rate_starts AS s WHERE s.bucket = b.value ->> 'bucket'
    ORDER BY s.at DESC, s.total DESC LIMIT 1)

-- name: rate_prune
-- Forget rows of these buckets that are out of every window: older than the period, plus a
-- minute to spare.
DELETE FROM offload_rate_starts
WHERE rowid IN (
    SELECT s.rowid FROM offload_rate_starts AS s
    JOIN json_each(:buckets) AS b ON s.bucket = b.value ->> 'bucket'
    WHERE s.at < :now - (b.value ->> 'period') - 60)

-- name: group_stats
-- The groups of batch task :task with jobs waiting, one row each: `first_due` (least
-- run_at), `head` (least sort_at of its due jobs) and `filled` (at least :size due).
-- Groups are found by hopping from key to key along an index (one seek each), and each
-- figure is a seek or at most :size index entries: a claim never reads every waiting job.
keys (k) AS (
    SELECT min(group_key) FROM offload_jobs
    WHERE queue = :queue AND task = :task AND group_key IS NOT NULL
      AND {queued_states}
    UNION ALL
    SELECT (SELECT min(group_key) FROM offload_jobs
            WHERE queue = :queue AND task = :task AND group_key > keys.k
              AND {queued_states})
    FROM keys WHERE k IS NOT NULL),
grp AS (
    SELECT k AS group_key,
        (SELECT min(run_at) FROM offload_jobs
         WHERE queue = :queue AND task = :task AND group_key = k
           AND {queued_states}) AS first_due,
        (SELECT sort_at FROM offload_jobs
         WHERE queue = :queue AND task = :task AND group_key = k
           AND {queued_states} AND run_at <= {at}
         ORDER BY sort_at LIMIT 1) AS head,
        (SELECT sort_at FROM offload_jobs
         WHERE queue = :queue AND task = :task AND group_key = k
           AND {queued_states} AND run_at <= {at}
         ORDER BY sort_at LIMIT 1 OFFSET :size - 1) IS NOT NULL AS filled
    FROM keys WHERE k IS NOT NULL)

-- name: group_claim
-- Take up to :size due jobs of one group of batch task :task, in one statement. The task's
-- due jobs form groups by group_key; a group is ready once it holds :size of them or its
-- oldest has been due :max_wait seconds, and the ready group whose head (least sort_at:
-- priority aged by waiting) sorts first goes, its jobs in claim order. Nothing from a
-- paused queue, nor from a rate-limited one (its rate counts single starts); a queue
-- concurrency limit counts each job taken as one running, so a call takes no more than
-- the room left.
WITH RECURSIVE {group_stats},
pick AS (
    SELECT group_key FROM grp
    WHERE first_due <= {at} AND (filled OR first_due <= {at} - :max_wait)
    ORDER BY head, group_key LIMIT 1),
room AS (
    SELECT CASE WHEN q.paused OR q.rate_count IS NOT NULL THEN 0
                WHEN q.concurrency IS NOT NULL
                THEN max(q.concurrency - (SELECT count(*) FROM offload_jobs
                                          WHERE state = 'running' AND queue = :queue), 0)
           END AS n
    FROM offload_queues AS q WHERE q.name = :queue)
UPDATE offload_jobs
SET state = 'running', attempt = attempt + 1, worker = :worker,
    started_at = {at}, lease_until = {at} + :lease
WHERE id IN (
    SELECT id FROM offload_jobs
    WHERE queue = :queue AND task = :task AND group_key = (SELECT group_key FROM pick)
      AND {queued_states}
      AND +run_at <= {at}  -- +: read the group in claim order, not by due time, then sort
    ORDER BY sort_at, id
    LIMIT min(:size, coalesce((SELECT n FROM room), :size)))
RETURNING {job_columns}, sort_at

-- name: group_wait
-- Seconds until the group of batch task :task whose oldest job is due first has been
-- waiting :max_wait (ready then, if not before by size); NULL when no job is due.
WITH RECURSIVE {group_stats}
SELECT min(first_due) + :max_wait - {at} AS wait FROM grp WHERE first_due <= {at}

-- name: heartbeat
-- Renew every listed lease still held by this worker in one statement.
UPDATE offload_jobs AS j
SET lease_until = {at} + :lease
FROM (SELECT value ->> 'id' AS id, value ->> 'attempt' AS attempt FROM json_each(:leases)) AS l
WHERE j.id = l.id AND j.attempt = l.attempt AND j.worker = :worker AND +j.state = 'running'
RETURNING id, cancel_requested

-- name: progress
-- Store reported progress; the jobs whose progress changed (each a progress event).
UPDATE offload_jobs AS j
SET progress = p.progress
FROM (SELECT value ->> 'id' AS id, value ->> 'attempt' AS attempt,
             value ->> 'progress' AS progress
      FROM json_each(:items)) AS p
WHERE j.id = p.id AND j.attempt = p.attempt AND j.worker = :worker AND +j.state = 'running'
  AND j.progress IS NOT p.progress
RETURNING id

-- name: finish
-- Record many outcomes at once; rows whose lease was taken over are left alone. With
-- :plain, jobs others wait for are left too (children > 0: the caller ends those in a
-- transaction that releases their children; see the PostgreSQL file for why).
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
  AND (NOT :plain OR j.children = 0)
RETURNING id, queue, limit_key IS NOT NULL AS counted, state, children > 0 AS has_children

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
RETURNING id, queue, state, children > 0 AS has_children
