"""The claims area: a worker's leases and what it records about the attempts it holds.

Every write here is a worker's bookkeeping (`relaxed`: its commit need not wait for the
disk) and fenced by (worker, id, attempt): a worker whose lease was taken over changes
nothing. Lists of leases or outcomes travel as one JSON text, so each call is one statement.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from offload.backends.params import (
    Claimed,
    ClaimParams,
    FinishParams,
    Heartbeat,
    HeartbeatParams,
    Lease,
    ProgressReport,
    ReleaseParams,
    RescueParams,
)
from offload.backends.sql.rows import Columns, column, jobs_from
from offload.core.job import Job
from offload.core.states import JobState

if TYPE_CHECKING:
    from offload.backends.sql.connector import SqlBackend


#: Seconds this process trusts its view of which queues need the limited claim. A stale
#: view only delays: the plain claim's guard takes nothing a limit counts.
VIEW_SECONDS = 5.0
#: Due jobs a limited claim reads at most, in claim order: the bound on its cost. Keys at
#: their limit are skipped within them; jobs further back wait until those ahead start.
WINDOW = 1000


class SqlClaims:
    """`ClaimStore` over a backend's `claims.sql`.

    Claims take one of two statements per queue: the plain claim (no limit to count) or
    the limited claim (paused queue, queue limits, or jobs a task limit counts). Which one
    comes from a per-process view, queue -> (limited, when seen), refreshed by a probe when
    a plain claim takes fewer jobs than asked and the view is older than `VIEW_SECONDS`.
    """

    def __init__(self, db: SqlBackend) -> None:
        self.db = db
        self.q = db.q["claims"]
        self._view: dict[str, tuple[bool, float]] = {}

    def claim(self, params: ClaimParams) -> list[Job]:
        return self.take(params).jobs

    def take(self, params: ClaimParams) -> Claimed:
        if params.limit < 1:  # SQLite would read LIMIT -1 as "no limit", PostgreSQL fail
            return Claimed([])
        limited, seen = self._view.get(params.queue, (False, -VIEW_SECONDS))
        fresh = time.monotonic() - seen < VIEW_SECONDS
        if limited and fresh:
            return self._limited(params)
        values = self._values(params)
        with self.db.tx(single=True, relaxed=True) as cur:
            cur.execute(self.q["claim"], values)
            jobs = jobs_from(cur, cur.fetchall(), self.db.time)
        if len(jobs) < params.limit and not fresh:
            with self.db.read() as cur:
                cur.execute(self.q["probe"], values)
                row = cur.fetchone()
            limited = bool(row[0])
            self._view[params.queue] = (limited, time.monotonic())
            if limited:
                more = self._limited(replace(params, limit=params.limit - len(jobs)))
                return Claimed(_in_order(jobs + more.jobs), more.wait)
        return Claimed(_in_order(jobs))

    def _values(self, params: ClaimParams) -> dict[str, Any]:
        return {
            "worker": params.worker,
            "queue": params.queue,
            "limit": params.limit,
            "lease": params.lease,
            "now": self.db.time_param(params.now),
        }

    def _limited(self, params: ClaimParams) -> Claimed:
        """The limited claim: pick what every limit allows, start it, log its rate starts,
        in one transaction that no other limited claim overlaps (see `limited_begin`)."""
        values = self._values(params)
        values["window"] = WINDOW
        with self.db.tx(relaxed=True) as cur:
            cur.execute(self.q["limited_begin"], values)
            now = cur.fetchone()[0]
            values["now"] = now
            cur.execute(self.q["limited_pick"], values)
            rows = cur.fetchall()
            c = Columns.of(cur).index
            ids: list[int] = []
            buckets: list[str] = []
            periods: dict[str, float] = {}
            summary = rows[-1]  # the pick's last row: the queue's bucket and the next start
            for row in rows[:-1]:
                ids.append(int(row[c["id"]]))
                if row[c["bucket"]] is not None:
                    buckets.append(row[c["bucket"]])
                    periods[row[c["bucket"]]] = float(row[c["period"]])
            if ids and summary[c["bucket"]] is not None:
                buckets += [summary[c["bucket"]]] * len(ids)
                periods[summary[c["bucket"]]] = float(summary[c["period"]])
            jobs: list[Job] = []
            if ids:
                values["ids"] = orjson.dumps(ids).decode()
                cur.execute(self.q["limited_take"], values)
                jobs = jobs_from(cur, cur.fetchall(), self.db.time)
            if buckets:
                cur.execute(
                    self.q["rate_log"], {"now": now, "buckets": orjson.dumps(buckets).decode()}
                )
                prune = [{"bucket": b, "period": p} for b, p in periods.items()]
                cur.execute(
                    self.q["rate_prune"], {"now": now, "prune": orjson.dumps(prune).decode()}
                )
        next_at = summary[c["next_at"]]
        wait = None
        if next_at is not None:
            wait = max((self.db.time(next_at) - self.db.time(now)).total_seconds(), 0.0)
        return Claimed(_in_order(jobs), wait)

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
            rows = cur.fetchall()
            kept = {int(job_id) for job_id in column(cur, rows, "id")}
            # A limited job's end frees a slot some worker may be waiting for: wake them.
            freed = {
                str(queue)
                for queue, counted in zip(
                    column(cur, rows, "queue"), column(cur, rows, "counted"), strict=True
                )
                if counted or self._view.get(str(queue), (False, 0.0))[0]
            }
            if freed:
                self.db.wake(cur, freed)
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


def _in_order(jobs: list[Job]) -> list[Job]:
    """Jobs as a worker starts them: higher priority first, then older."""
    jobs.sort(key=lambda job: (-job.priority, job.id))
    return jobs


def _leases_json(leases: Sequence[Lease]) -> str:
    return orjson.dumps([{"id": x.id, "attempt": x.attempt} for x in leases]).decode()
