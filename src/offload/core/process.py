"""This process's id, read without a system call: `os.getpid()` asks the kernel on every
call (0.4 to 0.9 us on a shared VM), and every enqueue checks whether its process was
forked (a child must not use its parent's connections, locks or combiner). Read it as
`process.pid` (a module attribute, rebound in a child after a fork)."""

from __future__ import annotations

import os

#: The id of the running process, as `os.getpid()` returns it.
pid = os.getpid()


def _forked() -> None:
    """`os.register_at_fork` hook: a child reads its own id once."""
    global pid
    pid = os.getpid()


os.register_at_fork(after_in_child=_forked)
