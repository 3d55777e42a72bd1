"""Group commit for producers: concurrent enqueues of one process share commits.

Each enqueue returns only once its own rows are durable (never batched behind the caller's
back), but callers that arrive while a commit is flushing need not wait for a commit each:
the next transaction carries all of them (one statement for a run of plain inserts of one
spec, else one savepoint per caller), and releases exactly
the callers whose rows it committed. An error in one caller's insert reaches that caller
alone; a transaction that fails as a whole stored nothing, so each of its callers then
inserts alone and gets its own outcome. A lone caller takes the plain path: one commit, no
savepoint, no hand-off.

`ThreadGroups` combines threads (a WSGI server's); `LoopGroups` combines the coroutines of
one event loop (an ASGI server's) and hands each group to a thread in one call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Generic, TypeVar

from offload.core import process
from offload.core.errors import OffloadError, OutcomeUnknown

if TYPE_CHECKING:
    import asyncio  # at run time, imported by `LoopGroups` only: workers never load it

P = TypeVar("P")
R = TypeVar("R")

#: Callers one transaction carries at most: a larger group would hold SQLite's write lock
#: (and its members' wait) longer than the commits it saves are worth.
GROUP_LIMIT = 256

#: Runs one caller's insert on its own (its own transaction).
Alone = Callable[[P], R]
#: Runs many callers' inserts in one transaction; a failure of the whole raises.
Together = Callable[[Sequence[P]], list[R | OffloadError]]


class _Call(Generic[P, R]):
    """One waiting caller: its params, its wake-up and its outcome once some thread has run
    it. The wake-up is a lock taken at birth and released once, by the thread that chose
    the caller to lead or by the caller before it in its written group: CPython's cheapest
    one-shot signal (an Event builds a Condition, and another lock on every wait)."""

    __slots__ = ("after", "error", "gone", "lead", "params", "result", "wake", "woken")

    def __init__(self, params: P) -> None:
        self.params = params
        self.wake = threading.Lock()
        self.wake.acquire()
        self.lead = False  # woken to run the next group, not with an outcome
        self.woken = False  # woken with its outcome: it wakes `after` in turn
        self.gone = False  # interrupted before it was woken: the chain skips it
        self.after: _Call[P, R] | None = None  # the next caller of its group to wake
        self.result: R | None = None
        self.error: BaseException | None = None


def run_group(
    calls: Sequence[P], alone: Alone[P, R], together: Together[P, R]
) -> list[R | BaseException]:
    """Each call's outcome: all in one transaction, or each alone if that one failed as a
    whole (it stored nothing, so running them again cannot double a job)."""
    try:
        return list(together(calls))
    except OutcomeUnknown:  # it may have committed: running them again could double them
        raise
    except OffloadError:
        outcomes: list[R | BaseException] = []
        for params in calls:
            try:
                outcomes.append(alone(params))
            except Exception as exc:  # that caller's outcome
                outcomes.append(exc)
        return outcomes


class ThreadGroups(Generic[P, R]):
    """Concurrent callers from threads of one process share commits (see the module).

    The first caller while nothing is being written runs alone. Callers arriving meanwhile
    wait; when the write ends, one of them is woken to write all of them (up to
    `GROUP_LIMIT`) in one transaction, and so on until none wait. No thread ever writes for
    longer than one group, so no caller waits forever.

    A written group's callers are woken one after the other, each by the one before it as
    it resumes: woken all at once, 30 threads would queue for the GIL together (a convoy
    of context switches in which the next group's writer waits its turn too)."""

    def __init__(self, alone: Alone[P, R], together: Together[P, R]) -> None:
        self._alone = alone
        self._together = together
        self.forked()
        process.reset_after_fork(self)

    def forked(self) -> None:
        """A fresh line (also in a child after a fork, where the threads that wrote or
        waited are gone, and a lock they held would stay held)."""
        self._lock = threading.Lock()
        self._waiting: list[_Call[P, R]] = []
        self._writing = False

    def submit(self, params: P) -> R:
        with self._lock:
            alone = not self._writing
            if alone:
                self._writing = True
            else:
                call: _Call[P, R] = _Call(params)  # not _Call[P, R](): typing's call costs
                self._waiting.append(call)
        if alone:
            try:
                return self._alone(params)
            finally:
                self._hand_on()
        try:
            call.wake.acquire()
            if call.lead:
                self._lead(call)
            else:
                with self._lock:
                    self._wake_after(call)
        except BaseException:  # a signal's exception (Ctrl-C, a timeout by SIGALRM)
            self._abandon(call)
            raise
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[return-value]

    def _hand_on(self) -> None:
        """After a write: wake one waiting caller to write the next group, or go idle."""
        with self._lock:
            if not self._waiting:
                self._writing = False
                return
            nxt = self._waiting[0]
            nxt.lead = True
        nxt.wake.release()

    def _wake_after(self, call: _Call[P, R]) -> None:
        """Wake the next caller of `call`'s group still there, once (under the lock)."""
        nxt, call.after = call.after, None
        while nxt is not None and nxt.gone:
            nxt = nxt.after
        if nxt is not None:
            nxt.woken = True
            nxt.wake.release()

    def _abandon(self, call: _Call[P, R]) -> None:
        """A waiting caller was interrupted: it leaves the line unwritten (unless a group
        holding it is being written already), and if it had just been chosen to write the
        next group, it writes the others all the same; if its group was written, it wakes
        the next caller as it would have, and if not yet, the chain passes it by. So none
        waits forever."""
        with self._lock:
            if call in self._waiting:
                self._waiting.remove(call)
            elif call.woken:
                self._wake_after(call)
            elif not call.lead:
                call.gone = True
            chosen, call.lead = call.lead, False
        if chosen:
            self._lead(call)

    def _lead(self, leader: _Call[P, R]) -> None:
        """Write the waiting callers (the leader first, unless it left the line) as one
        group; hand the next group on, then wake this one's callers in turn."""
        with self._lock:
            group = self._waiting[:GROUP_LIMIT]
            del self._waiting[:GROUP_LIMIT]
            leader.lead = False
        if not group:
            self._hand_on()
            return
        try:
            outcomes = run_group([c.params for c in group], self._alone, self._together)
            for call, outcome in zip(group, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    call.error = outcome
                else:
                    call.result = outcome
        except BaseException as exc:  # nothing may leave a caller waiting
            for call in group:
                call.error = exc
            raise
        finally:
            try:
                self._hand_on()  # first: the next group's write overlaps these wake-ups
            finally:
                for before, call in pairwise(group):
                    before.after = call
                if group[0] is not leader:  # it left the line: the chain starts at the first
                    leader.after = group[0]
                with self._lock:
                    self._wake_after(leader)


class LoopGroups(Generic[P, R]):
    """Concurrent callers on one event loop share commits: while one group is written in a
    thread, the coroutines arriving meanwhile queue up and become the next group. A lone
    caller runs alone in a thread, and so does one that `groupable` says may not share."""

    def __init__(
        self, alone: Alone[P, R], together: Together[P, R], groupable: Callable[[P], bool]
    ) -> None:
        self._alone = alone
        self._together = together
        self._groupable = groupable
        self._waiting: list[tuple[P, asyncio.Future[R]]] = []
        self._writing = False

    async def submit(self, params: P) -> R:
        import asyncio

        if not self._groupable(params):  # it runs alone, beside any group being written
            return await asyncio.to_thread(self._alone, params)
        if not self._writing:
            self._writing = True
            try:
                return await asyncio.to_thread(self._alone, params)
            finally:
                self._next()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        entry = (params, future)
        self._waiting.append(entry)
        try:
            return await future
        except asyncio.CancelledError:
            for index, waiting in enumerate(self._waiting):
                if waiting is entry:  # not written yet: it never will be
                    del self._waiting[index]
                    break
            raise

    def _next(self) -> None:
        import asyncio

        if self._waiting:
            group = self._waiting[:GROUP_LIMIT]
            del self._waiting[:GROUP_LIMIT]
            asyncio.get_running_loop().create_task(self._write(group))
        else:
            self._writing = False

    async def _write(self, group: list[tuple[P, asyncio.Future[R]]]) -> None:
        import asyncio

        try:
            outcomes = await asyncio.to_thread(
                run_group, [params for params, _ in group], self._alone, self._together
            )
        except BaseException as exc:  # nothing may leave a caller waiting
            outcomes = [exc] * len(group)
        finally:
            self._next()
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if future.done():  # its caller was cancelled: its rows are stored all the same
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
