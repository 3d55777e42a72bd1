"""The scheduler: fires cron ticks, rescues expired leases and prunes old jobs.

Any number of schedulers may run, on any hosts: each tick becomes a job under a unique
`(schedule, tick)` row, inserted in the same transaction that advances the schedule, so
replicas never fire a tick twice and no leader is needed. Rescue and prune are idempotent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from offload.backends.base import Backend
from offload.backends.params import JobPruneParams, RescueParams, ScheduleFireParams
from offload.core import serialization
from offload.core.errors import OffloadError
from offload.core.job import JobSpec, Payload
from offload.core.options import EnqueueOptions
from offload.core.schedule import ScheduleDef
from offload.core.states import JobState
from offload.core.task import Registry

log = logging.getLogger("offload.scheduler")

#: How long finished jobs are kept by default, per state (seconds).
DEFAULT_RETENTION: Mapping[JobState, float] = {
    JobState.SUCCEEDED: 7 * 86400,
    JobState.CANCELLED: 7 * 86400,
    JobState.DEAD: 30 * 86400,
}


#: A worker silent this long (seconds) is dropped from the registry.
WORKER_FORGET_AFTER = 86400.0


class Scheduler:
    """Fires the given schedules' ticks and does queue maintenance until stopped."""

    def __init__(
        self,
        backend: Backend,
        registry: Registry,
        schedules: Sequence[ScheduleDef],
        *,
        interval: float = 1.0,
        down_after: float = 5.0,
        rescue_interval: float = 5.0,
        prune_interval: float = 300.0,
        retention: Mapping[JobState, float] = DEFAULT_RETENTION,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.backend = backend
        self.schedules = list(schedules)
        self.interval = interval
        self.down_after = down_after
        self.rescue_interval = rescue_interval
        self.prune_interval = prune_interval
        self.retention = dict(retention)
        self.clock = clock
        self.fired = 0
        self._stop = threading.Event()
        self._jobs = {s.name: _tick_job(s, registry) for s in self.schedules}

    def stop(self) -> None:
        """Stop after the current turn."""
        self._stop.set()

    def run(self) -> int:
        """Run until stopped; return an exit code."""
        self.backend.schedules.sync(self.schedules)
        next_rescue = next_prune = time.monotonic()
        while not self._stop.is_set():
            try:
                now = self.tick()
                if time.monotonic() >= next_rescue:
                    self.backend.claims.rescue(RescueParams(self.clock() if self.clock else None))
                    next_rescue = time.monotonic() + self.rescue_interval
                if time.monotonic() >= next_prune:
                    self.prune()
                    next_prune = time.monotonic() + self.prune_interval
            except OffloadError:
                log.exception("scheduler turn failed; retrying")
                now = None
            self._stop.wait(self._sleep(now))
        return 0

    def tick(self) -> datetime:
        """Fire every due tick of every schedule once; return the time used."""
        now = self.clock() if self.clock else self.backend.now()
        for sched in self.schedules:
            spec, payload = self._jobs[sched.name]
            ids = self.backend.schedules.fire(
                ScheduleFireParams(sched, spec, payload, self.down_after, now)
            )
            if ids:
                self.fired += len(ids)
                log.info("schedule %s: enqueued jobs %s", sched.name, ids)
        return now

    def prune(self) -> None:
        """Delete finished jobs past their retention, and tick records past catch-up."""
        removed = self.backend.jobs.prune(JobPruneParams(self.retention))
        window = max((s.catch_up for s in self.schedules), default=0.0)
        self.backend.schedules.prune_ticks(max(window, 86400.0) * 2)
        self.backend.workers.prune(WORKER_FORGET_AFTER)
        if removed:
            log.info("pruned %d finished jobs", removed)

    def _sleep(self, now: datetime | None) -> float:
        """Seconds until the next tick of any schedule (at most `interval`)."""
        if now is None or not self.schedules:
            return self.interval
        upcoming = min(s.next_tick(now) for s in self.schedules)
        until = (upcoming - now) / timedelta(seconds=1)
        return min(max(until + 0.002, 0.0), self.interval)


def _tick_job(sched: ScheduleDef, registry: Registry) -> tuple[JobSpec, Payload]:
    """The job each tick of `sched` enqueues (validated once, at start)."""
    over = EnqueueOptions(queue=sched.queue, priority=sched.priority)
    spec = registry.get(sched.task).spec(over)
    return spec, Payload(*serialization.dumps_args(sched.args, sched.kwargs))
