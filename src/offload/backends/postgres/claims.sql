-- Named queries of the claims area (PostgreSQL): a worker's leases. Every write is fenced
-- by (id, attempt, worker): a worker whose lease was taken over changes nothing.
-- The statements that change jobs' states on their own (no transaction around them: the
-- claims, progress, finish, release) write the events of the jobs they change within the
-- statement (a data-modifying WITH: no round trip more than the change), as events.sql
-- `written` would, in id order, and NOTIFY event listeners (`wake_events`, run once the
-- first row is returned: not when nothing changed). The limited claim's and rescue's
-- transactions write theirs the same way, or with `written` (offload.backends.sql.claims).

-- name: claim
-- Take due jobs of one queue in sort_at order (priority aged by waiting), skipping rows
-- other claimers hold. The plain claim, for queues without limits: its guard (one
-- primary-key probe, rows a limit counts skipped) makes it take nothing a limit must
-- count, so a worker whose view of the policies is stale can only be late, never over.
WITH picked AS (
    SELECT id FROM offload_jobs
    WHERE queue = :queue AND state IN ('available', 'scheduled', 'retrying') AND run_at <= {at}
      AND limit_key IS NULL AND group_key IS NULL  -- batch tasks' jobs go by group_claim
      AND NOT EXISTS (SELECT 1 FROM offload_queues AS q WHERE q.name = :queue
                      AND (q.paused OR q.concurrency IS NOT NULL OR q.rate_count IS NOT NULL))
    ORDER BY sort_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED),
{take_picked}

-- name: take_picked
-- The end of a plain or group claim: the jobs `picked` become running under :worker's lease
-- and get their `started` events; event listeners are woken if any was taken.
took AS (
    UPDATE offload_jobs AS j
    SET state = 'running', attempt = j.attempt + 1, worker = :worker,
        started_at = {at}, lease_until = {at} + make_interval(secs => :lease)
    FROM picked WHERE j.id = picked.id
    RETURNING {job_columns_j}, j.sort_at),
told AS (
    {started_events})
SELECT took.*, {wake_events} AS woken FROM took

-- name: started_events
-- The `started` events of the jobs a claim took (`took`), in id order.
INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)
SELECT 'started', id, task, queue, channel, state, attempt, '{}' FROM took ORDER BY id

-- name: probe
-- Does the queue need the limited claim (paused or limited, or a due job a task limit
-- counts)? Asked when a worker's view of it is stale, or a plain claim took nothing.
SELECT EXISTS (SELECT 1 FROM offload_queues AS q WHERE q.name = :queue
               AND (q.paused OR q.concurrency IS NOT NULL OR q.rate_count IS NOT NULL))
    OR EXISTS (SELECT 1 FROM offload_jobs
               WHERE queue = :queue AND state IN ('available', 'scheduled', 'retrying')
                 AND run_at <= {at} AND limit_key IS NOT NULL) AS limited

-- name: limited_begin
-- Serialise limited claims (of every queue: a task's limits span queues) on one
-- transaction-level advisory lock. The statements after this one take fresh snapshots, so
-- they count every claim committed before the lock. Their plans are the prepared generic
-- ones (planning limited_pick anew for its values takes longer than running it).
SELECT pg_advisory_xact_lock(1868981868) AS locked,
    set_config('plan_cache_mode', 'force_generic_plan', true) AS plans

-- name: limited_pick
-- Which due jobs of the queue may start now under every limit, in claim order. Reads the
-- first :window due jobs (the caller widens it, up to a bound, while keys at their limit
-- fill it); within them a (task, key) group at its limit is skipped, so jobs of other keys
-- behind it are taken (no head-of-line blocking). Concurrency counts running rows (a
-- rescued lease frees its slot). A rate counts the starts logged after now - period: the
-- log holds one row per claim and bucket with its starts `n` and the bucket's running
-- `total`, so a window's count is two index seeks (last total - total before the window's
-- first row), whatever the rate. Every row (one with id NULL when none is taken) also
-- carries how many due jobs were read and, when a rate holds jobs back, when the oldest
-- start in its window leaves it (a lower bound on the next start: waking then is never
-- too late). Its clock is read within the statement, so after its snapshot: a job it starts
-- in the slot of one that just finished is stamped after that finish (now(), the
-- transaction's start, would come before it: a claim queues for the lock, and a wider
-- pick of the same claim sees finishes committed since the first).
WITH
clock AS MATERIALIZED (SELECT coalesce(:now::timestamptz, clock_timestamp()) AS now),
win AS (
    SELECT id, task, limit_key, sort_at FROM offload_jobs
    WHERE queue = :queue AND state IN ('available', 'scheduled', 'retrying')
      AND run_at <= (SELECT now FROM clock) AND group_key IS NULL
    ORDER BY sort_at, id LIMIT :window),
cand AS (
    SELECT w.id, w.sort_at, w.task, t.task IS NOT NULL AS limited,
           CASE WHEN t.keyed THEN w.limit_key ELSE '' END AS key
    FROM win AS w
    LEFT JOIN offload_task_limits AS t ON t.task = w.task AND w.limit_key IS NOT NULL),
grp AS (
    SELECT c.task, c.key, t.keyed, t.concurrency, t.rate_count, t.rate_period,
        CASE WHEN t.rate_count IS NOT NULL
             THEN json_build_array('task', c.task, c.key)::text END AS bucket,
        count(*) AS waiting
    FROM cand AS c JOIN offload_task_limits AS t ON t.task = c.task
    WHERE c.limited
    GROUP BY c.task, c.key, t.keyed, t.concurrency, t.rate_count, t.rate_period),
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
        least(coalesce(concurrency - running, :limit),
              coalesce(rate_count - started, :limit)) AS room,
        CASE WHEN rate_count - started < waiting
             THEN coalesce(oldest, (SELECT now FROM clock)) + make_interval(secs => rate_period)
        END AS next_at
    FROM used),
ok AS (
    SELECT c.id, c.sort_at, r.bucket, r.rate_period
    FROM (SELECT cand.*, row_number() OVER (PARTITION BY task, key ORDER BY sort_at, id) AS n
          FROM cand) AS c
    LEFT JOIN room AS r ON r.task = c.task AND r.key = c.key
    WHERE NOT c.limited OR c.n <= r.room),
qb AS (
    SELECT q.*, json_build_array('queue', q.name)::text AS bucket
    FROM offload_queues AS q WHERE q.name = :queue),
qs AS (
    SELECT g.*, {window_count} AS started, {window_oldest} AS oldest FROM qb AS g),
q AS (
    SELECT paused, rate_period, CASE WHEN rate_count IS NOT NULL THEN bucket END AS bucket,
        least(coalesce(concurrency - (SELECT count(*) FROM offload_jobs
                                      WHERE state = 'running' AND queue = :queue), :limit),
              coalesce(rate_count - started, :limit)) AS room,
        CASE WHEN rate_count - started < (SELECT count(*) FROM ok)
             THEN coalesce(oldest, (SELECT now FROM clock)) + make_interval(secs => rate_period)
        END AS next_at
    FROM qs),
picked AS (
    SELECT id, bucket, rate_period FROM (
        SELECT ok.*, row_number() OVER (ORDER BY sort_at, id) AS n FROM ok) AS o
    WHERE n <= coalesce((SELECT CASE WHEN paused THEN 0 ELSE room END FROM q), :limit)),
-- PostgreSQL writes within a WITH: the pick also starts the jobs (still waiting: a cancel
-- in between wins) and logs the starts a rate counts, per bucket one row of `n` starts
-- carrying the bucket's new running total, stamped no earlier than the bucket's last row
-- (so the rows in a window are its newest; a later stamp only counts a start for longer).
-- Rows out of every window (older than the period, plus a minute to spare) go.
took AS (
    UPDATE offload_jobs AS j
    SET state = 'running', attempt = j.attempt + 1, worker = :worker,
        started_at = (SELECT now FROM clock),
        lease_until = (SELECT now FROM clock) + make_interval(secs => :lease)
    FROM picked
    -- By primary key only: `state || ''` keeps the planner off the claim index.
    WHERE j.id = picked.id AND j.state || '' IN ('available', 'scheduled', 'retrying')
    RETURNING {job_columns_j}, j.sort_at, picked.bucket, picked.rate_period),
told AS (
    {started_events}),
starts AS (
    SELECT bucket, count(*) AS n, max(rate_period) AS period FROM took
    WHERE bucket IS NOT NULL GROUP BY bucket
    UNION ALL
    SELECT bucket, (SELECT count(*) FROM took), rate_period FROM q
    WHERE bucket IS NOT NULL AND EXISTS (SELECT 1 FROM took)),
logged AS (
    INSERT INTO offload_rate_starts (bucket, at, n, total)
    SELECT b.bucket, greatest((SELECT now FROM clock), last.at), b.n, coalesce(last.total, 0) + b.n
    FROM starts AS b LEFT JOIN LATERAL (
        SELECT s.at, s.total FROM offload_rate_starts AS s WHERE s.bucket = b.bucket
        ORDER BY s.at DESC, s.total DESC LIMIT 1) AS last ON true),
pruned AS (
    DELETE FROM offload_rate_starts AS s USING starts AS b
    WHERE s.bucket = b.bucket
      AND s.at < (SELECT now FROM clock) - make_interval(secs => b.period + 60))
SELECT t.*, s.*
FROM (SELECT (SELECT min(t) FROM (SELECT next_at AS t FROM room UNION ALL SELECT next_at FROM q)
              AS n) AS next_at,
             (SELECT count(*) FROM win) AS seen, (SELECT now FROM clock) AS clock,
             CASE WHEN EXISTS (SELECT FROM took) THEN {wake_events} END AS woken) AS s
LEFT JOIN took AS t ON true

-- name: window_count
-- Starts logged in a bucket's window (g.bucket, g.rate_period), for limited_pick.
coalesce((SELECT total FROM offload_rate_starts AS s WHERE s.bucket = g.bucket
          ORDER BY s.at DESC, s.total DESC LIMIT 1)
         - (SELECT total - n FROM offload_rate_starts AS s
            WHERE s.bucket = g.bucket
              AND s.at > (SELECT now FROM clock) - make_interval(secs => g.rate_period)
            ORDER BY s.at, s.total LIMIT 1), 0)

-- name: window_oldest
-- When the oldest start in a bucket's window was logged, for limited_pick.
(SELECT at FROM offload_rate_starts AS s
 WHERE s.bucket = g.bucket AND s.at > (SELECT now FROM clock) - make_interval(secs => g.rate_period)
 ORDER BY s.at, s.total LIMIT 1)

-- name: group_stats
-- The groups of batch task :task with jobs waiting, one row each: `first_due` (least
-- run_at), `head` (least sort_at of its due jobs) and `filled` (at least :size due).
-- Groups are found by hopping from key to key along an index (one seek each), and each
-- figure is a seek or at most :size index entries: a claim never reads every waiting job.
keys (k) AS (
    SELECT min(group_key) FROM offload_jobs
    WHERE queue = :queue AND task = :task AND group_key IS NOT NULL
      AND state IN ('available', 'scheduled', 'retrying')
    UNION ALL
    SELECT (SELECT min(group_key) FROM offload_jobs
            WHERE queue = :queue AND task = :task AND group_key > keys.k
              AND state IN ('available', 'scheduled', 'retrying'))
    FROM keys WHERE k IS NOT NULL),
grp AS (
    SELECT k AS group_key,
        (SELECT min(run_at) FROM offload_jobs
         WHERE queue = :queue AND task = :task AND group_key = k
           AND state IN ('available', 'scheduled', 'retrying')) AS first_due,
        (SELECT sort_at FROM offload_jobs
         WHERE queue = :queue AND task = :task AND group_key = k
           AND state IN ('available', 'scheduled', 'retrying') AND run_at <= {at}
         ORDER BY sort_at LIMIT 1) AS head,
        (SELECT sort_at FROM offload_jobs
         WHERE queue = :queue AND task = :task AND group_key = k
           AND state IN ('available', 'scheduled', 'retrying') AND run_at <= {at}
         ORDER BY sort_at LIMIT 1 OFFSET :size - 1) IS NOT NULL AS filled
    FROM keys WHERE k IS NOT NULL)

-- name: group_begin
-- Serialise group claims of one batch task (a transaction-level advisory lock on its
-- name), so two workers never split a group by picking it at once; the claim after this
-- statement takes a fresh snapshot and sees every claim committed before the lock.
SELECT pg_advisory_xact_lock(1868981869, hashtext(:task)) AS locked

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
    WHERE first_due <= {at} AND (filled OR first_due <= {at} - make_interval(secs => :max_wait))
    ORDER BY head, group_key LIMIT 1),
room AS (
    SELECT CASE WHEN q.paused OR q.rate_count IS NOT NULL THEN 0
                WHEN q.concurrency IS NOT NULL
                THEN greatest(q.concurrency - (SELECT count(*) FROM offload_jobs
                                               WHERE state = 'running' AND queue = :queue), 0)
           END AS n
    FROM offload_queues AS q WHERE q.name = :queue),
picked AS (
    SELECT id FROM offload_jobs
    WHERE queue = :queue AND task = :task AND group_key = (SELECT group_key FROM pick)
      AND state IN ('available', 'scheduled', 'retrying') AND run_at <= {at}
    ORDER BY sort_at, id
    LIMIT least(:size, coalesce((SELECT n FROM room), :size))
    FOR UPDATE SKIP LOCKED),
{take_picked}

-- name: group_wait
-- Seconds until the group of batch task :task whose oldest job is due first has been
-- waiting :max_wait (ready then, if not before by size); NULL when no job is due.
WITH RECURSIVE {group_stats}
SELECT extract(epoch FROM min(first_due) + make_interval(secs => :max_wait) - {at}) AS wait
FROM grp WHERE first_due <= {at}

-- name: heartbeat
-- Renew every listed lease still held by this worker in one statement.
UPDATE offload_jobs AS j
SET lease_until = {at} + make_interval(secs => :lease)
FROM json_to_recordset(:leases::json) AS l(id bigint, attempt int)
WHERE j.id = l.id AND j.attempt = l.attempt AND j.worker = :worker AND j.state = 'running'
  AND j.id = ANY(:ids)  -- lets the planner use the primary key
RETURNING j.id, j.cancel_requested

-- name: progress
-- Store reported progress; the jobs whose progress changed, each with a progress event.
WITH changed AS (
    UPDATE offload_jobs AS j
    SET progress = p.progress::json
    FROM json_to_recordset(:items::json) AS p(id bigint, attempt int, progress text)
    WHERE j.id = p.id AND j.attempt = p.attempt AND j.worker = :worker AND j.state = 'running'
      AND j.id = ANY(:ids) AND j.progress::text IS DISTINCT FROM p.progress
    RETURNING j.id, j.task, j.queue, j.channel, j.state, j.attempt, j.progress),
told AS (
    INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)
    SELECT 'progress', id, task, queue, channel, state, attempt, progress
    FROM changed ORDER BY id)
SELECT id, {wake_events} AS woken FROM changed

-- name: finish
-- Record many outcomes at once; rows whose lease was taken over are left alone. With
-- :plain, jobs others wait for are left too (children > 0): run as its own transaction
-- (autocommit), this statement has no room for their release, so the caller ends those in
-- a transaction that releases their children. An insert of an edge to a job holds its row
-- lock until it commits; this statement then re-reads the row and sees children > 0.
-- Each job's event is its new state, a retrying or dead job's carrying its last error.
WITH done AS (
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
  AND j.id = ANY(:ids) AND (NOT :plain::boolean OR j.children = 0)
RETURNING j.id, j.queue, j.limit_key IS NOT NULL AS counted, j.state,
    j.children > 0 AS has_children, j.task, j.channel, j.attempt,
    CASE WHEN j.state IN ('retrying', 'dead')
         THEN json_build_object('error', left(j.errors -> -1 ->> 'message', 500))
         ELSE '{}'::json END AS data),
told AS (
    INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)
    SELECT state, id, task, queue, channel, state, attempt, data FROM done ORDER BY id)
SELECT id, queue, counted, state, has_children, {wake_events} AS woken FROM done

-- name: release
-- Give held jobs back untouched: the attempt they were claimed with is not spent. Each is
-- `requeued`.
WITH back AS (
    UPDATE offload_jobs AS j
    SET state = 'available', attempt = j.attempt - 1, lease_until = NULL, started_at = NULL,
        worker = NULL
    FROM json_to_recordset(:leases::json) AS l(id bigint, attempt int)
    WHERE j.id = l.id AND j.attempt = l.attempt AND j.worker = :worker AND j.state = 'running'
      AND j.id = ANY(:ids)
    RETURNING j.id, j.task, j.queue, j.channel, j.state, j.attempt),
told AS (
    INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)
    SELECT 'requeued', id, task, queue, channel, state, attempt, '{}' FROM back ORDER BY id)
SELECT id, queue, {wake_events} AS woken FROM back

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
RETURNING id, queue, state, children > 0 AS has_children
