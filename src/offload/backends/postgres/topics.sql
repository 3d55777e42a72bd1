-- Named queries of the topics area (PostgreSQL). Offsets are given by `advance`, whose
-- row lock is held to the publish's commit (schema 12): every read below is gap-safe as
-- a plain read, with no snapshot arithmetic. A group's queue is 'topic:<topic>:<group>'
-- (offload.core.topics.group_queue).

-- name: advance
-- Give :n offsets to a publish: the newest one is returned; the row stays locked until
-- the publish commits, so the next publish to this topic gets later offsets and commits
-- after it.
INSERT INTO offload_topics (name, last_offset) VALUES (:topic, :n)
ON CONFLICT (name) DO UPDATE SET last_offset = offload_topics.last_offset + excluded.last_offset
RETURNING last_offset

-- name: append
-- The messages at offsets :first, :first + 1, ...: [key, value] pairs, each value as JSON
-- text in a string (PostgreSQL's json cannot take a \u0000 apart; a string can hold it).
INSERT INTO offload_messages (topic, position, key, value)
SELECT :topic, :first::bigint + m.n - 1, m.e ->> 0, (m.e ->> 1)::json
FROM json_array_elements(:messages::json) WITH ORDINALITY AS m(e, n)

-- name: publish
-- `advance`, `append` and the wake-up of the topic's groups as one statement, for a publish
-- in a transaction of its own: one round trip, as an enqueue (the topic row stays locked
-- to the statement's commit all the same). The queues are group_queue's names.
WITH t AS (
    INSERT INTO offload_topics (name, last_offset) VALUES (:topic, :n)
    ON CONFLICT (name) DO UPDATE SET last_offset = offload_topics.last_offset + excluded.last_offset
    RETURNING last_offset),
ins AS (
    INSERT INTO offload_messages (topic, position, key, value)
    SELECT :topic, t.last_offset - :n::bigint + m.n, m.e ->> 0, (m.e ->> 1)::json
    FROM t, json_array_elements(:messages::json) WITH ORDINALITY AS m(e, n))
SELECT t.last_offset,
       (SELECT count(pg_notify('offload_jobs', 'topic:' || g.topic || ':' || g.name))
        FROM offload_groups AS g WHERE g.topic = :topic) AS woke
FROM t

-- name: ensure
-- The topic's row, if it has none yet (a group may subscribe before the first publish).
INSERT INTO offload_topics (name) VALUES (:topic) ON CONFLICT (name) DO NOTHING

-- name: floor_lock
-- Taken by a prune of the topic, and by a subscribe or replay before it places a cursor,
-- until their commits: a cursor placed from what a prune is removing would land below the
-- new floor uncounted, as the prune's `skip` cannot see a group committed after it ran.
-- An advisory lock, not the topic row's, which publishes hold: they need not wait.
SELECT pg_advisory_xact_lock(hashtext('offload_topic_floor'), hashtext(:topic))

-- name: topic
SELECT last_offset, retention_seconds, retention_messages FROM offload_topics
WHERE name = :topic

-- name: first_at
-- The oldest retained message published at or after :at (NULL: none).
SELECT min(position) FROM offload_messages
WHERE topic = :topic AND published_at >= :at::timestamptz

-- name: first
-- The oldest retained message (NULL: none).
SELECT min(position) FROM offload_messages WHERE topic = :topic

-- name: group
-- A group's cursor, locked until the transaction ends: its pumps and replays take turns.
SELECT cursor, ordered_by_key FROM offload_groups
WHERE topic = :topic AND name = :group
FOR UPDATE

-- name: pump_group
-- The group's cursor, locked as `group` does, with its queue's controls: a paused queue
-- is not pumped (its messages wait in the log), and a queue's max_depth bounds the
-- deliveries waiting in it (the pump hands out only the room left).
SELECT g.cursor, g.ordered_by_key, coalesce(q.paused, false) AS paused, q.max_depth,
       g.start_at
FROM offload_groups AS g
LEFT JOIN offload_queues AS q ON q.name = :queue
WHERE g.topic = :topic AND g.name = :group
FOR UPDATE OF g

-- name: insert_group
-- A new group (a concurrent first subscribe of the same group stores nothing more);
-- :start_at, when it starts from a time (schema 13).
INSERT INTO offload_groups (topic, name, cursor, ordered_by_key, start_at)
VALUES (:topic, :group, :cursor, :ordered, :start_at::timestamptz)
ON CONFLICT (topic, name) DO NOTHING

-- name: declare_group
-- The code's declaration of an existing group: only its ordering follows it.
UPDATE offload_groups SET ordered_by_key = :ordered
WHERE topic = :topic AND name = :group AND ordered_by_key <> :ordered

-- name: move
UPDATE offload_groups SET cursor = :cursor WHERE topic = :topic AND name = :group

-- name: restart
-- A replay: the cursor, and the time the group's messages start at (NULL: any time).
UPDATE offload_groups SET cursor = :cursor, start_at = :start_at::timestamptz
WHERE topic = :topic AND name = :group

-- name: after
-- The messages after a cursor, oldest first.
SELECT position, key, value::text AS value, published_at FROM offload_messages
WHERE topic = :topic AND position > :cursor::bigint
ORDER BY position
LIMIT :limit

-- name: busy_keys
-- Keys of a group's deliveries not over yet: an ordered group hands out no message whose
-- key one of them holds. Dead deliveries do not block. One part per index that holds
-- their states (schema 17): the claim index, offload_jobs_state, offload_jobs_running.
SELECT DISTINCT key FROM (
    SELECT args -> 0 ->> 'key' AS key FROM offload_jobs
    WHERE queue = :queue AND state IN ('available', 'scheduled', 'retrying')
    UNION ALL
    SELECT args -> 0 ->> 'key' FROM offload_jobs
    WHERE queue = :queue AND state IN ('waiting', 'shed')
    UNION ALL
    SELECT args -> 0 ->> 'key' FROM offload_jobs
    WHERE queue = :queue AND state = 'running') AS busy
WHERE key IS NOT NULL

-- name: groups
-- Every group with its topic's newest offset, its deliveries not over (counted by the
-- indexes of busy_keys), and its dead ones.
SELECT g.topic, g.name, g.cursor, g.ordered_by_key, g.skipped, t.last_offset,
       coalesce(j.unfinished, 0) AS unfinished, coalesce(j.dead, 0) AS dead
FROM offload_groups AS g
JOIN offload_topics AS t ON t.name = g.topic
LEFT JOIN LATERAL (
    SELECT sum(n) FILTER (WHERE part <> 'dead') AS unfinished,
           sum(n) FILTER (WHERE part = 'dead') AS dead
    FROM (
        SELECT 'queued' AS part, count(*) AS n FROM offload_jobs
        WHERE queue = 'topic:' || g.topic || ':' || g.name
          AND state IN ('available', 'scheduled', 'retrying')
        UNION ALL
        SELECT 'other', count(*) FROM offload_jobs
        WHERE queue = 'topic:' || g.topic || ':' || g.name AND state IN ('waiting', 'shed')
        UNION ALL
        SELECT 'running', count(*) FROM offload_jobs
        WHERE queue = 'topic:' || g.topic || ':' || g.name AND state = 'running'
        UNION ALL
        SELECT 'dead', count(*) FROM offload_jobs
        WHERE queue = 'topic:' || g.topic || ':' || g.name AND state = 'dead') AS parts
) AS j ON true
ORDER BY g.topic, g.name

-- name: topics
-- Every topic with its retained messages.
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
-- A topic's retention (NULL: no bound of that kind); the topic is stored if new.
INSERT INTO offload_topics (name, retention_seconds, retention_messages)
VALUES (:topic, :seconds, :most)
ON CONFLICT (name) DO UPDATE
SET retention_seconds = excluded.retention_seconds,
    retention_messages = excluded.retention_messages

-- name: retained
-- Topics with a retention, and the newest offset each has given.
SELECT name, last_offset, retention_seconds, retention_messages FROM offload_topics
WHERE retention_seconds IS NOT NULL OR retention_messages IS NOT NULL
ORDER BY name

-- name: first_kept
-- The oldest message retention by time keeps (NULL: none): offsets are given in commit
-- order but a publish's time is its transaction's start, so the first message at or
-- after the cutoff bounds what goes, and nothing newer than the cutoff is removed.
SELECT min(position) FROM offload_messages
WHERE topic = :topic AND published_at >= {at} - make_interval(secs => :seconds)

-- name: skip
-- Groups behind the new floor: the messages they never had count as skipped, and their
-- cursor moves up to it. Each row's lock is taken in turn with the pumps' (a pump that
-- moved the cursor meanwhile is read again), so nothing handed out counts as skipped.
UPDATE offload_groups SET skipped = skipped + (:floor - cursor), cursor = :floor
WHERE topic = :topic AND cursor < :floor

-- name: prune
DELETE FROM offload_messages WHERE topic = :topic AND position <= :floor
