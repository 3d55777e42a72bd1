"""Admission at enqueue: bounded queues, admission control and shedding of new jobs.

An enqueue into a queue without an admission policy is one plain insert, as before; the
insert carries a guard (`unbounded` in jobs.sql) that stores nothing when the queue has a
policy after all. This process keeps a cache of the queues that have one, refreshed every
`REFRESH` seconds and whenever the guard stopped an insert: those take the admitted path,
in one transaction: lock the queue's policy row, count its jobs not yet started, decide
(`offload.core.flow.admit`), then insert (stored `shed`, or not at all: `BackPressure`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from offload.backends.sql.queues import policy_from
from offload.backends.sql.rows import Columns
from offload.core.flow import SHED, Load, QueuePolicy, Refusal, admit
from offload.core.job import JobSpec
from offload.core.status import LOST_AFTER

if TYPE_CHECKING:
    from offload.backends.sql.connector import SqlBackend

#: Seconds this process trusts its list of queues with an admission policy; the guard
#: catches a policy set meanwhile, so this only bounds how long it pays for the miss.
REFRESH = 5.0


class Admission:
    """Which queues have an admission policy (a cache), and the admitted path's reads."""

    def __init__(self, db: SqlBackend) -> None:
        self.db = db
        self.q = db.q["jobs"]
        self._queues: frozenset[str] = frozenset()
        self._until = float("-inf")

    def applies(self, queue: str, cur: Any = None) -> bool:
        """Whether enqueues into `queue` take the admitted path, by the cache (refreshed
        when older than `REFRESH` seconds, on `cur` if given)."""
        if time.monotonic() >= self._until:
            if cur is not None:
                self.refresh(cur)
            else:
                with self.db.read() as own:
                    self.refresh(own)
        return queue in self._queues

    def refresh(self, cur: Any) -> None:
        """Read the queues with an admission policy afresh."""
        cur.execute(self.q["admission_queues"])
        self._queues = frozenset(row[0] for row in cur.fetchall())
        self._until = time.monotonic() + REFRESH

    def forget(self) -> None:
        """This process changed a policy: read them again at the next enqueue."""
        self._until = float("-inf")

    def decide(self, cur: Any, spec: JobSpec, n: int) -> bool:
        """Lock the queue's policy and decide an enqueue of `n` new jobs in `cur`'s
        transaction: return whether to store them shed; raise `BackPressure` to store
        nothing."""
        cur.execute(self.q["admission_lock"], {"queue": spec.queue})
        rows = cur.fetchall()
        if not rows:
            return False
        policy = policy_from(Columns.of(cur).index, rows[0])
        if policy.admits_all:
            return False
        decision = admit(policy, self._load(cur, spec.queue, policy, n), n, spec.priority)
        if isinstance(decision, Refusal):
            raise decision.error(spec.queue, self._drain_rate(cur, spec.queue))
        return decision == SHED

    def _load(self, cur: Any, queue: str, policy: QueuePolicy, n: int) -> Load:
        """The queue's depth (counted only as far as a bound can use) and, when it has a
        latency target, the wait of its oldest due job."""
        bounds = [b for b in (policy.max_depth, policy.admit_depth, policy.shed_depth) if b]
        cap = max(bounds, default=0) + n
        cur.execute(self.q["admission_depth"], {"queue": queue, "cap": cap})
        depth = int(cur.fetchone()[0])
        wait = None
        if policy.max_wait is not None:
            cur.execute(self.q["admission_wait"], {"queue": queue})
            found = cur.fetchone()[0]
            wait = None if found is None else float(found)
        return Load(depth, wait)

    def _drain_rate(self, cur: Any, queue: str) -> float:
        """Completions per second of `queue` over its live workers (only a refusal reads it)."""
        cur.execute(self.db.q["workers"]["drain_rate"], {"queue": queue, "lost_after": LOST_AFTER})
        return float(cur.fetchone()[0] or 0.0)
