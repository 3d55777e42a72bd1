"""`ShardedBackend`: one `Backend` over several PostgreSQL clusters, queues routed by a map.

Internal API (docs/sharding.md). Beneath the App, so the single-cluster path is untouched:
an App given `shards` holds this instead of one backend. Each operation goes where its
data is:

- by queue (or topic): enqueues, workflows, topics, a queue's events;
- by id: a job's or a workflow's id carries its shard in its high bits (`SHARD_BITS`), so
  reads, cancels, retries, outcomes, leases and progress go straight to it;
- to every shard: claims (a worker serves its queues wherever they hold jobs, so jobs left
  on a queue's old shard after a move are still run), rescue, pruning, queue policies,
  the worker registry; listings and counts are merged;
- to the home shard (the first): cron schedules, API tokens, the change feed without a
  queue, the clock.

A move (`move`) fences the queue on its old shard in the database: an insert there is
refused naming the new shard (`QueueMoved`), which this router follows, so a producer with
a stale map never stores a job where its queue no longer is.
"""

from __future__ import annotations

from offload.backends.shards.router import ShardedBackend, open_shards
from offload.backends.shards.shardmap import (
    FAIR_EVERY,
    MAX_SHARDS,
    SHARD_BITS,
    Member,
    placement,
    shard_of,
)

__all__ = [
    "FAIR_EVERY",
    "MAX_SHARDS",
    "SHARD_BITS",
    "Member",
    "ShardedBackend",
    "open_shards",
    "placement",
    "shard_of",
]
