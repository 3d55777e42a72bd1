-- Named queries of the topics area (SQLite). One writer at a time (BEGIN IMMEDIATE) gives
-- offsets and moves cursors, so no statement needs a lock of its own; the PostgreSQL file
-- explains each statement.

-- name: advance
INSERT INTO offload_topics (name, last_offset) VALUES (:topic, :n)
ON CONFLICT (name) DO UPDATE SET last_offset = offload_topics.last_offset + excluded.last_offset
RETURNING last_offset

-- name: append
INSERT INTO offload_messages (topic, position, key, value)
SELECT :topic, :first + m.key, m.value ->> 0, m.value ->> 1
FROM json_each(:messages) AS m

-- name: ensure
INSERT INTO offload_topics (name) VALUES (:topic) ON CONFLICT (name) DO NOTHING

-- name: floor_lock
-- Nothing to take: BEGIN IMMEDIATE already orders prunes, subscribes and replays.
SELECT 1

-- name: topic
SELECT last_offset, retention_seconds, retention_messages FROM offload_topics
WHERE name = :topic

-- name: first_at
SELECT min(position) FROM offload_messages WHERE topic = :topic AND published_at >= :at

-- name: first
SELECT min(position) FROM offload_messages WHERE topic = :topic

-- name: group
SELECT cursor, ordered_by_key FROM offload_groups WHERE topic = :topic AND name = :group

-- name: pump_group
SELECT g.cursor, g.ordered_by_key, coalesce(q.paused, 0) AS paused, q.max_depth,
       g.start_at
FROM offload_groups AS g
LEFT JOIN offload_queues AS q ON q.name = :queue
WHERE g.topic = :topic AND g.name = :group

-- name: insert_group
INSERT INTO offload_groups (topic, name, cursor, ordered_by_key, start_at)
VALUES (:topic, :group, :cursor, :ordered, :start_at)
ON CONFLICT (topic, name) DO NOTHING

-- name: declare_group
UPDATE offload_groups SET ordered_by_key = :ordered
WHERE topic = :topic AND name = :group AND ordered_by_key <> :ordered

-- name: move
UPDATE offload_groups SET cursor = :cursor WHERE topic = :topic AND name = :group

-- name: restart
UPDATE offload_groups SET cursor = :cursor, start_at = :start_at
WHERE topic = :topic AND name = :group

-- name: after
SELECT position, key, value, published_at FROM offload_messages
WHERE topic = :topic AND position > :cursor
ORDER BY position
LIMIT :limit

-- name: busy_keys
-- Keys of a group's deliveries not over yet: an ordered group hands out no message whose
-- key one of them holds. Dead deliveries do not block. One part per index that holds
-- their states (schema 17): the claim index, offload_jobs_state, offload_jobs_running.
SELECT DISTINCT key FROM (
    SELECT args ->> '$[0].key' AS key FROM offload_jobs
    WHERE queue = :queue AND {queued_states}
    UNION ALL
    SELECT args ->> '$[0].key' FROM offload_jobs
    WHERE queue = :queue AND (state = 'waiting' OR state = 'shed')
      AND {rare_states}
    UNION ALL
    SELECT args ->> '$[0].key' FROM offload_jobs
    WHERE queue = :queue AND state = 'running')
WHERE key IS NOT NULL

-- name: groups
-- Every group with its topic's newest offset, its deliveries not over (counted by the
-- indexes of busy_keys), and its dead ones.
SELECT g.topic, g.name, g.cursor, g.ordered_by_key, g.skipped, t.last_offset,
       (SELECT count(*) FROM offload_jobs
        WHERE queue = 'topic:' || g.topic || ':' || g.name
          AND {queued_states})
       + (SELECT count(*) FROM offload_jobs
          WHERE queue = 'topic:' || g.topic || ':' || g.name
            AND (state = 'waiting' OR state = 'shed') AND {rare_states})
       + (SELECT count(*) FROM offload_jobs
          WHERE queue = 'topic:' || g.topic || ':' || g.name AND state = 'running')
           AS unfinished,
       (SELECT count(*) FROM offload_jobs
        WHERE queue = 'topic:' || g.topic || ':' || g.name AND state = 'dead'
          AND {rare_states}) AS dead
FROM offload_groups AS g
JOIN offload_topics AS t ON t.name = g.topic
ORDER BY g.topic, g.name

-- name: topics
SELECT t.name, t.last_offset, t.retention_seconds, t.retention_messages,
       count(m.position) AS messages, coalesce(min(m.position), 0) AS first
FROM offload_topics AS t
LEFT JOIN offload_messages AS m ON m.topic = t.name
GROUP BY t.name
ORDER BY t.name

-- name: names
-- The groups of a topic, for "did you mean".
SELECT name FROM offload_groups WHERE topic = :topic ORDER BY name

-- name: retain
INSERT INTO offload_topics (name, retention_seconds, retention_messages)
VALUES (:topic, :seconds, :most)
ON CONFLICT (name) DO UPDATE
SET retention_seconds = excluded.retention_seconds,
    retention_messages = excluded.retention_messages

-- name: retained
SELECT name, last_offset, retention_seconds, retention_messages FROM offload_topics
WHERE retention_seconds IS NOT NULL OR retention_messages IS NOT NULL
ORDER BY name

-- name: first_kept
SELECT min(position) FROM offload_messages
WHERE topic = :topic AND published_at >= {at} - :seconds

-- name: skip
UPDATE offload_groups SET skipped = skipped + (:floor - cursor), cursor = :floor
WHERE topic = :topic AND cursor < :floor

-- name: prune
DELETE FROM offload_messages WHERE topic = :topic AND position <= :floor
