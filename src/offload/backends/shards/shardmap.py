"""The shard map and shard-qualified ids: which shard a queue lives on, and which shard gave
out a job or workflow id (its high bits)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from offload.backends.base import Backend, ShardStore
from offload.core.errors import (
    ConfigurationError,
    QueueOnTwoShards,
    UnknownShard,
)
from offload.core.options import check_name

#: Low bits of an id numbered by its shard; the high bits are the shard's position. 2**48
#: ids per shard, and ids stay below 2**53 (exact in JavaScript) for up to 32 shards.
SHARD_BITS = 48
MAX_SHARDS = 32
#: One claim in this many starts at each shard in turn rather than at the queue's own (see
#: `ShardedBackend.claiming`): rare enough to cost few empty probes, often enough that jobs
#: left on an old shard start within a few turns of a worker.
FAIR_EVERY = 8


def shard_of(job_id: int) -> int:
    """The position of the shard that gave out a job or workflow id."""
    return job_id >> SHARD_BITS


@dataclass(frozen=True, slots=True)
class Member:
    """One shard: its name, its backend and its side of sharding."""

    name: str
    backend: Backend
    store: ShardStore


def placement(names: Sequence[str], shard_map: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """Queue (or topic) -> shard name, from a map of shard name -> its queues; raises
    UnknownShard or QueueOnTwoShards naming what is wrong (checked at start-up)."""
    placed: dict[str, list[str]] = {}
    for shard, queues in shard_map.items():
        if shard not in names:
            raise UnknownShard(shard, list(names))
        if isinstance(queues, str):
            raise ConfigurationError(
                f"shard_map[{shard!r}] must be a list of queue names, got the string {queues!r}"
            )
        for queue in queues:
            check_name("queue", queue)
            placed.setdefault(queue, [])
            if shard not in placed[queue]:
                placed[queue].append(shard)
    for queue, shards in placed.items():
        if len(shards) > 1:
            raise QueueOnTwoShards(queue, shards)
    return {queue: shards[0] for queue, shards in placed.items()}
