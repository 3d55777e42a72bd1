"""Calling middleware (`offload.core.middleware`): an App's list, each hook guarded.

`Middlewares` is what producers and workers hold: it calls each middleware's hooks in turn
(the `after_enqueue` hooks in reverse, so the first registered wraps the others), and
contains what a hook raises: `HookErrors` logs it once per hook and minute with a count of
the failures said nothing of, so a broken middleware in a storm of jobs writes one line a
minute, not one per job. A worker sees it as one more `JobObserver` (with the job log and
the metrics), and only when some middleware has a job hook: a worker of an App without one
pays nothing per job, a producer one truth test per insert.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from offload.backends.params import Outcome
from offload.core.errors import ConfigurationError
from offload.core.job import Job
from offload.core.middleware import Enqueue, JobEnded, JobLost, JobStarted, Middleware
from offload.core.states import JobState
from offload.runtime.executor import Finished

log = logging.getLogger("offload.middleware")

#: Seconds between two lines about failures of the same hook.
ERROR_INTERVAL = 60.0

#: The hooks a worker calls: it tells middleware of jobs only when one has some.
_JOB_HOOKS = ("job_started", "job_ended", "job_retrying", "job_lost")
_HOOKS = ("before_enqueue", "after_enqueue", *_JOB_HOOKS)


class HookErrors:
    """Says that a hook raised: at once the first time, then at most once per `interval`
    seconds per (object, hook), with how many failures went unsaid meanwhile."""

    def __init__(self, interval: float = ERROR_INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        #: Per (object's id, hook): when the next line may be written, and failures since.
        self._next: dict[tuple[int, str], tuple[float, int]] = {}

    def failed(self, owner: object, hook: str) -> None:
        """Called from an `except` block: log the exception being handled, unless a line
        about this hook was written less than `interval` seconds ago (then count it)."""
        key = (id(owner), hook)
        now = time.monotonic()
        with self._lock:
            due, unsaid = self._next.get(key, (0.0, 0))
            if now < due:
                self._next[key] = (due, unsaid + 1)
                return
            self._next[key] = (now + self.interval, 0)
        more = f" ({unsaid} more failures of it since the last line)" if unsaid else ""
        log.error(
            "middleware %s raised in %s%s; the job goes on as if it had not (said at most "
            "once every %gs)",
            type(owner).__qualname__,
            hook,
            more,
            self.interval,
            exc_info=True,
        )


def check_middleware(items: Iterable[object]) -> list[Middleware]:
    """`items` as a list, or a ConfigurationError naming the first that is no Middleware."""
    checked: list[Middleware] = []
    for item in items:
        if not isinstance(item, Middleware):
            kind = "a class" if isinstance(item, type) else type(item).__name__
            raise ConfigurationError(
                f"middleware must be instances of offload.Middleware, got {item!r} ({kind})"
            )
        checked.append(item)
    return checked


def _overrides(item: Middleware, hook: str) -> bool:
    return getattr(type(item), hook) is not getattr(Middleware, hook)


class Middlewares:
    """An App's middleware, in registration order, with each hook's takers listed once
    (a middleware that leaves a hook as the base class has it is not called for it)."""

    def __init__(self, items: Iterable[object] = (), errors: HookErrors | None = None) -> None:
        self.items: list[Middleware] = []
        self.errors = errors or HookErrors()
        self._takers: dict[str, list[Middleware]] = {hook: [] for hook in _HOOKS}
        #: True when some middleware has an enqueue hook: producers test only this.
        self.enqueue = False
        #: True when some middleware has a job hook: workers observe jobs only then.
        self.jobs = False
        for item in check_middleware(items):
            self.add(item)

    def add(self, item: object) -> None:
        """Register one more middleware, called after those already registered."""
        (checked,) = check_middleware([item])
        self.items.append(checked)
        for hook, hooked in self._takers.items():
            if _overrides(checked, hook):
                hooked.append(checked)
        takers = self._takers
        self.enqueue = bool(takers["before_enqueue"] or takers["after_enqueue"])
        self.jobs = any(takers[hook] for hook in _JOB_HOOKS)

    # -- producers -------------------------------------------------------------------

    @contextmanager
    def around(self, inserts: Sequence[Enqueue]) -> Iterator[None]:
        """`before_enqueue` for each insert, then the block (which stores them and sets
        their `ids`), then `after_enqueue` for each, with the block's error if it raised
        (raised again after)."""
        for enqueue in inserts:
            self.before_enqueue(enqueue)
        try:
            yield
        except BaseException as exc:
            for enqueue in inserts:
                enqueue.error = exc
                self.after_enqueue(enqueue)
            raise
        for enqueue in inserts:
            self.after_enqueue(enqueue)

    def before_enqueue(self, enqueue: Enqueue) -> None:
        for item in self._takers["before_enqueue"]:
            try:
                item.before_enqueue(enqueue)
            except Exception:
                self.errors.failed(item, "before_enqueue")

    def after_enqueue(self, enqueue: Enqueue) -> None:
        for item in reversed(self._takers["after_enqueue"]):
            try:
                item.after_enqueue(enqueue)
            except Exception:
                self.errors.failed(item, "after_enqueue")

    # -- workers (the JobObserver protocol) ------------------------------------------

    def started(self, jobs: Sequence[Job]) -> None:
        """Each job's `job_started`, in the supervisor, from the loop's thread."""
        takers = self._takers["job_started"]
        if not takers:
            return
        at = time.time()
        for job in jobs:
            event = JobStarted(job, at)
            for item in takers:
                try:
                    item.job_started(event)
                except Exception:
                    self.errors.failed(item, "job_started")

    def ended(self, runs: Sequence[Finished], outcomes: Sequence[Outcome]) -> None:
        """Each run's `job_ended`, then `job_retrying` for a retry."""
        ending = self._takers["job_ended"]
        retrying = self._takers["job_retrying"]
        if not (ending or retrying):
            return
        at = time.time()
        for run, outcome in zip(runs, outcomes, strict=True):
            retry = outcome.state is JobState.RETRYING
            event = JobEnded(
                run.job,
                outcome.state,
                run.duration,
                at,
                None if run.ok else run.error,
                outcome.delay if retry else None,
            )
            for item in ending:
                try:
                    item.job_ended(event)
                except Exception:
                    self.errors.failed(item, "job_ended")
            if retry:
                for item in retrying:
                    try:
                        item.job_retrying(event)
                    except Exception:
                        self.errors.failed(item, "job_retrying")

    def lost(self, jobs: Sequence[Job]) -> None:
        """Each started run's `job_lost`: the heartbeat found its lease taken."""
        takers = self._takers["job_lost"]
        if not takers:
            return
        at = time.time()
        for job in jobs:
            event = JobLost(job, at)
            for item in takers:
                try:
                    item.job_lost(event)
                except Exception:
                    self.errors.failed(item, "job_lost")


__all__ = ["ERROR_INTERVAL", "HookErrors", "Middlewares", "check_middleware"]
