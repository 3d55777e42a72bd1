-- Named queries of the leaders area (SQLite); see the PostgreSQL file for what each does.
-- An upsert that leaves the row untouched returns nothing here: `read` follows it.

-- name: elect
INSERT INTO offload_leaders AS l (name, holder, term, since, expires_at)
VALUES (:name, :holder, 1, {now}, {now} + :ttl)
ON CONFLICT (name) DO UPDATE SET
    holder = excluded.holder,
    term = CASE WHEN {renewal} THEN l.term ELSE l.term + 1 END,
    since = CASE WHEN {renewal} THEN l.since ELSE excluded.since END,
    expires_at = excluded.expires_at
WHERE {renewal} OR l.expires_at <= {now} OR l.holder = :holder
RETURNING holder, term, since, expires_at, expires_at - {now}

-- name: renewal
-- Fragment: the stored lease is :holder's own, in term :term, and still running.
l.holder = :holder AND l.term = :term AND l.expires_at > {now}

-- name: read
SELECT holder, term, since, expires_at, expires_at - {now}
FROM offload_leaders WHERE name = :name

-- name: resign
UPDATE offload_leaders SET expires_at = {now}
WHERE name = :name AND holder = :holder AND term = :term AND expires_at > {now}
