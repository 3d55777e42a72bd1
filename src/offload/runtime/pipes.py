"""Reading the messages of a worker-child pipe many per system call.

Both ends send with `multiprocessing.connection.Connection.send_bytes`, whose frame is a
4-byte signed big-endian length (or -1 and an 8-byte length) and the payload. Its
`recv_bytes` reads each frame with two system calls; with short jobs a child answers
thousands of times a second, so both ends read whatever the pipe holds at once and split
the frames here.
"""

from __future__ import annotations

import os
import select

#: Bytes taken from the pipe per read (a Linux pipe holds 64 KiB by default).
READ_SIZE = 1 << 16


class Frames:
    """The receiving end of one pipe: buffered reads, complete messages out."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray()
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN)

    def ready(self) -> bool:
        """Bytes (or the end of the pipe) are waiting: `fill` will not block."""
        return bool(self._poller.poll(0))

    def fill(self) -> bool:
        """Take what the pipe holds, waiting for something if it is empty; False at its end."""
        data = os.read(self.fd, READ_SIZE)
        self._buffer += data
        return bool(data)

    def messages(self) -> list[bytes]:
        """Every complete message received so far, in order; a partial one stays buffered.

        A corrupt header raises ConnectionError (an OSError): the pipe is as good as broken.
        """
        buffer = self._buffer
        found: list[bytes] = []
        start = 0
        while len(buffer) - start >= 4:
            size = int.from_bytes(buffer[start : start + 4], "big", signed=True)
            head = 4
            if size == -1:  # a payload over 2 GiB: the true size follows in 8 bytes
                if len(buffer) - start < 12:
                    break
                size = int.from_bytes(buffer[start + 4 : start + 12], "big")
                head = 12
            elif size < 0:
                raise ConnectionError(f"corrupt message header (length {size}) on the pipe")
            end = start + head + size
            if end > len(buffer):
                break
            found.append(bytes(buffer[start + head : end]))
            start = end
        del buffer[:start]
        return found


__all__ = ["READ_SIZE", "Frames"]
