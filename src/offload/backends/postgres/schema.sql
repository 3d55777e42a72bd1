-- Named queries of the schema area (PostgreSQL).

-- name: exists
SELECT 1 FROM pg_catalog.pg_tables
WHERE tablename = 'offload_schema' AND schemaname = current_schema()

-- name: version
SELECT max(version) FROM offload_schema

-- name: lock
-- Serialises concurrent `offload migrate` runs; released at commit (safe behind PgBouncer).
SELECT pg_advisory_xact_lock(hashtext('offload_migrate'))

-- name: record
INSERT INTO offload_schema (version) VALUES (:version)
