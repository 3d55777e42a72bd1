-- offload schema 8 for SQLite: API tokens. The PostgreSQL script of the same number
-- explains each part.
CREATE TABLE offload_tokens (
    name TEXT NOT NULL PRIMARY KEY,
    lookup TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL,
    scopes TEXT NOT NULL CHECK (scopes <> ''),
    created_at REAL NOT NULL,
    last_used_at REAL
);
