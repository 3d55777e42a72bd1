"""`offload.core.process.pid`: the process id without a system call, right after a fork."""

from __future__ import annotations

import os

from offload.core import process


def test_pid_is_the_process_id_in_the_parent_and_in_a_forked_child() -> None:
    assert process.pid == os.getpid()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report whether it reads its own id, never the parent's
        os.close(read)
        os.write(write, b"1" if process.pid == os.getpid() else b"0")
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        assert answer.read() == b"1"
    os.waitpid(child, 0)
    assert process.pid == os.getpid()
