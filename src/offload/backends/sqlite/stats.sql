-- Named queries of the stats area (SQLite): the PostgreSQL file explains them. One writer
-- at a time commits events in position order, so the cursor is a position (tx 0), and the
-- roll-up's BEGIN IMMEDIATE makes rollers take turns.

-- name: lock
SELECT tx, position FROM offload_stats_cursor WHERE id = 1

-- name: events
SELECT e.tx, e.position, e.kind, e.at, e.queue,
    e.at - CASE WHEN j.run_at <= e.at THEN max(j.enqueued_at, j.run_at)
                ELSE j.enqueued_at END AS wait
FROM offload_events AS e
LEFT JOIN offload_jobs AS j ON j.id = e.job_id AND e.kind = 'started' AND e.attempt = 1
WHERE e.position > :position
ORDER BY e.position
LIMIT :limit

-- name: histograms
SELECT s.bucket, s.queue, s.latency_bins
FROM json_each(:keys) AS k
JOIN offload_stats AS s ON s.bucket = k.value ->> 0 AND s.queue = k.value ->> 1

-- name: add
INSERT INTO offload_stats (bucket, queue, enqueued, started, succeeded, failed, dead,
    latency_n, latency_sum, latency_max, latency_bins)
SELECT r.value ->> 0, r.value ->> 1, r.value ->> 2, r.value ->> 3, r.value ->> 4,
    r.value ->> 5, r.value ->> 6, r.value ->> 7, r.value ->> 8, r.value ->> 9, r.value ->> 10
FROM json_each(:rows) AS r
WHERE true
ON CONFLICT (bucket, queue) DO UPDATE SET
    enqueued = enqueued + excluded.enqueued,
    started = started + excluded.started,
    succeeded = succeeded + excluded.succeeded,
    failed = failed + excluded.failed,
    dead = dead + excluded.dead,
    latency_n = latency_n + excluded.latency_n,
    latency_sum = latency_sum + excluded.latency_sum,
    latency_max = max(coalesce(latency_max, excluded.latency_max),
                      coalesce(excluded.latency_max, latency_max)),
    -- A batch without waits for this bucket keeps its histogram (`_add` merged the others).
    latency_bins = CASE WHEN excluded.latency_n = 0 THEN latency_bins
        ELSE excluded.latency_bins END

-- name: advance
UPDATE offload_stats_cursor SET tx = :tx, position = :position
WHERE id = 1 AND tx = :old_tx AND position = :old_position

-- name: read
SELECT CAST((bucket - :since) / :size AS INTEGER) AS slot,
    sum(enqueued) AS enqueued, sum(started) AS started, sum(succeeded) AS succeeded,
    sum(failed) AS failed, sum(dead) AS dead, sum(latency_n) AS latency_n,
    sum(latency_sum) AS latency_sum, max(latency_max) AS latency_max
FROM offload_stats
WHERE bucket >= :since AND (:queue IS NULL OR queue = :queue)
GROUP BY slot
ORDER BY slot

-- name: read_bins
SELECT CAST((s.bucket - :since) / :size AS INTEGER) AS slot, CAST(b.key AS INTEGER) AS bin,
    sum(b.value) AS n
FROM offload_stats AS s, json_each(s.latency_bins) AS b
WHERE s.bucket >= :since AND (:queue IS NULL OR s.queue = :queue) AND s.latency_n > 0
GROUP BY slot, bin

-- name: prune
DELETE FROM offload_stats WHERE bucket < {now} - :age
