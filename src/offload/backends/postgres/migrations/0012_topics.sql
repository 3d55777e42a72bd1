-- offload schema 12 for PostgreSQL: topics (offload.core.topics). A topic's messages are
-- stored once, whatever the number of groups; a group is a cursor into them, and its
-- members take the messages after it as jobs of its queue (offload.backends.sql.topics).
CREATE TABLE offload_topics (
    name text PRIMARY KEY,
    -- The newest offset given. A publish raises it by its message count and keeps the
    -- row's lock to its commit, so publishes to one topic take turns: offsets are dense
    -- and given in commit order, and a reader that sees offset n sees every offset below
    -- it (an identity column would give n to a transaction that may commit after n + 1,
    -- and a cursor moved past the hole would skip it for ever).
    last_offset bigint NOT NULL DEFAULT 0,
    -- Retention: seconds a message is kept, and how many at most (NULL: no bound).
    retention_seconds double precision CHECK (retention_seconds > 0),
    retention_messages bigint CHECK (retention_messages > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE offload_messages (
    topic text NOT NULL,
    position bigint NOT NULL,
    key text,
    value json NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, position)
);

CREATE TABLE offload_groups (
    topic text NOT NULL,
    name text NOT NULL,
    -- The offset of the last message handed to the group's queue (0: none yet).
    cursor bigint NOT NULL CHECK (cursor >= 0),
    ordered_by_key boolean NOT NULL DEFAULT false,
    -- Messages retention removed before the group had them.
    skipped bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, name)
);
