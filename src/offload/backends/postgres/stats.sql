-- Named queries of the stats area (PostgreSQL): rolling the events up into minute buckets
-- (offload_stats, migration 13), reading and pruning them. A roll-up reads events the way
-- event streams do (events.sql): only of transactions older than every one still open, in
-- (tx, position) order, so that the cursor never passes an event that may still commit.

-- name: lock
-- The roll-up's first statement: the cursor, locked until the roll-up commits (a second
-- roller waits here, then reads where the first one stopped).
SELECT tx::text AS tx, position FROM offload_stats_cursor WHERE id = 1 FOR UPDATE

-- name: events
-- Up to :limit events after the cursor, with the time (epoch seconds) and queue that
-- bucket them; for a first start, its wait from due: from the enqueue, or from run_at if
-- the job was delayed (a run_at already past the start is a later retry's: enqueue then).
SELECT e.tx::text AS tx, e.position, e.kind, extract(epoch FROM e.at)::float8 AS at, e.queue,
    extract(epoch FROM e.at - CASE WHEN j.run_at <= e.at
        THEN greatest(j.enqueued_at, j.run_at) ELSE j.enqueued_at END)::float8 AS wait
FROM offload_events AS e
LEFT JOIN offload_jobs AS j ON j.id = e.job_id AND e.kind = 'started' AND e.attempt = 1
WHERE (e.tx, e.position) > (:tx::text::xid8, :position::bigint)
  AND e.tx < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY e.tx, e.position
LIMIT :limit

-- name: histograms
-- The stored histograms of the buckets :keys (a JSON array of [bucket, queue]), to add a
-- batch's to (the cursor lock keeps other rollers out meanwhile).
SELECT extract(epoch FROM s.bucket)::float8 AS bucket, s.queue, s.latency_bins
FROM offload_stats AS s
JOIN json_array_elements(:keys::json) AS k
  ON s.bucket = to_timestamp((k ->> 0)::float8) AND s.queue = k ->> 1

-- name: add
-- Add a batch's tallies (:rows, a JSON array of [bucket, queue, enqueued, started,
-- succeeded, failed, dead, latency_n, latency_sum, latency_max, histogram]) to the buckets;
-- the histogram given is already the sum.
INSERT INTO offload_stats AS s (bucket, queue, enqueued, started, succeeded, failed, dead,
    latency_n, latency_sum, latency_max, latency_bins)
SELECT to_timestamp((r ->> 0)::float8), r ->> 1, (r ->> 2)::bigint, (r ->> 3)::bigint,
    (r ->> 4)::bigint, (r ->> 5)::bigint, (r ->> 6)::bigint, (r ->> 7)::bigint,
    (r ->> 8)::float8, (r ->> 9)::float8, r ->> 10
FROM json_array_elements(:rows::json) AS r
ON CONFLICT (bucket, queue) DO UPDATE SET
    enqueued = s.enqueued + excluded.enqueued,
    started = s.started + excluded.started,
    succeeded = s.succeeded + excluded.succeeded,
    failed = s.failed + excluded.failed,
    dead = s.dead + excluded.dead,
    latency_n = s.latency_n + excluded.latency_n,
    latency_sum = s.latency_sum + excluded.latency_sum,
    latency_max = greatest(s.latency_max, excluded.latency_max),
    -- A batch without waits for this bucket keeps its histogram (`_add` merged the others).
    latency_bins = CASE WHEN excluded.latency_n = 0 THEN s.latency_bins
        ELSE excluded.latency_bins END

-- name: advance
-- Move the cursor past the batch, from where this roll-up found it (it holds the lock).
UPDATE offload_stats_cursor SET tx = :tx::text::xid8, position = :position
WHERE id = 1 AND tx = :old_tx::text::xid8 AND position = :old_position

-- name: read
-- Buckets from :since (epoch seconds) on, of queue :queue if given, added up per slot of
-- :size seconds (slot 0 starts at :since): a day's chart reads 288 rows, not 1,440 a queue.
SELECT floor((extract(epoch FROM bucket) - :since::float8) / :size::int)::int AS slot,
    sum(enqueued) AS enqueued, sum(started) AS started, sum(succeeded) AS succeeded,
    sum(failed) AS failed, sum(dead) AS dead, sum(latency_n) AS latency_n,
    sum(latency_sum) AS latency_sum, max(latency_max) AS latency_max
FROM offload_stats
WHERE bucket >= to_timestamp(:since::float8) AND (:queue::text IS NULL OR queue = :queue)
GROUP BY slot
ORDER BY slot

-- name: read_bins
-- The histograms of the same buckets, added up per slot: (slot, bin, count).
SELECT floor((extract(epoch FROM s.bucket) - :since::float8) / :size::int)::int AS slot,
    b.key::int AS bin, sum(b.value::bigint) AS n
FROM offload_stats AS s, json_each_text(s.latency_bins::json) AS b
WHERE s.bucket >= to_timestamp(:since::float8) AND (:queue::text IS NULL OR s.queue = :queue)
  AND s.latency_n > 0
GROUP BY slot, bin

-- name: prune
DELETE FROM offload_stats WHERE bucket < now() - make_interval(secs => :age)
