-- offload schema 13 for SQLite: a group started (or replayed) from a time keeps that time
-- (epoch seconds); the PostgreSQL script of the same number explains it.
ALTER TABLE offload_groups ADD COLUMN start_at REAL;
