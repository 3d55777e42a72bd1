-- offload schema 21 for SQLite: nothing. PostgreSQL's version 21 drops its event triggers,
-- its statements now writing their events themselves, as SQLite's changes have since
-- schema 11 (SQLite keeps its insert trigger: a row program costs an enqueue no more than
-- a statement would). Both backends keep one numbering.
SELECT 1;
