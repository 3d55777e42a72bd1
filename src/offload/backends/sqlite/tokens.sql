-- Named queries of the tokens area (SQLite).

-- name: create
-- A taken name stores nothing and returns no row.
INSERT INTO offload_tokens (name, lookup, hash, scopes, created_at)
VALUES (:name, :lookup, :hash, :scopes, {now})
ON CONFLICT (name) DO NOTHING

-- name: find
-- The token of a lookup part; `stale` when its last use was recorded over :every seconds ago.
SELECT name, hash, scopes,
       (last_used_at IS NULL OR last_used_at < {now} - :every) AS stale
FROM offload_tokens WHERE lookup = :lookup

-- name: touch
UPDATE offload_tokens SET last_used_at = {now}
WHERE lookup = :lookup AND (last_used_at IS NULL OR last_used_at < {now} - :every)

-- name: list
SELECT name, scopes, created_at, last_used_at FROM offload_tokens ORDER BY name

-- name: revoke
DELETE FROM offload_tokens WHERE name = :name

-- name: any
SELECT EXISTS (SELECT 1 FROM offload_tokens)
