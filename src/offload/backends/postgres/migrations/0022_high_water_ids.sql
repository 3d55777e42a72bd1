-- offload schema 22 for PostgreSQL: nothing changes. SQLite's script takes AUTOINCREMENT off
-- its job ids and event positions (its sequence page was rewritten by every insert) and
-- keeps them never reused by a mark that only deletes write; PostgreSQL's sequences write no
-- page per commit and never give a number twice.
SELECT 1;
