-- Named queries of the events area (PostgreSQL). A job change's events are written by the
-- statement that makes it (migration 21; no trigger): the inserts and the statements that
-- run alone (claims, progress, finish, release, the sweep's) within the statement, in a
-- WITH (Queries.events), the changes made in a transaction of several statements with
-- `written`, in it. A read returns only events of transactions older
-- than every transaction still open (tx below the snapshot's xmin): positions are taken at
-- insert but commit out of order, and an event that may still appear must sort after
-- everything returned. Rows come in (tx, position) order, from the cursor :tx-:position
-- onwards. ORDER BY names the table's columns: a bare `tx` would be the output column, tx
-- as text ('1000' < '994').

-- name: written
-- The events of jobs :ids (a JSON array of ids) that a statement of this transaction just
-- changed, in id order: of kind :kind, or where NULL the kind their state tells (running:
-- started; retrying, succeeded, dead, cancelled, shed: the state's name; a retrying or dead
-- job's carries its last error, cut to 500 characters). Event listeners are woken at
-- commit, unless the transaction sends its wake-ups after it (offload.defer_wake, schema
-- 20). The rows and the NOTIFY are those the update trigger of schemas 9-20 wrote.
WITH ins AS (
    INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)
    SELECT coalesce(:kind::text, CASE j.state WHEN 'running' THEN 'started' ELSE j.state END),
           j.id, j.task, j.queue, j.channel, j.state, j.attempt,
           CASE WHEN :kind::text = 'progress' THEN j.progress
                WHEN :kind::text IS NULL AND j.state IN ('retrying', 'dead')
                THEN json_build_object('error', left(j.errors -> -1 ->> 'message', 500))
                ELSE '{}'::json END
    FROM offload_jobs AS j
    WHERE j.id IN (SELECT value::bigint FROM json_array_elements_text(:ids::json))
    ORDER BY j.id
    RETURNING 1)
SELECT {wake_events} WHERE EXISTS (SELECT FROM ins)

-- name: columns
tx::text AS tx, position, kind, at, job_id, task, queue, channel, state, attempt,
    data::text AS data

-- name: read_all
-- Every event after the cursor, of queue :queue if given (the primary key's order).
SELECT {columns} FROM offload_events
WHERE (tx, position) > (:tx::text::xid8, :position::bigint)
  AND tx < pg_snapshot_xmin(pg_current_snapshot())
  AND (:queue::text IS NULL OR queue = :queue)
ORDER BY offload_events.tx, offload_events.position
LIMIT :limit

-- name: read_job
-- One job's events after the cursor (offload_events_job).
SELECT {columns} FROM offload_events
WHERE job_id = :job_id::bigint
  AND (tx, position) > (:tx::text::xid8, :position::bigint)
  AND tx < pg_snapshot_xmin(pg_current_snapshot())
  AND (:queue::text IS NULL OR queue = :queue)
  AND (:channel::text IS NULL OR channel = :channel)
ORDER BY offload_events.tx, offload_events.position
LIMIT :limit

-- name: read_channel
-- One channel's events after the cursor (offload_events_channel).
SELECT {columns} FROM offload_events
WHERE channel = :channel::text
  AND (tx, position) > (:tx::text::xid8, :position::bigint)
  AND tx < pg_snapshot_xmin(pg_current_snapshot())
  AND (:queue::text IS NULL OR queue = :queue)
ORDER BY offload_events.tx, offload_events.position
LIMIT :limit

-- name: tail
-- The newest event readable now.
SELECT tx::text AS tx, position FROM offload_events
WHERE tx < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY offload_events.tx DESC, offload_events.position DESC
LIMIT 1

-- name: notify
-- An application's event; its NOTIFY is delivered at commit, like the job events'.
WITH ins AS (
    INSERT INTO offload_events (kind, channel, data)
    VALUES ('notify', :channel, :data::json)
    RETURNING tx, position)
SELECT tx::text AS tx, position, pg_notify('offload_events', '') FROM ins

-- name: prune
-- Of the :chunk oldest events in cursor order (the primary key), those past retention; the
-- caller repeats while a chunk is full. Cursor order follows time, but for a transaction
-- that ran long: its events go once those before them have gone.
DELETE FROM offload_events
WHERE (tx, position) IN (
    SELECT tx, position FROM offload_events
    ORDER BY tx, position
    LIMIT :chunk)
  AND at < now() - make_interval(secs => :age)
