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
    GroupClaimParams,
    Heartbeat,
    HeartbeatParams,
    Lease,
    ProgressReport,
    ReleaseParams,
    RescueParams,
)
from offload.backends.sql.rows import Columns, cells, column, keyed_jobs_from
from offload.core.job import Job
from offload.core.states import FINISHED, JobState

if TYPE_CHECKING:
    from offload.backends.sql.connector import SqlBackend


#: Jobs a claim started, each with its virtual deadline (sort_at) to order them by.
Started = list[tuple[Any, Job]]

#: Seconds this process trusts its view of which queues need the limited claim. A stale
#: view only delays: the plain claim's guard takes nothing a limit counts.
VIEW_SECONDS = 5.0
#: Due jobs a limited claim reads at most, in claim order: the bound on its cost. Keys at
#: their limit are skipped within them; jobs further back wait until those ahead start.
WINDOW = 2000


class SqlClaims:
    """`ClaimStore` over a backend's `claims.sql`.

    Claims take one of two statements per queue: the plain claim (no limit to count) or
    the limited claim (paused queue, queue limits, or jobs a task limit counts). Which one
    comes from a per-process view, queue -> (limited, when seen), refreshed by a probe
    (one read) after a plain claim once the view is older than `VIEW_SECONDS`, or at once
    when a plain claim took nothing (its guard may have stopped it).
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
            return _in_order(*self._limited(params))
        values = self._values(params)
        row = None
        with self.db.tx(single=True, relaxed=True) as cur:
            cur.execute(self.q["claim"], values)
            jobs = self._started(cur, cur.fetchall(), "claims.claim")
            if not fresh or not jobs:  # a stale view, or the guard may have stopped it
                # On the claim's own connection: a read of its own would take another
                # (on PostgreSQL, of another kind, closing an idle one to open it).
                cur.execute(self.q["probe"], values)
                row = cur.fetchone()
        if row is not None:
            limited = bool(row[0])
            self._view[params.queue] = (limited, time.monotonic())
            if limited and len(jobs) < params.limit:
                more, wait = self._limited(replace(params, limit=params.limit - len(jobs)))
                return _in_order(jobs + more, wait)
        return _in_order(jobs, None)

    def _started(self, cur: Any, rows: Sequence[Any], statement: str) -> Started:
        """Rows claimed by `statement` ("area.name") decoded, each with its virtual deadline
        (`sort_at`); their `started` events written in the claim's transaction, unless the
        statement wrote them itself (PostgreSQL's)."""
        started = keyed_jobs_from(cur, rows, self.db.time, "sort_at")
        self.db.events.written(cur, [job.id for _, job in started], "started", by=statement)
        return started

    def _values(self, params: ClaimParams) -> dict[str, Any]:
        return {
            "worker": params.worker,
            "queue": params.queue,
            "limit": params.limit,
            "lease": params.lease,
            "now": self.db.time_param(params.now),
        }

    def _limited(self, params: ClaimParams) -> tuple[Started, float | None]:
        """The limited claim: pick what every limit allows, start it, log its rate starts,
        in one transaction that no other limited claim overlaps (see `limited_begin`).
        Each pick reads the clock it stamps starts with (`clock`; see `limited_pick`).

        The pick reads a few due jobs per job asked for; while keys at their limit fill
        what it read, it reads 8 times more, up to `WINDOW`. On PostgreSQL the pick starts
        the jobs and logs their starts itself (writes within a WITH); SQLite, whose SELECT
        cannot write, takes them with `limited_take` and logs with `rate_log`. Returns the
        jobs started, and the seconds until a job a rate holds back may start."""
        values = self._values(params)
        jobs: Started = []
        with self.db.tx(relaxed=True) as cur:
            cur.execute(self.q["limited_begin"], values)
            begun = cur.fetchone()
            if "now" in (named := Columns.of(cur).index):  # SQLite: one clock for the claim
                values["now"] = begun[named["now"]]
            window = min(2 * params.limit + 8, WINDOW)
            while True:
                values["window"] = window
                values["limit"] = params.limit - len(jobs)
                cur.execute(self.q["limited_pick"], values)
                rows = cur.fetchall()
                c = Columns.of(cur).index
                summary = rows[0]  # every row: the next start, the jobs read, the clock
                rows = [row for row in rows if row[c["id"]] is not None]
                if "limited_take" in self.q.text:
                    jobs += self._take(cur, values, rows, c, summary)
                else:
                    jobs += self._started(cur, rows, "claims.limited_pick")
                if len(jobs) >= params.limit or summary[c["seen"]] < window or window == WINDOW:
                    break
                window = min(window * 8, WINDOW)
        next_at = summary[c["next_at"]]
        wait = None
        if next_at is not None:
            now = summary[c["clock"]]
            wait = max((self.db.time(next_at) - self.db.time(now)).total_seconds(), 0.0)
        return jobs, wait

    def _take(
        self, cur: Any, values: dict[str, Any], rows: list[Any], c: dict[str, int], summary: Any
    ) -> Started:
        """SQLite's second half of a limited claim: start the picked jobs, log their starts
        per rate bucket (a task's, the queue's) and forget rows out of every window."""
        if not rows:
            return []
        starts: dict[str, list[Any]] = {}  # bucket -> [starts, period]
        for row in rows:
            if row[c["bucket"]] is not None:
                starts.setdefault(row[c["bucket"]], [0, float(row[c["period"]])])[0] += 1
        if summary[c["queue_bucket"]] is not None:
            starts[summary[c["queue_bucket"]]] = [len(rows), float(summary[c["queue_period"]])]
        values["picked"] = orjson.dumps([int(row[c["id"]]) for row in rows]).decode()
        cur.execute(self.q["limited_take"], values)
        jobs = self._started(cur, cur.fetchall(), "claims.limited_take")
        if starts:
            values["buckets"] = orjson.dumps(
                [{"bucket": b, "n": n, "period": p} for b, (n, p) in starts.items()]
            ).decode()
            cur.execute(self.q["rate_log"], values)
            cur.execute(self.q["rate_prune"], values)
        return jobs

    def take_group(self, params: GroupClaimParams) -> Claimed:
        """One group claim (`group_claim`; on PostgreSQL after `group_begin`'s lock); when
        it takes nothing, `group_wait`, in the same transaction, says when the next group is
        ready by waiting. A wait
        already past means a ready group was held back (a paused or full queue): then no
        hint, as the finished job or wake-up that frees it wakes the worker.

        Both statements judge readiness at one instant: where each statement reads the
        clock anew, a group turning ready between them would look held back (and a burst
        worker would stop with it due)."""
        now = self.db.time_param(params.now)
        if params.now is None and self.db.clock_per_statement:
            now = self.db.now_param()
        values = {
            "worker": params.worker,
            "queue": params.queue,
            "task": params.task,
            "size": params.size,
            "max_wait": params.max_wait,
            "lease": params.lease,
            "now": now,
        }
        with self.db.tx(relaxed=True) as cur:  # one transaction: the lock lasts to its end
            if "group_begin" in self.q.text:
                cur.execute(self.q["group_begin"], values)
            cur.execute(self.q["group_claim"], values)
            started = self._started(cur, cur.fetchall(), "claims.group_claim")
            if started:
                return _in_order(started, None)
            cur.execute(self.q["group_wait"], values)
            row = cur.fetchone()
        wait = None if row is None or row[0] is None else float(row[0])
        return Claimed([], wait if wait is not None and wait > 0 else None)

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
            changed = [int(job_id) for job_id in column(cur, cur.fetchall(), "id")]
            self.db.events.written(cur, changed, "progress", by="claims.progress")

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
            "plain": True,
        }
        publish = {o.id: o.publish for o in outcomes if o.publish}
        kept: set[int] = set()
        if not publish:  # else the publishes need a transaction: the path below
            with self.db.tx(single=True, relaxed=True) as cur:
                kept = self._finish(cur, values)
        if len(kept) < len(outcomes):
            # Jobs others wait for were left (`plain`) to a transaction of their own, which
            # releases their children with them: PostgreSQL runs a single statement as its
            # own transaction, with no room for more. A lease lost also comes here, to
            # change nothing.
            values["plain"] = False
            with self.db.tx(relaxed=True) as cur:
                kept |= self._finish(cur, values)
                self._publish(cur, [m for i in sorted(kept & publish.keys()) for m in publish[i]])
        return [o.id for o in outcomes if o.id not in kept]

    def _publish(self, cur: Any, messages: list[tuple[str, str | None, str]]) -> None:
        """Publish the messages of outcomes just recorded, topic by topic, in `cur`'s
        transaction: a stage's output lands once, with the acknowledgement of its input."""
        by_topic: dict[str, list[tuple[str | None, str]]] = {}
        for topic, key, value in messages:
            by_topic.setdefault(topic, []).append((key, value))
        # In name order: concurrent finishes lock the topic rows in one order, so two
        # publishing to the same topics never deadlock (a deadlock elsewhere is transient).
        for topic, pairs in sorted(by_topic.items()):
            self.db.topics.append(cur, topic, pairs)

    def _finish(self, cur: Any, values: dict[str, Any]) -> set[int]:
        """Run `finish` on `cur`: the ids it recorded."""
        cur.execute(self.q["finish"], values)
        rows = cur.fetchall()
        names = ("id", "queue", "counted", "state", "has_children")
        kept, freed, ended = set(), set(), []
        for job_id, queue, counted, state, waited_for in cells(cur, rows, *names):
            kept.add(int(job_id))
            # A limited job's end frees a slot some worker may be waiting for: wake them.
            if counted or self._view.get(str(queue), (False, 0.0))[0]:
                freed.add(str(queue))
            if waited_for and state in FINISHED:
                ended.append(int(job_id))
        self.db.events.written(cur, kept, by="claims.finish")  # after reading `cur`'s columns
        if ended:
            self.db.workflows.released(cur, ended)
        if freed:
            self.db.wake(cur, freed)
        return kept

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
            rows = cur.fetchall()
            queues = column(cur, rows, "queue")
            released = [int(job_id) for job_id in column(cur, rows, "id")]
            self.db.events.written(cur, released, "requeued", by="claims.release")
            if queues:
                self.db.wake(cur, set(queues))
        return len(queues)

    def rescue(self, params: RescueParams) -> list[int]:
        # A transaction, not a single statement: jobs it ends release their children in it.
        with self.db.tx(relaxed=True) as cur:
            cur.execute(self.q["rescue"], {"now": self.db.time_param(params.now)})
            rows = cur.fetchall()
            names = ("id", "queue", "state", "has_children")
            ids, again, ended = [], {}, []
            for job_id, queue, state, waited_for in cells(cur, rows, *names):
                ids.append(int(job_id))
                if state == JobState.AVAILABLE:
                    again[int(job_id)] = str(queue)
                elif waited_for:
                    ended.append(int(job_id))
            ids.sort()
            # Back to the queue, or ended (dead; cancelled when a stop was asked for).
            self.db.events.written(cur, [i for i in ids if i in again], "requeued")
            self.db.events.written(cur, [i for i in ids if i not in again])
            if ended:
                self.db.workflows.released(cur, ended)
            if again:
                self.db.wake(cur, set(again.values()))
        return ids


def _in_order(started: Started, wait: float | None) -> Claimed:
    """The claim's jobs in the order a worker starts them, the claim's own: by virtual
    deadline (priority aged by waiting), then id."""
    started.sort(key=lambda pair: (pair[0], pair[1].id))
    return Claimed([job for _, job in started], wait)


def _leases_json(leases: Sequence[Lease]) -> str:
    return orjson.dumps([{"id": x.id, "attempt": x.attempt} for x in leases]).decode()
