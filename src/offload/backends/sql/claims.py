"""The claims area: a worker's leases and what it records about the attempts it holds.

Every write here is a worker's bookkeeping (`relaxed`: its commit need not wait for the
disk) and fenced by (worker, id, attempt): a worker whose lease was taken over changes
nothing. Lists of leases or outcomes travel as one JSON text, so each call is one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import orjson

from offload.backends.params import (
    ClaimParams,
    FinishParams,
    Heartbeat,
    HeartbeatParams,
    Lease,
    ProgressReport,
    ReleaseParams,
    RescueParams,
)
from offload.backends.sql.rows import column, jobs_from
from offload.core.job import Job
from offload.core.states import JobState

if TYPE_CHECKING:
    from offload.backends.sql.connector import SqlBackend


class SqlClaims:
    """`ClaimStore` over a backend's `claims.sql`."""

    def __init__(self, db: SqlBackend) -> None:
        self.db = db
        self.q = db.q["claims"]

    def claim(self, params: ClaimParams) -> list[Job]:
        if params.limit < 1:  # SQLite would read LIMIT -1 as "no limit", PostgreSQL fail
            return []
        values = {
            "worker": params.worker,
            "queue": params.queue,
            "limit": params.limit,
            "lease": params.lease,
            "now": self.db.time_param(params.now),
        }
        with self.db.tx(single=True, relaxed=True) as cur:
            cur.execute(self.q["claim"], values)
            jobs = jobs_from(cur, cur.fetchall(), self.db.time)
        jobs.sort(key=lambda job: (-job.priority, job.id))
        return jobs

    def heartbeat(self, params: HeartbeatParams) -> Heartbeat:
        leases = params.leases
        if not leases:
            return Heartbeat([], [])
        values = {
            "worker": params.worker,
            "leases": _leases_json(leases),
            "ids": [x.id for x in leases],
            "lease": params.lease,
            "now": self.db.time_param(params.now),
        }
        with self.db.tx(single=True, relaxed=True) as cur:
            cur.execute(self.q["heartbeat"], values)
            rows = cur.fetchall()
            kept = column(cur, rows, "id")
            cancel = column(cur, rows, "cancel_requested")
        held = {int(job_id) for job_id in kept}
        return Heartbeat(
            lost=[x.id for x in leases if x.id not in held],
            cancel=sorted(int(job_id) for job_id, asked in zip(kept, cancel, strict=True) if asked),
        )

    def progress(self, worker: str, reports: Sequence[ProgressReport]) -> None:
        if not reports:
            return
        items = orjson.dumps(
            [
                {
                    "id": r.id,
                    "attempt": r.attempt,
                    "progress": orjson.dumps(
                        {"fraction": r.fraction, "message": r.message}
                    ).decode(),
                }
                for r in reports
            ]
        ).decode()
        with self.db.tx(single=True, relaxed=True) as cur:
            cur.execute(
                self.q["progress"],
                {"worker": worker, "items": items, "ids": [r.id for r in reports]},
            )

    def finish(self, params: FinishParams) -> list[int]:
        outcomes = params.outcomes
        if not outcomes:
            return []
        clean = self.db.storable_json
        items = orjson.dumps(
            [
                {
                    "id": o.id,
                    "attempt": o.attempt,
                    "state": str(o.state),
                    "result": o.result,
                    "error": None if o.error is None else clean(o.error),
                    "delay": o.delay,
                }
                for o in outcomes
            ]
        ).decode()
        values = {
            "worker": params.worker,
            "items": items,
            "ids": [o.id for o in outcomes],
            "now": self.db.time_param(params.now),
        }
        with self.db.tx(single=True, relaxed=True) as cur:
            cur.execute(self.q["finish"], values)
            kept = {int(job_id) for job_id in column(cur, cur.fetchall(), "id")}
        return [o.id for o in outcomes if o.id not in kept]

    def release(self, params: ReleaseParams) -> int:
        leases = params.leases
        if not leases:
            return 0
        values = {
            "worker": params.worker,
            "leases": _leases_json(leases),
            "ids": [x.id for x in leases],
        }
        with self.db.tx(single=True, relaxed=True) as cur:
            cur.execute(self.q["release"], values)
            queues = column(cur, cur.fetchall(), "queue")
            if queues:
                self.db.wake(cur, set(queues))
        return len(queues)

    def rescue(self, params: RescueParams) -> list[int]:
        with self.db.tx(single=True, relaxed=True) as cur:
            cur.execute(self.q["rescue"], {"now": self.db.time_param(params.now)})
            rows = cur.fetchall()
            ids = column(cur, rows, "id")
            queues = {
                str(queue)
                for queue, state in zip(
                    column(cur, rows, "queue"), column(cur, rows, "state"), strict=True
                )
                if state == JobState.AVAILABLE
            }
            if queues:
                self.db.wake(cur, queues)
        return sorted(int(job_id) for job_id in ids)


def _leases_json(leases: Sequence[Lease]) -> str:
    return orjson.dumps([{"id": x.id, "attempt": x.attempt} for x in leases]).decode()
