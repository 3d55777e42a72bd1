-- Named queries of the leaders area (PostgreSQL): leases of the maintenance duties.

-- name: elect
-- Renew or take the lease :name for :holder, :ttl seconds from now by this clock, in one
-- statement. Renewed (term kept) if :holder holds it in term :term and it has not expired;
-- taken with the next term if it has expired or :holder holds it without knowing (a
-- restarted holder); else untouched. Returns the row as it stands, with its seconds left.
WITH taken AS (
    INSERT INTO offload_leaders AS l (name, holder, term, since, expires_at)
    VALUES (:name, :holder, 1, now(), now() + make_interval(secs => :ttl))
    ON CONFLICT (name) DO UPDATE SET
        holder = excluded.holder,
        term = CASE WHEN {renewal} THEN l.term ELSE l.term + 1 END,
        since = CASE WHEN {renewal} THEN l.since ELSE excluded.since END,
        expires_at = excluded.expires_at
    WHERE {renewal} OR l.expires_at <= now() OR l.holder = :holder
    RETURNING l.holder, l.term, l.since, l.expires_at
)
SELECT holder, term, since, expires_at, extract(epoch FROM expires_at - now())::float8
FROM taken
UNION ALL
SELECT holder, term, since, expires_at, extract(epoch FROM expires_at - now())::float8
FROM offload_leaders WHERE name = :name AND NOT EXISTS (SELECT 1 FROM taken)

-- name: renewal
-- Fragment: the stored lease is :holder's own, in term :term, and still running.
l.holder = :holder AND l.term = :term AND l.expires_at > now()

-- name: read
-- The lease :name as it stands, with its seconds left (negative once expired).
SELECT holder, term, since, expires_at, extract(epoch FROM expires_at - now())::float8
FROM offload_leaders WHERE name = :name

-- name: resign
-- End :holder's term :term of the lease :name now, so that a candidate need not wait for
-- it to expire; a lease it no longer holds is left alone.
UPDATE offload_leaders SET expires_at = now()
WHERE name = :name AND holder = :holder AND term = :term AND expires_at > now()
