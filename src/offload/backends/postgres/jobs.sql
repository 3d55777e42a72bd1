-- Named queries of the jobs area (PostgreSQL). An insert runs at :run_at (epoch seconds) if
-- given, else :delay seconds from now. Inserts of jobs with unique, idempotency or replace
-- keys take the keyed path (offload.backends.sql.jobs): key_lock, the holders, then a
-- plain insert of the new jobs and supersede.
-- Every insert writes its jobs' `enqueued` events (in id order) and NOTIFYs workers of its
-- queue and event listeners in the same statement (delivered at commit, so whoever's
-- transaction it is; nothing inserted, nothing sent): no second round trip, and cheaper
-- than statement triggers (about 5% of a durable single-row enqueue in an A/B for the
-- wake-up; the events' trigger, dropped by schema 21, cost a lone enqueue a tenth of its
-- server CPU: benchmarks/insert_events.py).
-- Except with :defer (an enqueue on offload's own connection of an App whose URL has
-- `wake=after_commit`, PostgresBackend.enqueuing):
-- then it sets `offload.defer_wake` for its transaction instead, which the statements that
-- write events read too (`wake_events`), and the wake-ups follow the commit, so that the
-- commit, waiting for the disk, holds no NOTIFY lock and concurrent producers share the
-- server's flushes.

-- name: insert_one
WITH ins AS (
INSERT INTO offload_jobs (task, queue, args, kwargs, priority, state, max_attempts, run_at,
    enqueued_at, unique_key, idempotency_key, group_key, meta, sort_at, limit_key,
    replace_key, channel)
SELECT :task, :queue, :args::json, :kwargs::json, :priority,
    CASE WHEN :shed::boolean THEN 'shed'
        WHEN coalesce(to_timestamp(:run_at::float8), now() + make_interval(secs => :delay))
        > now() THEN 'scheduled' ELSE 'available' END,
    :max_attempts,
    coalesce(to_timestamp(:run_at::float8), now() + make_interval(secs => :delay)), now(),
    :unique_key, :idempotency_key, :group_key, :meta::json,
    coalesce(to_timestamp(:run_at::float8), now() + make_interval(secs => :delay))
        - make_interval(secs => {head_start}), :limit_key, :replace_key, :channel
WHERE {unbounded}
RETURNING id, task, queue, channel, state, attempt),
told AS (
    {enqueued_events})
SELECT id, CASE WHEN :defer::boolean THEN set_config('offload.defer_wake', 'on', true) END,
    CASE WHEN NOT :defer::boolean THEN pg_notify('offload_jobs', :queue) END,
    CASE WHEN NOT :defer::boolean THEN pg_notify('offload_events', '') END
FROM ins

-- name: enqueued_events
-- The `enqueued` events of the jobs an insert stored (`ins`), in id order.
INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)
SELECT 'enqueued', id, task, queue, channel, state, attempt, '{}' FROM ins ORDER BY id

-- name: insert_many
-- Many jobs of one spec; :payloads is a JSON array with one element a job: its args text
-- alone (a string: its kwargs are {}), an [args, kwargs] pair, or when :wide a whole
-- Payload tuple [args, kwargs, idempotency_key, limit_key, unique_key, group_key,
-- replace_key] (a `->>` parses the whole element each time: read the keys only when some
-- job has one), each payload as JSON text in a string (PostgreSQL's json cannot take
-- \u0000 apart). Rows go in payload order, so their ids ascend with it.
WITH ins AS (
INSERT INTO offload_jobs (task, queue, args, kwargs, priority, state, max_attempts, run_at,
    enqueued_at, unique_key, idempotency_key, group_key, meta, sort_at, limit_key,
    replace_key, channel)
SELECT :task, :queue,
    (CASE WHEN json_typeof(p.value) = 'string' THEN p.value #>> '{}' ELSE p.value ->> 0 END)::json,
    (CASE WHEN json_typeof(p.value) = 'string' THEN '{}' ELSE p.value ->> 1 END)::json, :priority,
    CASE WHEN :shed::boolean THEN 'shed'
        WHEN coalesce(to_timestamp(:run_at::float8), now() + make_interval(secs => :delay))
        > now() THEN 'scheduled' ELSE 'available' END,
    :max_attempts,
    coalesce(to_timestamp(:run_at::float8), now() + make_interval(secs => :delay)), now(),
    CASE WHEN :wide THEN p.value ->> 4 END, CASE WHEN :wide THEN p.value ->> 2 END,
    CASE WHEN :wide THEN p.value ->> 5 END, :meta::json,
    coalesce(to_timestamp(:run_at::float8), now() + make_interval(secs => :delay))
        - make_interval(secs => {head_start}),
    CASE WHEN :wide THEN p.value ->> 3 END, CASE WHEN :wide THEN p.value ->> 6 END, :channel
FROM json_array_elements(:payloads::json) WITH ORDINALITY AS p(value, n)
WHERE {unbounded}
ORDER BY p.n
RETURNING id, task, queue, channel, state, attempt),
told AS (
    {enqueued_events})
SELECT id FROM ins,
    (SELECT CASE WHEN :defer::boolean THEN set_config('offload.defer_wake', 'on', true) END,
        CASE WHEN NOT :defer::boolean THEN pg_notify('offload_jobs', :queue) END,
        CASE WHEN NOT :defer::boolean THEN pg_notify('offload_events', '') END
     WHERE EXISTS (SELECT FROM ins)) AS woke  -- nothing stored (a guard stopped it): no wake

-- name: key_lock
-- The keyed path's first statement: a transaction-scoped advisory lock on every key of the
-- insert (:keys, JSON, sorted and prefixed by kind, so that two producers never wait on
-- each other in opposite orders), released at commit or rollback: producers of one key
-- take turns, and a rolled-back enqueue never holds it. The holders are read in the NEXT
-- statement, whose READ COMMITTED snapshot sees every commit made before the lock came.
-- The isolation level comes back with it: an older snapshot (REPEATABLE READ,
-- SERIALIZABLE) would miss holders committed meanwhile, so the caller refuses those.
SELECT current_setting('transaction_isolation') AS isolation, count(*) AS locked
FROM (SELECT pg_advisory_xact_lock(hashtextextended(k.value, 0))
      FROM json_array_elements_text(:keys::json) WITH ORDINALITY AS k(value, n)) AS l

-- name: unique_holders
-- The newest job holding each unique key in :keys: in one of :states, and enqueued within
-- the last :period seconds if given.
SELECT unique_key AS key, max(id) AS id FROM offload_jobs
WHERE unique_key IN (SELECT json_array_elements_text(:keys::json))
  AND state IN (SELECT json_array_elements_text(:states::json))
  AND (:period::float8 IS NULL OR enqueued_at > now() - make_interval(secs => :period))
GROUP BY unique_key

-- name: idempotent_holders
-- The jobs enqueued with an idempotency key of :keys within the last :retention seconds,
-- oldest first (the newest one names the key), with what they were enqueued with.
SELECT idempotency_key AS key, id, task, args::text AS args, kwargs::text AS kwargs
FROM offload_jobs
WHERE idempotency_key IN (SELECT json_array_elements_text(:keys::json))
  AND enqueued_at > now() - make_interval(secs => :retention)
ORDER BY id

-- name: supersede
-- Job :id was stored with replace key :key: cancel the older queued jobs carrying it (ids
-- ascend in order of storing: producers of one replace key take turns under key_lock), and
-- with :running ask running ones to stop (once: the first successor stays recorded).
UPDATE offload_jobs
SET state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
    finished_at = CASE WHEN state = 'running' THEN finished_at ELSE now() END,
    cancel_requested = true, superseded_by = :id
WHERE replace_key = :key AND id < :id
  -- offload_jobs_replace's predicate, so that SQLite uses it (schema 17)
  AND state IN ('waiting', 'scheduled', 'available', 'retrying', 'shed', 'running')
  AND (state IN ('waiting', 'scheduled', 'available', 'retrying', 'shed')
       OR (:running::boolean AND state = 'running' AND superseded_by IS NULL))
RETURNING id, queue, state, children > 0 AS has_children

-- name: get
SELECT {job_columns} FROM offload_jobs WHERE id = :id

-- name: list
-- A page of the jobs matching a JobFilter, newest first, ids up to :below (a range of the
-- primary key: a catch-all "before_id IS NULL OR id < before_id" scans from the top).
SELECT {job_columns} FROM offload_jobs
WHERE {filter}
  AND id <= :below::bigint
ORDER BY id DESC
LIMIT :limit

-- name: ids
-- A bulk walk's batch: ids of matching jobs in :states (a JSON array), newest first.
SELECT id FROM offload_jobs
WHERE state IN (SELECT json_array_elements_text(:states::json)) AND {filter}
  AND id <= :below::bigint
ORDER BY id DESC
LIMIT :limit

-- name: count
SELECT count(*) FROM offload_jobs WHERE {filter}

-- name: counts
-- One scan, which the planner prefers to any index for jobs of every state (it did so with
-- the full state index of schemas 1-14 as well).
SELECT queue, state, count(*) AS n FROM offload_jobs GROUP BY queue, state

-- name: census
-- What a metrics scrape reads, in one scan: jobs per queue and state, and per group the
-- wait of the oldest job that is due and not started (a scheduled or retrying job whose
-- time came counts as waiting, as the claim takes it).
SELECT queue, state, count(*) AS n, extract(epoch FROM now() - min(run_at) FILTER (WHERE {waits}))::float8 AS oldest
FROM offload_jobs
GROUP BY queue, state

-- name: waits
state IN ('available', 'scheduled', 'retrying') AND run_at <= now()

-- name: cancel
-- Queued jobs end at once; a running job gets a stop request its worker acts on.
UPDATE offload_jobs
SET state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
    finished_at = CASE WHEN state = 'running' THEN finished_at ELSE now() END,
    cancel_requested = true
WHERE id = :id
  AND state IN ('waiting', 'scheduled', 'available', 'retrying', 'shed', 'running')
RETURNING {job_columns}

-- name: retry
-- Attempts keep counting (the error list stays readable) with :budget more allowed; a
-- job whose run_at is still ahead (a cancelled delayed job) keeps its delay.
UPDATE offload_jobs
SET state = CASE WHEN run_at > now() THEN 'scheduled' ELSE 'available' END,
    max_attempts = attempt + coalesce(:budget::int, max_attempts),
    run_at = greatest(run_at, now()), sort_at = greatest(run_at, now()) - (run_at - sort_at),
    finished_at = NULL, started_at = NULL,
    lease_until = NULL, worker = NULL, result = NULL, cancel_requested = false
WHERE id = :id AND state IN ('dead', 'cancelled', 'shed')
RETURNING {job_columns}

-- name: prune
-- The finished index's predicate repeated, so that a bound :state can use it (schema 17).
DELETE FROM offload_jobs
WHERE state = :state AND state IN ('succeeded', 'dead', 'cancelled') AND finished_at < now() - make_interval(secs => :age)

-- name: where_ids
-- The parts of a JobFilter's condition, one fragment each: a listing, a count and the bulk
-- operations below put the parts given in place of {filter}, joined by AND (SqlJobs.where),
-- so that each shape of filter is a statement of its own whose plan can use an index (a
-- generic plan of ":queue IS NULL OR queue = :queue" cannot).
id IN (SELECT json_array_elements_text(:ids::json)::bigint)

-- name: where_queue
queue = :queue::text

-- name: where_state
-- A state's condition repeats the predicate of the partial index that holds its jobs
-- (schema 17), which a generic plan cannot prove from a bound :state. This one for the
-- states of offload_jobs_state, where_state_available for the claim index's,
-- where_state_running for the running index's.
state = :state::text AND state NOT IN ('available', 'running')

-- name: where_state_available
state = :state::text AND state IN ('available', 'scheduled', 'retrying')

-- name: where_state_running
state = :state::text AND state = 'running'

-- name: where_task
task = :task::text

-- name: where_before
-- Times compare with enqueued_at, the one time every job has.
enqueued_at < :before::timestamptz

-- name: where_after
enqueued_at >= :after::timestamptz

-- name: where_error_type
-- The exception type of the job's last error entry (offload_jobs_error_type, an index of
-- the jobs with an error: this must say so for it to be used).
errors <> '[]'::jsonb AND errors -> -1 ->> 'type' = :error_type::text

-- name: where_args_contains
-- jsonb containment in one positional argument, or, for an object, in the keyword
-- arguments. Payloads are json (verbatim); a "\u0000" escape, which jsonb refuses, makes a
-- job match nothing (CASE: checked before the cast). Only jobs whose texts hold
-- :args_needle (offload.core.containment.needle) can match: the substring test spares the
-- others the cast to jsonb, which parses the whole text.
CASE WHEN :args_needle::text IS NOT NULL AND strpos(args::text, :args_needle) = 0
          AND strpos(kwargs::text, :args_needle) = 0 THEN false
     WHEN strpos(args::text, '\u0000') > 0 OR strpos(kwargs::text, '\u0000') > 0 THEN false
     ELSE args::jsonb @> jsonb_build_array(:args_contains::jsonb)
          OR (jsonb_typeof(:args_contains::jsonb) = 'object'
              AND kwargs::jsonb @> :args_contains::jsonb) END

-- name: retry_many
-- `retry` of every matching dead, cancelled or shed job in one statement; :budgets maps a
-- task name to its attempt budget (a task this app does not know keeps max_attempts).
UPDATE offload_jobs
SET state = CASE WHEN run_at > now() THEN 'scheduled' ELSE 'available' END,
    max_attempts = attempt + coalesce((:budgets::jsonb ->> task)::int, max_attempts),
    run_at = greatest(run_at, now()), sort_at = greatest(run_at, now()) - (run_at - sort_at),
    finished_at = NULL, started_at = NULL,
    lease_until = NULL, worker = NULL, result = NULL, cancel_requested = false
WHERE state IN ('dead', 'cancelled', 'shed') AND {filter}
RETURNING id, queue, state, children > 0 AS has_children

-- name: cancel_many
-- `cancel` of every matching queued or running job in one statement. A row a worker claims
-- meanwhile is re-checked on its new version (READ COMMITTED): it is running by then, so
-- it stays running and is asked to stop, exactly as a cancel after the claim would do.
UPDATE offload_jobs
SET state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
    finished_at = CASE WHEN state = 'running' THEN finished_at ELSE now() END,
    cancel_requested = true
WHERE state IN ('waiting', 'scheduled', 'available', 'retrying', 'shed', 'running')
  AND {filter}
RETURNING id, queue, state, children > 0 AS has_children

-- name: purge
-- Delete matching jobs that are over: succeeded, dead, cancelled or shed. A shed job others
-- wait for stays (it is not over: its children would wait for it for ever).
DELETE FROM offload_jobs
WHERE state IN ('succeeded', 'dead', 'cancelled', 'shed') AND {filter}
  AND NOT (state = 'shed' AND children > 0)

-- name: head_start
-- A new job's head start in seconds: its priority times its queue's aging (60 s without a
-- policy), so that claims, ordered by sort_at = run_at - head start, age priorities.
:priority * coalesce((SELECT aging FROM offload_queues WHERE name = :queue), :default_aging::float8)

-- name: unbounded
-- The plain inserts' guard (back pressure): true unless the queue has an admission
-- policy. Producers keep a cache of the queues that have one and take the admitted path
-- for those; a cache that missed a new policy cannot bypass it, as the plain insert then
-- stores nothing and the producer takes the admitted path. One index probe, evaluated
-- once per statement (it depends on no row).
(:admitted::boolean OR NOT EXISTS (SELECT 1 FROM offload_queues WHERE name = :queue AND {admits}))

-- name: admits
-- A queue policy that can turn an enqueue away or shed it (QueuePolicy.admits_all false).
(max_depth IS NOT NULL OR admit_depth IS NOT NULL OR max_wait IS NOT NULL
    OR shed_depth IS NOT NULL)

-- name: admission_queues
-- The queues whose enqueues take the admitted path (the producers' cache).
SELECT name FROM offload_queues WHERE {admits}

-- name: admission_lock
-- The admitted path's first statement: the queue's policy, its row locked until the
-- enqueue commits, so that enqueues into one bounded queue take turns. The count comes in
-- the next statement: READ COMMITTED takes a statement's snapshot when it starts, so a
-- count in this statement could miss jobs committed while it waited for the lock.
SELECT * FROM offload_queues WHERE name = :queue FOR UPDATE

-- name: admission_depth
-- The queue's jobs not yet started, counted up to :cap (past the largest bound the count
-- changes no decision): an index range of the claim index.
SELECT count(*) FROM (
    SELECT 1 FROM offload_jobs
    WHERE queue = :queue AND state IN ('available', 'scheduled', 'retrying')
    LIMIT :cap) AS waiting

-- name: admission_wait
-- Seconds the queue's oldest due job has waited (by the database clock), NULL if none.
SELECT extract(epoch FROM now() - min(run_at))::float8 FROM offload_jobs
WHERE queue = :queue AND state IN ('available', 'scheduled', 'retrying') AND run_at <= now()

-- name: savepoint
-- One caller's insert within a group commit (offload.backends.group): undone alone if it fails.
SAVEPOINT offload_caller

-- name: release
-- That caller's insert succeeded: keep it in the group's transaction.
RELEASE SAVEPOINT offload_caller

-- name: rollback_to
-- That caller's insert failed: undo it alone (then `release` ends the savepoint).
ROLLBACK TO SAVEPOINT offload_caller
