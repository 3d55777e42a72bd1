-- offload schema 1 for PostgreSQL. Payload columns are `json` (kept verbatim, so every value
-- the serializer accepts round-trips, "\u0000" included); errors are built in SQL as jsonb.
CREATE TABLE offload_schema (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE offload_jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task text NOT NULL,
    queue text NOT NULL,
    args json NOT NULL DEFAULT '[]',
    kwargs json NOT NULL DEFAULT '{}',
    priority integer NOT NULL DEFAULT 0,
    state text NOT NULL CHECK (state IN ('waiting', 'scheduled', 'available', 'running',
        'retrying', 'succeeded', 'dead', 'cancelled', 'shed')),
    attempt integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    run_at timestamptz NOT NULL,
    enqueued_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    lease_until timestamptz,
    worker text,
    result json,
    errors jsonb NOT NULL DEFAULT '[]',
    unique_key text,
    idempotency_key text,
    group_key text,
    meta json NOT NULL DEFAULT '{}',
    cancel_requested boolean NOT NULL DEFAULT false,
    progress json
);

-- The claim walks this index in priority order and stops after LIMIT rows.
CREATE INDEX offload_jobs_claim ON offload_jobs (queue, priority DESC, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retrying');
CREATE INDEX offload_jobs_lease ON offload_jobs (lease_until) WHERE state = 'running';
CREATE INDEX offload_jobs_state ON offload_jobs (state, queue);
CREATE INDEX offload_jobs_finished ON offload_jobs (state, finished_at)
    WHERE state IN ('succeeded', 'dead', 'cancelled');
CREATE UNIQUE INDEX offload_jobs_idempotency ON offload_jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX offload_jobs_unique ON offload_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state NOT IN ('succeeded', 'dead', 'cancelled');

CREATE TABLE offload_workers (
    id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    queues json NOT NULL,
    concurrency integer NOT NULL,
    started_at timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    wake text
);
