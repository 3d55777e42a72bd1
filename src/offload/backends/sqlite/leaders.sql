-- Named queries of the leaders area (SQLite); see the PostgreSQL file for what each does.

-- name: elect
INSERT INTO offload_leaders AS l (name, holder, term, since, expires_at)
VALUES (:name, :holder, 1, {now}, {now} + :ttl)
ON CONFLICT (name) DO UPDATE SET
    holder = CASE WHEN {free} THEN excluded.holder ELSE l.holder END,
    term = CASE WHEN {renewal} THEN l.term WHEN {free} THEN l.term + 1 ELSE l.term END,
    since = CASE WHEN {renewal} THEN l.since WHEN {free} THEN excluded.since ELSE l.since END,
    expires_at = CASE WHEN {free} THEN excluded.expires_at ELSE l.expires_at END
RETURNING holder, term, since, expires_at, expires_at - {now}

-- name: renewal
(l.holder = :holder AND l.term = :term AND l.expires_at > {now})

-- name: free
(l.expires_at <= {now} OR l.holder = :holder)

-- name: read
SELECT holder, term, since, expires_at, expires_at - {now}
FROM offload_leaders WHERE name = :name

-- name: resign
UPDATE offload_leaders SET expires_at = {now}
WHERE name = :name AND holder = :holder AND term = :term AND expires_at > {now}
