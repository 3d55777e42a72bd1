-- Named queries of the jobs area (SQLite). An insert runs at :run_at (epoch seconds) if
-- given, else :delay seconds from now. Inserts of jobs with unique, idempotency or replace
-- keys take the keyed path (offload.backends.sql.jobs): key_lock, the holders, then a
-- plain insert of the new jobs and supersede.

-- name: insert_one
-- No RETURNING: SQLite would build an ephemeral table for it on every enqueue (13% of the
-- statement's instructions); the cursor's lastrowid is the id (SQLiteBackend.inserted_id).
INSERT INTO offload_jobs (task, queue, args, kwargs, priority, state, max_attempts, run_at,
    enqueued_at, unique_key, idempotency_key, group_key, meta, sort_at, limit_key,
    replace_key, channel)
SELECT :task, :queue, :args, :kwargs, :priority,
    CASE WHEN :shed THEN 'shed'
        WHEN coalesce(:run_at, {now} + :delay) > {now} THEN 'scheduled' ELSE 'available' END,
    :max_attempts, coalesce(:run_at, {now} + :delay), {now},
    :unique_key, :idempotency_key, :group_key, :meta,
    coalesce(:run_at, {now} + :delay) - {head_start}, :limit_key, :replace_key, :channel
WHERE {unbounded}

-- name: insert_many
-- Many jobs of one spec; :payloads is a JSON array with one element a job: its args text
-- alone (a string: its kwargs are {}), an [args, kwargs] pair, or when :wide a whole
-- Payload tuple [args, kwargs, idempotency_key, limit_key, unique_key, group_key,
-- replace_key] (a `->>` parses the whole element each time: read the keys only when some
-- job has one). Each job's id is the sequence's last plus its place in the array, so ids
-- ascend with payload order with no sort and no RETURNING (each builds a temporary table,
-- a fifth of the statement's time): the last one is the connection's last insert rowid
-- (the `enqueued` trigger's inserts into offload_events do not change it), read with no
-- statement more.
INSERT INTO offload_jobs (id, task, queue, args, kwargs, priority, state, max_attempts,
    run_at, enqueued_at, unique_key, idempotency_key, group_key, meta, sort_at, limit_key,
    replace_key, channel)
SELECT (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'offload_jobs')
        + p.key + 1,
    :task, :queue, CASE WHEN p.type = 'text' THEN p.value ELSE p.value ->> 0 END,
    CASE WHEN p.type = 'text' THEN '{}' ELSE p.value ->> 1 END, :priority,
    CASE WHEN :shed THEN 'shed'
        WHEN coalesce(:run_at, {now} + :delay) > {now} THEN 'scheduled' ELSE 'available' END,
    :max_attempts, coalesce(:run_at, {now} + :delay), {now},
    CASE WHEN :wide THEN p.value ->> 4 END, CASE WHEN :wide THEN p.value ->> 2 END,
    CASE WHEN :wide THEN p.value ->> 5 END, :meta,
    coalesce(:run_at, {now} + :delay) - {head_start},
    CASE WHEN :wide THEN p.value ->> 3 END, CASE WHEN :wide THEN p.value ->> 6 END, :channel
FROM json_each(:payloads) AS p
WHERE {unbounded}

-- name: key_lock
-- The keyed path's first statement. The backend's own transactions are BEGIN IMMEDIATE,
-- which already makes producers take turns; in a caller's deferred transaction this write
-- (of nothing) takes the write lock before the holders are read, so they are read under
-- it (a transaction that read an older snapshot gets SQLITE_BUSY here, not a duplicate).
UPDATE offload_jobs SET state = state WHERE id IS NULL

-- name: unique_holders
-- The newest job holding each unique key in :keys: in one of :states, and enqueued within
-- the last :period seconds if given.
SELECT unique_key AS key, max(id) AS id FROM offload_jobs
WHERE unique_key IN (SELECT value FROM json_each(:keys))
  AND state IN (SELECT value FROM json_each(:states))
  AND (:period IS NULL OR enqueued_at > {now} - :period)
GROUP BY unique_key

-- name: idempotent_holders
-- The jobs enqueued with an idempotency key of :keys within the last :retention seconds,
-- oldest first (the newest one names the key), with what they were enqueued with.
SELECT idempotency_key AS key, id, task, args, kwargs FROM offload_jobs
WHERE idempotency_key IN (SELECT value FROM json_each(:keys))
  AND enqueued_at > {now} - :retention
ORDER BY id

-- name: supersede
-- Job :id was stored with replace key :key: cancel the older queued jobs carrying it (ids
-- ascend in order of storing: producers of one replace key take turns under key_lock), and
-- with :running ask running ones to stop (once: the first successor stays recorded).
UPDATE offload_jobs
SET state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
    finished_at = CASE WHEN state = 'running' THEN finished_at ELSE {now} END,
    cancel_requested = 1, superseded_by = :id
WHERE replace_key = :key AND id < :id
  -- offload_jobs_replace's predicate, so that SQLite uses it (schema 17)
  AND {live_states}
  AND (state <> 'running' OR (:running AND superseded_by IS NULL))
RETURNING id, queue, state, children > 0 AS has_children

-- name: get
SELECT {job_columns} FROM offload_jobs WHERE id = :id

-- name: list
-- A page of the jobs matching a JobFilter, newest first, ids up to :below (a range of the
-- primary key: a catch-all "before_id IS NULL OR id < before_id" scans from the top).
SELECT {job_columns} FROM offload_jobs
WHERE {filter}
  AND id <= :below
ORDER BY id DESC
LIMIT :limit

-- name: ids
-- A bulk walk's batch: ids of matching jobs in :states (a JSON array), newest first: a
-- walk down the primary key (likely(), as in where_queue), never a sort of all of them.
SELECT id FROM offload_jobs
WHERE likely(state IN (SELECT value FROM json_each(:states))) AND {filter}
  AND id <= :below
ORDER BY id DESC
LIMIT :limit

-- name: count
SELECT count(*) FROM offload_jobs WHERE {filter}

-- name: counts
-- Jobs per queue and state, each part read from the index that holds its states (schema
-- 15): the rarer states from offload_jobs_state, the available jobs from the claim index
-- (which holds scheduled and retrying ones too, and their state), the running ones from the
-- running index (as many as the workers' slots). The state macros are those indexes'
-- predicates (schema 19); `state = 'available'` implies the claim index's by itself
-- (SQLite sees that a term implies one side of an OR).
SELECT queue, state, count(*) AS n FROM offload_jobs
WHERE {rare_states}
GROUP BY queue, state
UNION ALL
SELECT queue, state, count(*) AS n FROM offload_jobs
WHERE state = 'available'
GROUP BY queue, state
UNION ALL
SELECT queue, state, count(*) AS n FROM offload_jobs
WHERE state = 'running'
GROUP BY queue, state

-- name: census
-- What a metrics scrape reads, in one statement: jobs per queue and state, and per group
-- the wait of the oldest job that is due and not started (a scheduled or retrying job
-- whose time came counts as waiting, as the claim takes it). As in counts, each part reads
-- the index that holds its states, and only the states that wait read the rows (run_at).
SELECT queue, state, count(*) AS n, NULL AS oldest FROM offload_jobs
WHERE {rare_states} AND state <> 'scheduled' AND state <> 'retrying'
GROUP BY queue, state
UNION ALL
SELECT queue, state, count(*) AS n, {now} - min(CASE WHEN {waits} THEN run_at END) AS oldest
FROM offload_jobs
WHERE {rare_states} AND (state = 'scheduled' OR state = 'retrying')
GROUP BY queue, state
UNION ALL
SELECT queue, state, count(*) AS n, {now} - min(CASE WHEN {waits} THEN run_at END) AS oldest
FROM offload_jobs
WHERE state = 'available'
GROUP BY queue, state
UNION ALL
SELECT queue, state, count(*) AS n, NULL AS oldest FROM offload_jobs
WHERE state = 'running'
GROUP BY queue, state

-- name: waits
{queued_states} AND run_at <= {now}

-- name: cancel
-- Queued jobs end at once; a running job gets a stop request its worker acts on.
UPDATE offload_jobs
SET state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
    finished_at = CASE WHEN state = 'running' THEN finished_at ELSE {now} END,
    cancel_requested = 1
WHERE id = :id
  AND {live_states}
RETURNING {job_columns}

-- name: retry
-- Attempts keep counting (the error list stays readable) with :budget more allowed; a
-- job whose run_at is still ahead (a cancelled delayed job) keeps its delay.
UPDATE offload_jobs
SET state = CASE WHEN run_at > {now} THEN 'scheduled' ELSE 'available' END,
    max_attempts = attempt + coalesce(:budget, max_attempts),
    run_at = max(run_at, {now}), sort_at = max(run_at, {now}) - (run_at - sort_at),
    finished_at = NULL, started_at = NULL,
    lease_until = NULL, worker = NULL, result = NULL, cancel_requested = 0
WHERE id = :id AND state IN ('dead', 'cancelled', 'shed')
RETURNING {job_columns}

-- name: prune
-- The finished index's predicate repeated, so that a bound :state can use it (schema 17);
-- `+:state` as in where_state.
DELETE FROM offload_jobs
WHERE state = +:state AND {finished_states} AND finished_at < {now} - :age

-- name: where_ids
-- The parts of a JobFilter's condition, one fragment each: a listing, a count and the bulk
-- operations below put the parts given in place of {filter}, joined by AND (SqlJobs.where),
-- so that each shape of filter is a statement of its own whose plan can use an index (a
-- catch-all ":queue IS NULL OR queue = :queue" cannot).
id IN (SELECT value FROM json_each(:ids))

-- name: where_queue
-- likely(): without statistics (offload runs no ANALYZE) SQLite takes an equality on an
-- indexed column for a handful of rows, and would list a state through offload_jobs_state
-- and sort all of its jobs (seconds for a million succeeded ones); said to hold for most
-- jobs, a listing walks the primary key newest first and stops at the page's end, and a
-- count still reads the covering index.
likely(queue = :queue)

-- name: where_state
-- A state's condition repeats the predicate of the partial index that holds its jobs
-- (schema 17; spelt by the macros of schema 19): SQLite uses a partial index only for a
-- query whose WHERE has its terms, and a bound :state is none of them. This one for the states of offload_jobs_state,
-- where_state_available for the claim index's, where_state_running for offload_jobs_running.
-- `+:state`: SQLite would compare a plain :state's bound value with the comparisons of the
-- other indexes' predicates, prepare the statement anew for each state, and count the
-- finished states by offload_jobs_finished instead (as good, but a plan of its own).
likely(state = +:state) AND {rare_states}

-- name: where_state_available
likely(state = +:state) AND {queued_states}

-- name: where_state_running
likely(state = :state) AND state = 'running'

-- name: where_task
likely(task = :task)

-- name: where_before
-- Times compare with enqueued_at, the one time every job has, both sides to the
-- microsecond as Python reads them: a stored time given back as a bound then means itself.
-- The plain comparison first holds whenever the rounded one does, and turns most jobs
-- away without two calls of round().
enqueued_at < :before + 1e-6 AND round(enqueued_at, 6) < round(:before, 6)

-- name: where_after
enqueued_at >= :after - 1e-6 AND round(enqueued_at, 6) >= round(:after, 6)

-- name: where_error_type
-- The exception type of the job's last error entry (offload_jobs_error_type, an index of
-- the jobs with an error: this must say so for it to be used).
errors <> '[]' AND errors ->> '$[#-1].type' = :error_type

-- name: where_args_contains
-- offload_args_match is offload.core.containment.args_match, registered on each
-- connection: PostgreSQL's jsonb containment, which no SQLite JSON function computes. Only
-- jobs whose texts hold :args_needle (containment.needle) can match: the substring test
-- spares the others the call and the parse (a scan of a million jobs: 0.5 s instead of 10).
CASE WHEN :args_needle IS NOT NULL AND instr(args, :args_needle) = 0
          AND instr(kwargs, :args_needle) = 0 THEN 0
     ELSE offload_args_match(args, kwargs, :args_contains) END

-- name: retry_many
-- `retry` of every matching dead, cancelled or shed job in one statement; :budgets maps a
-- task name to its attempt budget (a task this app does not know keeps max_attempts).
-- The states a bulk operation accepts are likely() (as in where_queue), so that a batch
-- of ids (App.bulk) is looked up by id, not found by reading every job of those states.
UPDATE offload_jobs
SET state = CASE WHEN run_at > {now} THEN 'scheduled' ELSE 'available' END,
    max_attempts = attempt + coalesce(
        (SELECT b.value FROM json_each(:budgets) AS b WHERE b.key = offload_jobs.task),
        max_attempts),
    run_at = max(run_at, {now}), sort_at = max(run_at, {now}) - (run_at - sort_at),
    finished_at = NULL, started_at = NULL,
    lease_until = NULL, worker = NULL, result = NULL, cancel_requested = 0
WHERE likely(state IN ('dead', 'cancelled', 'shed')) AND {filter}
RETURNING id, queue, state, children > 0 AS has_children

-- name: cancel_many
-- `cancel` of every matching queued or running job in one statement: a job claimed while
-- it runs is seen as running (the statement holds the write lock) and is asked to stop.
UPDATE offload_jobs
SET state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
    finished_at = CASE WHEN state = 'running' THEN finished_at ELSE {now} END,
    cancel_requested = 1
WHERE likely(state IN ('waiting', 'scheduled', 'available', 'retrying', 'shed', 'running'))
  AND {filter}
RETURNING id, queue, state, children > 0 AS has_children

-- name: purge
-- Delete matching jobs that are over: succeeded, dead, cancelled or shed. A shed job others
-- wait for stays (it is not over: its children would wait for it for ever).
DELETE FROM offload_jobs
WHERE likely(state IN ('succeeded', 'dead', 'cancelled', 'shed')) AND {filter}
  AND NOT (state = 'shed' AND children > 0)

-- name: head_start
-- A new job's head start in seconds: its priority times its queue's aging (60 s without a
-- policy), so that claims, ordered by sort_at = run_at - head start, age priorities.
:priority * coalesce((SELECT aging FROM offload_queues WHERE name = :queue), :default_aging)

-- name: unbounded
-- The plain inserts' guard (back pressure): true unless the queue has an admission
-- policy. Producers keep a cache of the queues that have one and take the admitted path
-- for those; a cache that missed a new policy cannot bypass it, as the plain insert then
-- stores nothing and the producer takes the admitted path. One index probe, evaluated
-- once per statement (it depends on no row).
(:admitted OR NOT EXISTS (SELECT 1 FROM offload_queues WHERE name = :queue AND {admits}))

-- name: admits
-- A queue policy that can turn an enqueue away or shed it (QueuePolicy.admits_all false).
(max_depth IS NOT NULL OR admit_depth IS NOT NULL OR max_wait IS NOT NULL
    OR shed_depth IS NOT NULL)

-- name: admission_queues
-- The queues whose enqueues take the admitted path (the producers' cache).
SELECT name FROM offload_queues WHERE {admits}

-- name: admission_lock
-- The admitted path's first statement: the queue's policy. A write (changing nothing), so
-- that on a caller's connection (transactional enqueue) it takes SQLite's write lock
-- before the count, as BEGIN IMMEDIATE does on our own.
UPDATE offload_queues SET paused = paused WHERE name = :queue RETURNING *

-- name: admission_depth
-- The queue's jobs not yet started, counted up to :cap (past the largest bound the count
-- changes no decision): an index range of the claim index.
SELECT count(*) FROM (
    SELECT 1 FROM offload_jobs
    WHERE queue = :queue AND {queued_states}
    LIMIT :cap)

-- name: admission_wait
-- Seconds the queue's oldest due job has waited (by the database clock), NULL if none.
SELECT {now} - min(run_at) FROM offload_jobs
WHERE queue = :queue AND {queued_states} AND run_at <= {now}

-- name: savepoint
-- One caller's insert within a group commit (offload.backends.group): undone alone if it fails.
SAVEPOINT offload_caller

-- name: release
-- That caller's insert succeeded: keep it in the group's transaction.
RELEASE SAVEPOINT offload_caller

-- name: rollback_to
-- That caller's insert failed: undo it alone (then `release` ends the savepoint).
ROLLBACK TO SAVEPOINT offload_caller
