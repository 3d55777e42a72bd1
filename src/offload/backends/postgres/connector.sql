-- Named queries of the PostgreSQL connector. Every file of this backend: :name placeholders
-- become psycopg's %(name)s; lists arrive as JSON text or arrays; now() is the transaction's
-- start, one instant per statement; {at} is an optional :now (an injected clock) or now().
-- Wake-ups need no statement here: the offload_jobs_wake trigger (migration 3) NOTIFYs.

-- name: now
SELECT now()
