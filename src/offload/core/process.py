"""This process's id, read without a system call: `os.getpid()` asks the kernel on every
call (0.4 to 0.9 us on a shared VM), and every enqueue checks whether its process was
forked (a child must not use its parent's connections, locks or combiner). Read it as
`process.pid` (a module attribute, rebound in a child after a fork).

Objects holding locks register with `reset_after_fork`: a lock that another thread of the
parent held at the fork stays held for good in the child, which has no such thread; their
`forked()` runs in the child right after the fork, while it has a single thread."""

from __future__ import annotations

import os
import weakref
from typing import Protocol


class Forked(Protocol):
    def forked(self) -> None:
        """Called in a child process right after a fork: drop the parent's locks and state."""


#: The id of the running process, as `os.getpid()` returns it.
pid = os.getpid()

_resets: weakref.WeakSet[Forked] = weakref.WeakSet()


def reset_after_fork(holder: Forked) -> None:
    """Call `holder.forked()` in every child forked from now on (held weakly: a holder
    that is gone is not kept alive by this)."""
    _resets.add(holder)


def _forked() -> None:
    """`os.register_at_fork` hook: a child reads its own id once, then resets the holders."""
    global pid
    pid = os.getpid()
    for holder in list(_resets):
        holder.forked()


os.register_at_fork(after_in_child=_forked)
