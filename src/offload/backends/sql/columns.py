"""The column lists that queries select, so that every row decoder finds what it reads."""

JOB_COLUMNS = (
    "id, task, queue, args, kwargs, priority, state, attempt, max_attempts, run_at, "
    "enqueued_at, started_at, finished_at, lease_until, worker, result, errors, "
    "unique_key, idempotency_key, group_key, meta, progress, cancel_requested, replace_key, "
    "superseded_by, channel, workflow_id, node, parents, takes"
)
WORKER_COLUMNS = "id, host, pid, queues, concurrency, started_at, heartbeat_at, wake"
