-- Named queries of the leaders area (PostgreSQL): leases of the maintenance duties.

-- name: elect
-- Renew or take the lease :name for :holder, :ttl seconds from now by this clock, in one
-- statement. Renewed (term kept) if :holder holds it in term :term and it has not expired;
-- taken with the next term if it has expired, or :holder holds it without knowing (a
-- restarted holder); else left as it is. Returns the row as it stands (the latest commit:
-- the conflict waits for any candidate taking it at the same moment), with its seconds
-- left. Candidates run it only once a read found the lease expired, so the row version it
-- writes when it changes nothing is rare.
INSERT INTO offload_leaders AS l (name, holder, term, since, expires_at)
VALUES (:name, :holder, 1, now(), now() + make_interval(secs => :ttl))
ON CONFLICT (name) DO UPDATE SET
    holder = CASE WHEN {free} THEN excluded.holder ELSE l.holder END,
    term = CASE WHEN {renewal} THEN l.term WHEN {free} THEN l.term + 1 ELSE l.term END,
    since = CASE WHEN {renewal} THEN l.since WHEN {free} THEN excluded.since ELSE l.since END,
    expires_at = CASE WHEN {free} THEN excluded.expires_at ELSE l.expires_at END
RETURNING holder, term, since, expires_at, extract(epoch FROM expires_at - now())::float8

-- name: renewal
-- Fragment: the stored lease is :holder's own, in term :term, and still running.
(l.holder = :holder AND l.term = :term AND l.expires_at > now())

-- name: free
-- Fragment: :holder may have the lease: it expired, or it is :holder's (a renewal, or a
-- restarted holder's, which starts a new term).
(l.expires_at <= now() OR l.holder = :holder)

-- name: read
-- The lease :name as it stands, with its seconds left (<= 0 once expired).
SELECT holder, term, since, expires_at, extract(epoch FROM expires_at - now())::float8
FROM offload_leaders WHERE name = :name

-- name: resign
-- End :holder's term :term of the lease :name now, so that a candidate need not wait for
-- it to expire; a lease it no longer holds is left alone.
UPDATE offload_leaders SET expires_at = now()
WHERE name = :name AND holder = :holder AND term = :term AND expires_at > now()
