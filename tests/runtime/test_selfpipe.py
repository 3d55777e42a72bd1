"""The worker's self-pipe: a wake that races the loop's end does nothing."""

from __future__ import annotations

import os

from offload.runtime.executor import SelfPipe


def test_a_wake_after_close_writes_nowhere() -> None:
    pipe = SelfPipe()
    pipe.wake()
    pipe.close()
    # The descriptor numbers are free now: a file opened next may get one of them.
    reader, writer = os.pipe()
    try:
        pipe.wake()  # was OSError EBADF, or a byte written into whatever reused the number
        os.set_blocking(reader, False)
        try:
            leaked = os.read(reader, 16)
        except BlockingIOError:
            leaked = b""
        assert leaked == b""
    finally:
        os.close(reader)
        os.close(writer)
