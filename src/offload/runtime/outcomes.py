"""How a worker records outcomes: in batches, either from a thread of their own or between
turns of the worker loop, whichever suits the backend.

On PostgreSQL (`Backend.parallel_writes`) a writer thread records outcomes, on a pooled
connection, while the loop claims on another: outcomes that arrive during a write share the
next one (group commit). SQLite has one writer at a time, so a thread would only queue behind the
loop's claims; there the loop writes outcomes itself, before it claims, batching them while
they arrive densely.

Outcomes that meet a database outage are kept, not dropped: the error reaches the loop (which
rides the outage out) and the outcomes are written once it calls `resume`. Fencing makes a
late write safe: an outcome whose lease passed to another worker changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Protocol

import orjson

from offload.backends.base import Backend
from offload.backends.params import FinishParams, Outcome
from offload.core.errors import BackendUnavailable
from offload.core.options import RetryPolicy
from offload.core.retry import RunEnd, next_state
from offload.core.states import JobState
from offload.runtime import joblog
from offload.runtime.executor import Finished, SelfPipe

log = logging.getLogger("offload.worker")

#: Outcomes written at once, at most.
WRITE_SIZE = 500
#: Below this many outcomes per write, `LoopWriter` writes without delay.
SMALL_BATCH = 4


#: The error of a job cancelled while it waited in a worker's buffer.
CANCELLED_BEFORE_START = {
    "type": "JobCancelled",
    "message": "cancelled before it started",
    "traceback": None,
}


def outcome_of(f: Finished, policy: RetryPolicy) -> Outcome:
    """What to record for a run that ended: its result, or its error with the next state
    (retrying after a backoff, dead or cancelled) that `core.retry` decides."""
    job = f.job
    if f.ok:
        return Outcome(job.id, job.attempt, JobState.SUCCEEDED, result=f.result)
    decision = next_state(job.attempt, job.max_attempts, policy, _end_of(f))
    error = dict(f.error or {})
    error["at"] = time.time()
    error["attempt"] = job.attempt
    # NUL characters stay: the PostgreSQL backend writes them in a form jsonb accepts.
    error_text = orjson.dumps(error).decode()
    return Outcome(
        job.id, job.attempt, decision.state, error=error_text, delay=decision.delay or 0.0
    )


def _end_of(f: Finished) -> RunEnd:
    """How a run that did not succeed ended, for the retry decision."""
    if f.cancelled:
        return RunEnd.CANCELLED
    return RunEnd.PERMANENT if f.permanent else RunEnd.FAILED


class OutcomeWriter(Protocol):
    """What the worker loop needs from an outcome writer."""

    #: Outcomes recorded so far.
    written: int

    def submit(self, outcomes: list[Outcome]) -> None:
        """Queue outcomes for writing."""
        ...

    def turn(self, busy: bool) -> None:
        """Called by the loop before it claims, while outcomes are unwritten: write now if
        that is due."""
        ...

    def deadline(self) -> float | None:
        """The monotonic time by which the loop must call `turn` again."""
        ...

    def waitables(self) -> list[int]:
        """Descriptors the loop waits on: readable when `check` has news."""
        ...

    def check(self) -> bool:
        """Raise the error of a failed write; else say whether a retry was written since
        the last call (with no backoff its job is due already: the loop claims again)."""
        ...

    def unwritten(self) -> int:
        """Outcomes queued and not yet recorded."""
        ...

    def resume(self) -> None:
        """The database is back after an outage: write what waited."""
        ...

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued (waiting at most `timeout` seconds), then stop; raise the
        error of a failed write that `check` has not raised (its outcomes are lost: their
        jobs run again). Calling it again does nothing."""
        ...


def outcome_writer(backend: Backend, worker_id: str, delay: float) -> OutcomeWriter:
    """The writer that suits `backend`; `delay` bounds how long `LoopWriter` batches."""
    if backend.parallel_writes:
        return ThreadWriter(backend, worker_id)
    return LoopWriter(backend, worker_id, delay)


def _log_lost(lost: Sequence[int]) -> None:
    for job_id in lost:
        joblog.lease_lost(job_id, None, "before its outcome was recorded")


def _has_retry(outcomes: Sequence[Outcome]) -> bool:
    return any(o.state is JobState.RETRYING for o in outcomes)


class LoopWriter:
    """Writes outcomes from the loop's thread, before each claim, in one statement.

    While outcomes arrive densely (many in the last write, or the last write less than
    `delay` ago) they wait up to `delay` seconds to share a commit; otherwise they are written
    at once, since a delay that batches nothing only widens the window in which a killed
    worker's finished jobs run again.
    """

    def __init__(self, backend: Backend, worker_id: str, delay: float) -> None:
        self._backend = backend
        self._worker = worker_id
        self._delay = delay
        self._pending: list[Outcome] = []
        self._since = 0.0
        self._last_size = 0
        self._last_write = float("-inf")
        self._retried = False
        self.written = 0

    def submit(self, outcomes: list[Outcome]) -> None:
        if not self._pending:
            self._since = time.monotonic()
        self._pending += outcomes

    def turn(self, busy: bool) -> None:
        if self._pending and (not busy or self._due(time.monotonic())):
            self._write()

    def _due(self, now: float) -> bool:
        dense = self._last_size >= SMALL_BATCH or now - self._last_write < self._delay
        return not dense or len(self._pending) >= WRITE_SIZE or now - self._since >= self._delay

    def _write(self) -> None:
        """Write every pending outcome; on an outage, the unwritten stay pending."""
        while self._pending:
            batch = self._pending[:WRITE_SIZE]
            self._last_size = len(batch)
            self._last_write = time.monotonic()
            _log_lost(self._backend.claims.finish(FinishParams(self._worker, batch)))
            del self._pending[: len(batch)]
            self.written += len(batch)
            self._retried |= _has_retry(batch)

    def deadline(self) -> float | None:
        return self._since + self._delay if self._pending else None

    def waitables(self) -> list[int]:
        return []

    def check(self) -> bool:
        retried, self._retried = self._retried, False
        return retried

    def unwritten(self) -> int:
        return len(self._pending)

    def resume(self) -> None:
        """Nothing to do: the next `turn` writes what waited."""

    def close(self, timeout: float | None = None) -> None:
        self._write()


class ThreadWriter:
    """Writes outcomes from a thread of its own, in the order they were submitted.

    Its `waitables` turn readable whenever it has nothing left to write, has written a retry,
    or a write failed (`check` then raises the error in the loop's thread). After a failure
    for an outage it keeps its outcomes and waits for `resume` (or `close`, which tries once
    more).
    """

    def __init__(self, backend: Backend, worker_id: str) -> None:
        self._backend = backend
        self._worker = worker_id
        self._wakeup = SelfPipe()
        self._cond = threading.Condition()
        self._queued: list[Outcome] = []
        self._writing = 0
        self._closing = False
        self._retried = False
        self._signalled = False
        self._paused = False
        self._error: BaseException | None = None
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="offload-outcomes", daemon=True)
        self._thread.start()

    def submit(self, outcomes: list[Outcome]) -> None:
        with self._cond:
            self._queued += outcomes
            self._cond.notify()

    def turn(self, busy: bool) -> None:
        """Nothing to do: the thread writes as soon as it can."""

    def deadline(self) -> float | None:
        return None

    def waitables(self) -> list[int]:
        return [self._wakeup.read_fd]

    def check(self) -> bool:
        with self._cond:  # `_signal` writes under the lock too: no byte outlives its flag
            if self._signalled:  # else the pipe is empty: spare the failing read
                self._signalled = False
                self._wakeup.clear()
            error, self._error = self._error, None  # reported once, here or by `close`
            retried, self._retried = self._retried, False
        if error is not None:
            raise error
        return retried

    def unwritten(self) -> int:
        with self._cond:
            return len(self._queued) + self._writing

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._error = None  # the outage it reported is over
            self._cond.notify()

    def close(self, timeout: float | None = None) -> None:
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():  # a write hangs: leave the thread and its pipe to it
            log.warning(
                "outcome writer still busy after %ss: %d outcomes unwritten (their jobs run "
                "again once their leases expire)",
                timeout,
                self.unwritten(),
            )
            return
        self._wakeup.close()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        while True:
            with self._cond:
                while (not self._queued or self._paused) and not self._closing:
                    self._cond.wait()
                if not self._queued:
                    return
                batch = self._queued[:WRITE_SIZE]
                del self._queued[:WRITE_SIZE]
                self._writing = len(batch)
                last_try = self._paused  # closing during an outage: one more try
            try:
                lost = self._backend.claims.finish(FinishParams(self._worker, batch))
            except BackendUnavailable as exc:
                if not exc.transient or last_try:
                    self._fail(exc, batch)
                    return
                with self._cond:  # keep them, first in line, until `resume`
                    self._queued[:0] = batch
                    self._writing = 0
                    self._paused = True
                    self._error = exc
                    self._signal()
                continue
            except BaseException as exc:  # raised again in the loop's thread by `check`
                self._fail(exc, batch)
                return
            _log_lost(lost)
            retried = _has_retry(batch)
            with self._cond:
                self._writing = 0
                self.written += len(batch)
                self._retried |= retried
                if retried or not self._queued:
                    self._signal()

    def _fail(self, exc: BaseException, batch: list[Outcome]) -> None:
        """Give up: drop every outcome (their jobs run again) and report `exc`."""
        with self._cond:
            dropped = len(batch) + len(self._queued)
            self._error = exc
            self._writing = 0
            self._queued.clear()
            self._signal()
        log.error("could not record %d outcomes (their jobs run again): %s", dropped, exc)

    def _signal(self) -> None:
        """Wake the loop (holding the lock: `check` sees the flag once the byte is sent)."""
        self._signalled = True
        self._wakeup.wake()
