-- Named queries of the PostgreSQL connector. Every file of this backend: :name placeholders
-- become psycopg's %(name)s; lists arrive as JSON text or arrays; now() is the transaction's
-- start, one instant per statement; {at} is an optional :now (an injected clock) or now().

-- name: now
SELECT now()

-- name: wake
-- Workers LISTEN on offload_jobs; the payload is a queue name only (NOTIFY is a hint,
-- capped at 8000 bytes). Inserts NOTIFY from their own statements instead (jobs.sql).
SELECT pg_notify('offload_jobs', q) FROM unnest(:queues::text[]) AS q
