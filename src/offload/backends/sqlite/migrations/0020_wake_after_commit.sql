-- offload schema 20 for SQLite: nothing. PostgreSQL's version 20 has its event triggers
-- skip their NOTIFY in an enqueue whose wake-ups follow the commit; SQLite wakes workers
-- with datagrams sent from Python once a commit is visible (wake.py). Both backends keep one
-- numbering.
SELECT 1;
