-- Named queries of the workers area (SQLite).

-- name: register
INSERT INTO offload_workers (id, host, pid, queues, concurrency, started_at, heartbeat_at, wake)
VALUES (:id, :host, :pid, :queues, :concurrency, {now}, {now}, :wake)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, wake = excluded.wake

-- name: heartbeat
-- With :rates (JSON {queue: completions per second}), the worker's drain rates too.
UPDATE offload_workers SET heartbeat_at = {now}, rates = coalesce(:rates, rates)
WHERE id = :id

-- name: unregister
DELETE FROM offload_workers WHERE id = :id

-- name: census
-- Registered workers counted as alive (a heartbeat within :lost_after seconds) or lost,
-- and the job slots of the live ones; one row, zeros when none is registered.
SELECT coalesce(sum(CASE WHEN heartbeat_at >= {now} - :lost_after THEN 1 ELSE 0 END), 0) AS alive,
    coalesce(sum(CASE WHEN heartbeat_at >= {now} - :lost_after THEN 0 ELSE 1 END), 0) AS lost,
    coalesce(sum(CASE WHEN heartbeat_at >= {now} - :lost_after THEN concurrency ELSE 0 END), 0) AS slots
FROM offload_workers

-- name: list
SELECT {worker_columns} FROM offload_workers ORDER BY started_at

-- name: prune
DELETE FROM offload_workers WHERE heartbeat_at < {now} - :age

-- name: drain_rate
-- A queue's drain rate: completions per second summed over its live workers. By
-- json_each, as a queue name is a key, not a JSON path.
SELECT coalesce(sum(r.value), 0) FROM offload_workers AS w, json_each(w.rates) AS r
WHERE r.key = :queue AND w.heartbeat_at > {now} - :lost_after
