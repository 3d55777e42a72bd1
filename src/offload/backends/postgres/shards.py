"""A PostgreSQL database's side of sharding (docs/sharding.md): the fences of the queues it
gave away, and the range its job and workflow ids are given from."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from offload.backends.sql.queries import Queries

if TYPE_CHECKING:
    from offload.backends.postgres.backend import PostgresBackend


@functools.cache
def _queries() -> Queries:
    return Queries.load("offload.backends.postgres", "shards", {}, pyformat=True)


class PgShards:
    """`ShardStore` over `shards.sql`."""

    def __init__(self, db: PostgresBackend) -> None:
        self.db = db
        self.q = _queries()

    @contextmanager
    def moving(self) -> Iterator[None]:
        with self.db.tx() as cur:
            cur.execute(self.q["move_lock"])
            yield

    def fence(self, queue: str, shard: str) -> None:
        with self.db.tx() as cur:
            cur.execute(self.q["fence_trigger"])
            cur.execute(self.q["fence"], {"queue": queue, "shard": shard})

    def unfence(self, queue: str) -> None:
        with self.db.tx() as cur:
            cur.execute(self.q["unfence"], {"queue": queue})
            if not cur.rowcount:
                return  # nothing was fenced here: the trigger stays as it is
            cur.execute(self.q["fence_lock"])
            cur.execute(self.q["fenced"])
            if not cur.fetchone()[0]:
                cur.execute(self.q["drop_trigger"])

    def fences(self) -> dict[str, str]:
        with self.db.read() as cur:
            cur.execute(self.q["fences"])
            return {str(queue): str(shard) for queue, shard in cur.fetchall()}

    def set_floor(self, floor: int) -> None:
        with self.db.tx() as cur:
            cur.execute(self.q["floor_jobs"], {"floor": floor})
            cur.execute(self.q["floor_workflows"], {"floor": floor})

    def ids(self) -> tuple[int | None, int, int | None, int]:
        with self.db.read() as cur:
            cur.execute(self.q["range"])
            jobs_min, jobs_next, flows_min, flows_next = cur.fetchone()
        return jobs_min, int(jobs_next), flows_min, int(flows_next)

    def unfinished(self, queue: str) -> int:
        with self.db.read() as cur:
            cur.execute(self.q["unfinished"], {"queue": queue})
            return int(cur.fetchone()[0])
