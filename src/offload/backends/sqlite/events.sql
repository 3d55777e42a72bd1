-- Named queries of the events area (SQLite). An enqueue's event is written by the insert
-- trigger of migration 9; every other change's by the statement that makes it, with
-- `written` in its transaction (migration 11). One writer at a time commits them in
-- position order, so tx is always 0: a cursor with another tx (from no SQLite database)
-- is past every event.

-- name: written
-- The events of jobs :ids (a JSON array of distinct ids, ascending) that a statement of
-- this transaction just changed: of kind :kind, or where NULL the kind their state tells
-- (running: started; retrying, succeeded, dead, cancelled, shed: the state's name). A
-- statement per batch, not a trigger program per row: an update trigger cost a drain a
-- quarter of its rate, and even one narrowed by its WHEN to the changes no statement
-- wrote, 5%. A join, not `id IN (SELECT ...)`, which builds a temporary b-tree per
-- statement (a fifth of the events' cost); CROSS JOIN keeps json_each the outer loop, so
-- positions follow :ids (numbered by SQLite, or from a delete's mark: schema 22).
-- `at` given once per statement, not as a default per row.
INSERT INTO offload_events (position, at, kind, job_id, task, queue, channel, state, attempt,
    data)
SELECT {event_mark} + i.key + 1, {now},
       coalesce(:kind, CASE j.state WHEN 'running' THEN 'started' ELSE j.state END),
       j.id, j.task, j.queue, j.channel, j.state, j.attempt,
       CASE WHEN :kind = 'progress' THEN j.progress
            WHEN :kind IS NULL AND j.state IN ('retrying', 'dead')
            THEN json_object('error', substr(j.errors ->> '$[#-1].message', 1, 500))
            ELSE '{}' END
FROM json_each(:ids) AS i CROSS JOIN offload_jobs AS j ON j.id = i.value

-- name: columns
tx, position, kind, at, job_id, task, queue, channel, state, attempt, data

-- name: read_all
-- Every event after the cursor, of queue :queue if given (the rowid's order).
SELECT {columns} FROM offload_events
WHERE :tx = 0 AND position > :position
  AND (:queue IS NULL OR queue = :queue)
ORDER BY position
LIMIT :limit

-- name: read_job
-- One job's events after the cursor (offload_events_job).
SELECT {columns} FROM offload_events
WHERE job_id = :job_id AND :tx = 0 AND position > :position
  AND (:queue IS NULL OR queue = :queue)
  AND (:channel IS NULL OR channel = :channel)
ORDER BY position
LIMIT :limit

-- name: read_channel
-- One channel's events after the cursor (offload_events_channel).
SELECT {columns} FROM offload_events
WHERE channel = :channel AND :tx = 0 AND position > :position
  AND (:queue IS NULL OR queue = :queue)
ORDER BY position
LIMIT :limit

-- name: tail
SELECT tx, position FROM offload_events ORDER BY position DESC LIMIT 1

-- name: notify
INSERT INTO offload_events (position, kind, channel, data)
VALUES ({event_mark} + 1, 'notify', :channel, :data)
RETURNING tx, position

-- name: prune
-- Of the :chunk oldest events, those past retention (the caller repeats while a chunk is
-- full). Positions ascend with time (one writer at a time), so the oldest are read by
-- position from the primary key: no index on time is needed.
DELETE FROM offload_events
WHERE position IN (SELECT position FROM offload_events ORDER BY position LIMIT :chunk)
  AND at < {now} - :age
