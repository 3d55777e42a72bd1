-- offload schema 16 for SQLite: leases of the maintenance duties. The PostgreSQL script of
-- the same number explains the table; here times are epoch seconds.
CREATE TABLE offload_leaders (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    term INTEGER NOT NULL CHECK (term > 0),
    since REAL NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
