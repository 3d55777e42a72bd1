-- offload schema 12 for SQLite: topics. The PostgreSQL script of the same number explains
-- the tables; here one writer at a time gives offsets, so they are in commit order anyway.
CREATE TABLE offload_topics (
    name TEXT PRIMARY KEY,
    last_offset INTEGER NOT NULL DEFAULT 0,
    retention_seconds REAL CHECK (retention_seconds > 0),
    retention_messages INTEGER CHECK (retention_messages > 0),
    created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
) WITHOUT ROWID;

CREATE TABLE offload_messages (
    topic TEXT NOT NULL,
    position INTEGER NOT NULL,
    key TEXT,
    value TEXT NOT NULL,
    published_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    PRIMARY KEY (topic, position)
) WITHOUT ROWID;

CREATE TABLE offload_groups (
    topic TEXT NOT NULL,
    name TEXT NOT NULL,
    cursor INTEGER NOT NULL CHECK (cursor >= 0),
    ordered_by_key INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    PRIMARY KEY (topic, name)
) WITHOUT ROWID;
