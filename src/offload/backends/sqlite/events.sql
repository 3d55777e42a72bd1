-- Named queries of the events area (SQLite). Events are written by the triggers of
-- migration 9, but for a drain's own changes (a job started, a run's end), which `written`
-- writes in the claim's or outcome's transaction. One writer at a time commits them in
-- position order, so tx is always 0: a cursor with another tx (from no SQLite database)
-- is past every event.

-- name: written
-- The events of jobs a claim just started or an outcome (or rescue) just ended: the update
-- trigger leaves these transitions to the statements that make them, since a trigger
-- program per row cost a drain's storage a quarter of its rate (one statement per batch,
-- about half that). Rows already moved on, or requeued (the trigger's), are skipped.
INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)
SELECT CASE state WHEN 'running' THEN 'started' ELSE state END,
       id, task, queue, channel, state, attempt,
       CASE WHEN state IN ('retrying', 'dead')
            THEN json_object('error', substr(errors ->> '$[#-1].message', 1, 500))
            ELSE '{}' END
FROM offload_jobs
WHERE id IN (SELECT value FROM json_each(:ids))
  AND state IN ('running', 'retrying', 'succeeded', 'dead', 'cancelled')
ORDER BY id

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
INSERT INTO offload_events (kind, channel, data) VALUES ('notify', :channel, :data)
RETURNING tx, position

-- name: prune
-- Positions ascend with time (one writer at a time): walk from the oldest event to the
-- first one still kept, and delete everything before it; no index on time is needed.
DELETE FROM offload_events
WHERE position < coalesce(
    (SELECT position FROM offload_events
     WHERE at >= {now} - :age ORDER BY position LIMIT 1),
    (SELECT max(position) + 1 FROM offload_events))
