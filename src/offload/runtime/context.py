"""What a running task can ask about its own job: `offload.current_job()`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from offload.core.errors import JobCancelled, OffloadError
from offload.core.job import ParentOutcome

_current: ContextVar[JobContext | None] = ContextVar("offload_current_job", default=None)


@dataclass
class JobContext:
    """The running attempt of a job, as seen from inside its task."""

    id: int
    attempt: int
    queue: str
    task: str
    #: Sends (fraction, message) to the worker, which stores it with the job.
    report: Callable[[float, str | None], None] = field(repr=False)
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    #: How each job it waited for ended, read when it started (`depends_on`, workflows).
    parent_outcomes: tuple[ParentOutcome, ...] = field(default=(), repr=False)

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose records carry the job id and attempt."""
        return logging.LoggerAdapter(
            logging.getLogger(f"offload.task.{self.task}"),
            {"job_id": self.id, "attempt": self.attempt},
        )

    @property
    def cancelled(self) -> bool:
        """True once someone asked this job to stop (cooperative for thread tasks)."""
        return self.cancel_event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise JobCancelled if the job was asked to stop; call it at safe points."""
        if self.cancelled:
            raise JobCancelled(f"job {self.id} was cancelled")

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Record how far the job is (0..1) and what it is doing; shown by `status`."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"progress fraction must be within [0, 1], got {fraction!r}")
        self.report(float(fraction), None if message is None else str(message)[:1000])

    def parents(self) -> list[ParentOutcome]:
        """How each job this one waited for ended (state, result, last error), in the
        order they were declared."""
        return list(self.parent_outcomes)

    def parent_results(self) -> dict[str, Any]:
        """Each parent's result by its node name (a parent outside any workflow: by its
        id as text); None for a parent that did not succeed."""
        return {parent.key: parent.result for parent in self.parent_outcomes}

    def heartbeat(self) -> None:
        """Say the job is alive. The worker renews leases by itself; this is for symmetry
        with queues whose tasks must do it, and records no progress."""


def current_job() -> JobContext:
    """The job the calling task is running; raises outside a task."""
    ctx = _current.get()
    if ctx is None:
        raise OffloadError("current_job() was called outside a running job")
    return ctx


class Running:
    """Make a job the current one for the duration of a `with` block.

    A class rather than a generator-based context manager: it wraps every run, and a
    generator costs several more calls per run."""

    __slots__ = ("_ctx", "_token")

    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx

    def __enter__(self) -> JobContext:
        self._token = _current.set(self._ctx)
        return self._ctx

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)


def no_report(_fraction: float, _message: str | None) -> None:
    """A progress sink that drops reports (jobs run outside a worker)."""


__all__ = ["JobContext", "Running", "current_job", "no_report"]
