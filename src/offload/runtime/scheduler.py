"""The scheduler: fires cron ticks, rescues expired leases, sweeps and prunes old jobs.

Any number of schedulers may run, on any hosts: each tick becomes a job under a unique
`(schedule, tick)` row, inserted in the same transaction that advances the schedule, so
replicas never fire a tick twice and no leader is needed for ticks. Maintenance is elected
(`runtime.leader`): the holder of the rescue duty rescues, the holder of the upkeep duty
sweeps, rolls up stats and prunes; the others only stand. Rescue and prune are idempotent,
and each step of the sweep (`runtime.sweep`: shedding, re-admitting) is atomic, so a stale
holder that acts once more does no harm.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from types import FrameType

from offload.backends.base import Backend
from offload.backends.params import JobPruneParams, RescueParams, ScheduleFireParams
from offload.core import serialization
from offload.core.errors import (
    BackendUnavailable,
    BackPressure,
    ConfigurationError,
    OffloadError,
    SchemaMismatch,
)
from offload.core.job import JobSpec, Payload
from offload.core.options import EnqueueOptions
from offload.core.schedule import ScheduleDef
from offload.core.states import FINISHED, JobState
from offload.core.stats import STATS_RETENTION
from offload.core.task import Registry
from offload.runtime.leader import (
    DEFAULT_LEADER_LEASE,
    RESCUE,
    UPKEEP,
    Elector,
    check_election,
)
from offload.runtime.outage import Outage, fatal
from offload.runtime.settings import install_handlers, restore_handlers
from offload.runtime.sweep import Sweeper

log = logging.getLogger("offload.scheduler")

#: How long finished jobs are kept by default, per state (seconds).
DEFAULT_RETENTION: Mapping[JobState, float] = {
    JobState.SUCCEEDED: 7 * 86400,
    JobState.CANCELLED: 7 * 86400,
    JobState.DEAD: 30 * 86400,
}


#: A worker silent this long (seconds) is dropped from the registry.
WORKER_FORGET_AFTER = 86400.0

#: The longest wait (seconds) between turns that keep failing.
MAX_BACKOFF = 30.0


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
        sweep_interval: float = 1.0,
        stats_interval: float = 10.0,
        retention: Mapping[JobState, float] = DEFAULT_RETENTION,
        clock: Callable[[], datetime] | None = None,
        install_signals: bool = True,
        elect: bool = True,
        leader_lease: float = DEFAULT_LEADER_LEASE,
    ) -> None:
        leader_lease = check_election(elect, leader_lease)
        self.backend = backend
        self.schedules = list(schedules)
        self.interval = _seconds("interval", interval)
        self.down_after = _seconds("down_after", down_after)
        self.rescue_interval = _seconds("rescue_interval", rescue_interval)
        self.prune_interval = _seconds("prune_interval", prune_interval)
        self.sweep_interval = _seconds("sweep_interval", sweep_interval)
        #: Seconds between roll-ups of the events into the charts' buckets (`App.stats`).
        self.stats_interval = _seconds("stats_interval", stats_interval)
        self.retention = _retention(retention)
        if clock is not None and not callable(clock):
            raise ConfigurationError(
                f"clock must be a callable returning a datetime, got {clock!r}"
            )
        self.clock = clock
        #: Stop on SIGTERM/SIGINT while `run` runs (in the main thread only, as a worker does).
        self.install_signals = install_signals
        self.fired = 0
        #: Schedules whose last tick failed (logged once until they fire again).
        self._failing: set[str] = set()
        self._stop = threading.Event()
        self._jobs = {s.name: _tick_job(s, registry) for s in self.schedules}
        self.sweeper = Sweeper(backend, registry, clock=clock)
        self.id = f"scheduler:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: The duties' leases this scheduler holds or stands for, by duty; empty (`elect`
        #: False): it does every duty on its own timers.
        self.electors = (
            {
                duty: Elector(backend, duty, self.id, leader_lease, log=log)
                for duty in (RESCUE, UPKEEP)
            }
            if elect
            else {}
        )

    def stop(self) -> None:
        """Stop after the current turn."""
        self._stop.set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self._stop.is_set():
            log.info("signal %s: stopping the scheduler", signum)
        self.stop()

    def run(self) -> int:
        """Run until stopped, or until SIGTERM or SIGINT (see `install_signals`); return an
        exit code.

        A database outage is logged once and ridden out (`runtime.outage`); another error
        (a bug) is logged with its traceback and tried again after a backoff that doubles
        up to `MAX_BACKOFF`: a scheduler that stopped would leave cron ticks unfired and
        expired leases unrescued without anyone noticing. It stops, returning 1, only on
        errors no retry can fix (a refused login, a schema mismatch).
        """
        previous = install_handlers(self._on_signal) if self.install_signals else {}
        try:
            return self._run()
        finally:
            restore_handlers(previous)

    def _run(self) -> int:
        synced = False
        failures = 0
        outage = Outage("scheduler", log)
        next_rescue = next_prune = next_sweep = next_stats = time.monotonic()
        while not self._stop.is_set():
            try:
                if not synced:
                    self.backend.schedules.sync(self.schedules)
                    synced = True
                now = self.tick()  # one schedule's error stays in it: the rest of the turn runs
                if self._elect(RESCUE):  # a new term: the last holder may have died
                    next_rescue = time.monotonic()
                if self._elect(UPKEEP):
                    next_prune = next_sweep = next_stats = time.monotonic()
                # Each duty step fails on its own: the duty it belongs to is given up (so
                # another candidate does it) and the other steps still run; the first
                # error is raised after them, to be ridden out or backed off as before.
                failed: list[Exception] = []
                if self._due(RESCUE, next_rescue) and self._do(RESCUE, self._rescue, failed):
                    next_rescue = time.monotonic() + self.rescue_interval
                if self._due(UPKEEP, next_sweep) and self._do(UPKEEP, self.sweeper.sweep, failed):
                    next_sweep = time.monotonic() + self.sweep_interval
                if self._due(UPKEEP, next_stats) and self._do(
                    UPKEEP, self.backend.stats.roll, failed
                ):
                    next_stats = time.monotonic() + self.stats_interval
                if self._due(UPKEEP, next_prune) and self._do(UPKEEP, self.prune, failed):
                    next_prune = time.monotonic() + self.prune_interval
                if failed:
                    raise failed[0]
            except (BackendUnavailable, SchemaMismatch) as exc:
                if fatal(exc):
                    log.error("scheduler stopped: %s", exc)
                    return 1
                self._stop.wait(outage.failed(exc))
                continue
            except Exception:
                failures += 1
                backoff = min(self.interval * 2 ** min(failures - 1, 16), MAX_BACKOFF)
                log.exception(
                    "scheduler turn failed (%d in a row); retrying in %gs", failures, backoff
                )
                self._stop.wait(backoff)
                continue
            failures = 0
            outage.recovered()
            self._stop.wait(self._sleep(now))
        self._resign()
        return 0

    def _elect(self, duty: str) -> bool:
        """Check the duty's lease if due; return whether this scheduler just took it."""
        elector = self.electors.get(duty)
        return elector is not None and time.monotonic() >= elector.due and elector.poll()

    def _leading(self, duty: str) -> bool:
        """Whether this scheduler does the duty now: it holds it, or nothing is elected."""
        elector = self.electors.get(duty)
        return elector is None or elector.leading()

    def _due(self, duty: str, at: float) -> bool:
        """Whether a step of `duty` is to be done now: this scheduler leads it and its time
        has come."""
        return self._leading(duty) and time.monotonic() >= at

    def _do(self, duty: str, step: Callable[[], object], failed: list[Exception]) -> bool:
        """Do one step of `duty`; return whether it succeeded. If it fails, its error goes
        to `failed`, and a duty that keeps failing is given up (`Elector.failed`): holding
        a duty is tied to doing it, so a scheduler that cannot do it lets another take it."""
        elector = self.electors.get(duty)
        try:
            step()
        except Exception as exc:
            failed.append(exc)
            if elector is not None:
                elector.failed()
            return False
        if elector is not None:
            elector.succeeded()
        return True

    def _rescue(self) -> None:
        """Put back jobs whose lease expired (the rescue duty)."""
        self.backend.claims.rescue(RescueParams(self.clock() if self.clock else None))

    def _resign(self) -> None:
        """Give up the duties held at a clean stop, so another takes them at once."""
        for elector in self.electors.values():
            try:
                elector.resign()
            except OffloadError as exc:
                log.warning("could not give up the %s duty (it expires): %s", elector.name, exc)

    def tick(self) -> datetime:
        """Fire every due tick of every schedule once; return the time used.

        One schedule's error (its queue refusing the tick, say) is logged and the others
        still fire, and the turn's maintenance still runs: only an outage (the database
        gone, the schema wrong) ends the pass, since every schedule would meet it."""
        now = self.clock() if self.clock else self.backend.now()
        for sched in self.schedules:
            spec, payload = self._jobs[sched.name]
            try:
                ids = self.backend.schedules.fire(
                    ScheduleFireParams(sched, spec, payload, self.down_after, now)
                )
            except BackPressure as exc:  # nothing recorded: the next pass fires it again
                log.warning("schedule %s: tick not fired: %s", sched.name, exc)
                continue
            except (BackendUnavailable, SchemaMismatch):
                raise
            except Exception as exc:  # nothing recorded: tried again on the next pass
                self._failed(sched.name, exc)
                continue
            if sched.name in self._failing:
                self._failing.discard(sched.name)
                log.info("schedule %s: fires again", sched.name)
            if ids:
                self.fired += len(ids)
                log.info("schedule %s: enqueued jobs %s", sched.name, ids)
        return now

    def _failed(self, name: str, exc: Exception) -> None:
        """Log a schedule's failed tick: in full the first time, then quietly until it
        fires again (a schedule failing every second would fill the log)."""
        if name in self._failing:
            log.debug("schedule %s: tick not fired: %s", name, exc)
            return
        self._failing.add(name)
        log.error(
            "schedule %s: tick not fired (the other schedules go on; retried every pass): %s",
            name,
            exc,
            exc_info=exc,
        )

    def prune(self) -> None:
        """Delete finished jobs past their retention (and events past the longest one), tick
        records past catch-up, and messages past their topic's retention."""
        removed = self.backend.jobs.prune(JobPruneParams(self.retention))
        # Events go with the longest-kept history; a state kept forever keeps them all.
        # The charts' roll-up takes them first: no event leaves uncounted.
        if self.retention.keys() >= FINISHED:
            self.backend.stats.roll()
            self.backend.events.prune(max(self.retention.values()))
        self.backend.stats.prune(STATS_RETENTION)
        window = max((s.catch_up for s in self.schedules), default=0.0)
        self.backend.schedules.prune_ticks(max(window, 86400.0) * 2)
        self.backend.workers.prune(WORKER_FORGET_AFTER)
        if removed:
            log.info("pruned %d finished jobs", removed)
        messages = self.backend.topics.prune()
        if messages:
            log.info("pruned %d messages past their topic's retention", messages)

    def _sleep(self, now: datetime) -> float:
        """Seconds until the next tick of any schedule (at most `interval`)."""
        if not self.schedules:
            return self.interval
        upcoming = min(s.next_tick(now) for s in self.schedules)
        until = (upcoming - now) / timedelta(seconds=1)
        return min(max(until + 0.002, 0.0), self.interval)


class SchedulerThread:
    """A scheduler run in a thread of a worker (`offload worker --scheduler`).

    The scheduler rides out outages and errors by itself; should it stop on one anyway,
    `on_failure` is called (after the error is logged) so that the worker can stop.
    """

    def __init__(self, scheduler: Scheduler, on_failure: Callable[[], None]) -> None:
        self.scheduler = scheduler
        self.on_failure = on_failure
        self._thread = threading.Thread(target=self._run, name="offload-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the scheduler to stop after its current turn; wait up to `timeout` seconds."""
        self.scheduler.stop()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            code = self.scheduler.run()  # logged why, if it stopped on an error
        except BaseException:
            log.critical("the embedded scheduler ended on an error", exc_info=True)
            code = 1
        if code != 0:
            self.on_failure()


def _seconds(name: str, value: float) -> float:
    """A positive, finite number of seconds, or a ConfigurationError naming the setting."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _retention(retention: Mapping[JobState, float]) -> dict[JobState, float]:
    """Retention by finished state (a JobState or its name) -> seconds >= 0, checked."""
    if not isinstance(retention, Mapping):
        raise ConfigurationError(
            f"retention must be a mapping of finished state -> seconds, got {retention!r}"
        )
    names = sorted(str(state) for state in FINISHED)
    checked: dict[JobState, float] = {}
    for key, age in retention.items():
        try:
            state = JobState(key)
        except ValueError:
            import difflib  # only for this message: every worker imports this module

            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; one of {', '.join(names)}"
            raise ConfigurationError(f"retention: unknown job state {key!r}{hint}") from None
        if state not in FINISHED:
            raise ConfigurationError(
                f"retention: {str(state)!r} is not a finished state; one of {', '.join(names)}"
            )
        if isinstance(age, bool) or not isinstance(age, int | float) or not 0 <= age < math.inf:
            raise ConfigurationError(
                f"retention of {state} must be a finite number of seconds >= 0, got {age!r}"
            )
        checked[state] = float(age)
    return checked


def _tick_job(sched: ScheduleDef, registry: Registry) -> tuple[JobSpec, Payload]:
    """The job each tick of `sched` enqueues (validated once, at start)."""
    over = EnqueueOptions(queue=sched.queue, priority=sched.priority)
    definition = registry.get(sched.task)
    args_text, kwargs_text = serialization.dumps_args(sched.args, sched.kwargs)
    key = definition.limit_key(sched.args, sched.kwargs)
    return definition.spec(over), Payload(args_text, kwargs_text, None, key)
