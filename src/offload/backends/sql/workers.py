"""The workers area: the registry of running workers and their heartbeats."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import orjson

from offload.backends.sql.rows import workers_from
from offload.core.records import WorkerCensus, WorkerInfo

if TYPE_CHECKING:
    from offload.backends.sql.connector import SqlBackend


class SqlWorkers:
    """`WorkerStore` over a backend's `workers.sql`."""

    def __init__(self, db: SqlBackend) -> None:
        self.db = db
        self.q = db.q["workers"]

    def register(self, info: WorkerInfo) -> None:
        values = {
            "id": info.id,
            "host": info.host,
            "pid": info.pid,
            "queues": orjson.dumps(info.queues).decode(),
            "concurrency": info.concurrency,
            "wake": info.wake,
        }
        with self.db.tx() as cur:
            cur.execute(self.q["register"], values)

    def heartbeat(self, worker: str, rates: Mapping[str, float] | None = None) -> None:
        values = {"id": worker, "rates": None if rates is None else orjson.dumps(rates).decode()}
        with self.db.tx(single=True, relaxed=True) as cur:
            cur.execute(self.q["heartbeat"], values)

    def unregister(self, worker: str) -> None:
        with self.db.tx() as cur:
            cur.execute(self.q["unregister"], {"id": worker})

    def prune(self, older_than: float) -> int:
        with self.db.tx() as cur:
            cur.execute(self.q["prune"], {"age": older_than})
            return int(cur.rowcount)

    def census(self, lost_after: float) -> WorkerCensus:
        with self.db.read() as cur:
            cur.execute(self.q["census"], {"lost_after": lost_after})
            alive, lost, slots = cur.fetchone()
        return WorkerCensus(int(alive), int(lost), int(slots))

    def list(self) -> list[WorkerInfo]:
        with self.db.read() as cur:
            cur.execute(self.q["list"])
            return workers_from(cur, cur.fetchall(), self.db.time)
