-- offload schema 18 for PostgreSQL: nothing changes. SQLite's script rewrites its job
-- row's state CHECK as comparisons (SQLite builds a temporary b-tree for an IN list on
-- every row it writes); PostgreSQL tests `state = ANY (array)` in place already.
SELECT 1;
