"""This process's id, read without a system call: `os.getpid()` asks the kernel on every
call (0.4 to 0.9 us on a shared VM), and every enqueue checks whether its process was
forked (a child must not use its parent's connections, locks or combiner)."""

from __future__ import annotations

import os

_pid = os.getpid()


def _forked() -> None:
    """`os.register_at_fork` hook: a child reads its own id once."""
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def pid() -> int:
    """The id of the running process, as `os.getpid()`, updated in a child after a fork."""
    return _pid
