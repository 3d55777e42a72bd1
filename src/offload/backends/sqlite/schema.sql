-- Named queries of the schema area (SQLite).

-- name: exists
SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'offload_schema'

-- name: version
SELECT max(version) FROM offload_schema

-- name: record
INSERT INTO offload_schema (version, applied_at) VALUES (:version, {now})
