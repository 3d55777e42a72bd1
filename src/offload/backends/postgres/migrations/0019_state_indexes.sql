-- offload schema 19 for PostgreSQL: nothing changes. SQLite's script rewrites the state
-- predicates of its partial indexes as comparisons (SQLite builds a temporary b-tree for an
-- IN list each time it tests a row); PostgreSQL tests `state = ANY (array)` in place.
SELECT 1;
