-- Named queries of the workers area (SQLite).

-- name: register
INSERT INTO offload_workers (id, host, pid, queues, concurrency, started_at, heartbeat_at, wake)
VALUES (:id, :host, :pid, :queues, :concurrency, {now}, {now}, :wake)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, wake = excluded.wake

-- name: heartbeat
UPDATE offload_workers SET heartbeat_at = {now} WHERE id = :id

-- name: unregister
DELETE FROM offload_workers WHERE id = :id

-- name: list
SELECT {worker_columns} FROM offload_workers ORDER BY started_at

-- name: prune
DELETE FROM offload_workers WHERE heartbeat_at < {now} - :age
