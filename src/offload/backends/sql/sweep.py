"""The sweep area: shedding a queue's waiting low-priority jobs above its shed watermark,
and bringing shed jobs back (re-admitted, or taken for their task's sweep hook) once the
queue is at or under its resume watermark. The scheduler runs these on every replica; each
is atomic in the database, so replicas never shed, re-admit or take a job twice."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from offload.backends.params import ReleaseParams, SweepReadmitParams, SweepTakeParams
from offload.backends.sql.rows import column, jobs_from
from offload.core.job import Job
from offload.core.records import JobChange
from offload.core.states import JobState

if TYPE_CHECKING:
    from offload.backends.sql.connector import SqlBackend


class SqlSweep:
    """`SweepStore` over a backend's `sweep.sql`."""

    def __init__(self, db: SqlBackend) -> None:
        self.db = db
        self.q = db.q["sweep"]

    def shed(self, queue: str) -> list[int]:
        with self.db.tx(single=True) as cur:
            cur.execute(self.q["shed"], {"queue": queue})
            ids = sorted(int(i) for i in column(cur, cur.fetchall(), "id"))
            self.db.events.written(cur, ids, "shed", by="sweep.shed")
        return ids

    def readmit(self, params: SweepReadmitParams) -> list[JobChange]:
        values = {
            "queue": params.queue,
            "hooked": orjson.dumps(list(params.hooked)).decode(),
            "now": self.db.time_param(params.now),
        }
        with self.db.tx() as cur:
            cur.execute(self.q["lock"], {"queue": params.queue})
            cur.fetchall()
            cur.execute(self.q["readmit"], values)
            rows = cur.fetchall()
            changes = [
                JobChange(int(i), str(q), JobState(s))
                for i, q, s in zip(
                    column(cur, rows, "id"),
                    column(cur, rows, "queue"),
                    column(cur, rows, "state"),
                    strict=True,
                )
            ]
            self.db.events.written(cur, [c.id for c in changes], "requeued")
            if any(c.state is JobState.AVAILABLE for c in changes):
                self.db.wake(cur, (params.queue,))
        return sorted(changes, key=lambda c: c.id)

    def take(self, params: SweepTakeParams) -> list[Job]:
        if params.limit < 1:  # SQLite would read LIMIT -1 as "no limit"
            return []
        values = {
            "queue": params.queue,
            "task": params.task,
            "worker": params.worker,
            "limit": params.limit,
            "lease": params.lease,
            "now": self.db.time_param(params.now),
        }
        with self.db.tx(single=True) as cur:
            cur.execute(self.q["take"], values)
            jobs = jobs_from(cur, cur.fetchall(), self.db.time)
            self.db.events.written(cur, [job.id for job in jobs], "started", by="sweep.take")
        return sorted(jobs, key=lambda job: (job.enqueued_at, job.id))

    def untake(self, params: ReleaseParams) -> int:
        leases = params.leases
        if not leases:
            return 0
        values = {
            "worker": params.worker,
            "leases": orjson.dumps([{"id": x.id, "attempt": x.attempt} for x in leases]).decode(),
            "ids": [x.id for x in leases],
        }
        with self.db.tx(single=True) as cur:
            cur.execute(self.q["untake"], values)
            ids = sorted(int(i) for i in column(cur, cur.fetchall(), "id"))
            # back to shed, its attempt unspent
            self.db.events.written(cur, ids, "shed", by="sweep.untake")
        return len(ids)
