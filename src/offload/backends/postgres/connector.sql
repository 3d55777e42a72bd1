-- Named queries of the PostgreSQL connector. Every file of this backend: :name placeholders
-- become psycopg's %(name)s; lists arrive as JSON text or arrays; now() is the transaction's
-- start, one instant per statement; {at} is an optional :now (an injected clock) or now().

-- name: now
SELECT now()

-- name: wake
-- Workers LISTEN on offload_jobs; the payload is a queue name only (NOTIFY is a hint,
-- capped at 8000 bytes). Inserts NOTIFY from their own statements instead (jobs.sql).
SELECT pg_notify('offload_jobs', q) FROM unnest(:queues::text[]) AS q

-- name: wake_committed
-- The wake-ups of an enqueue that deferred them (PostgresBackend.enqueuing), sent once its
-- commit is durable: its queues' workers and the event listeners. A transaction of its
-- own, whose commit need not wait for the disk (a wake-up is a hint; workers also poll).
-- Prepared and run through libpq directly: $1 is the queues as a JSON array.
SELECT set_config('synchronous_commit', 'off', true),
    (SELECT count(pg_notify('offload_jobs', q)) FROM json_array_elements_text($1::json) AS q),
    pg_notify('offload_events', '')
