-- offload schema 15 for SQLite: nothing. Spreading queues over several databases
-- (docs/sharding.md) is for PostgreSQL clusters; a SQLite file is one host's database, so
-- it has no fences of queues moved away. The version is kept so both backends number
-- their schemas alike.
SELECT 1;
