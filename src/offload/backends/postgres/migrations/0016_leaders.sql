-- offload schema 16 for PostgreSQL: leases of the maintenance duties (offload.runtime.leader).
-- One row per duty ('rescue', 'upkeep'): who holds it, in which term, until when by the
-- database's clock. A holder renews it before `expires_at`; once that has passed, any
-- candidate takes it with term + 1, in one statement (leaders.sql). The term only grows:
-- it is the fencing token that tells a stale holder (paused, cut off) it was replaced.
CREATE TABLE offload_leaders (
    name text PRIMARY KEY,
    holder text NOT NULL,
    term bigint NOT NULL CHECK (term > 0),
    since timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
