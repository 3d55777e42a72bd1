-- offload schema 21 for SQLite: nothing. PostgreSQL's version 21 drops its update trigger,
-- its statements now writing their events themselves, as SQLite's have since schema 11.
-- Both backends keep one numbering.
SELECT 1;
