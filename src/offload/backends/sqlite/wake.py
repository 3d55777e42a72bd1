"""Wake-ups between processes sharing one SQLite file, which has no LISTEN/NOTIFY.

Each worker binds a Unix datagram socket in Linux's abstract namespace and records its
address in the worker registry. After committing new jobs, a producer sends one byte to every
registered address. A lost datagram costs only latency: workers also poll on a timer.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable

#: How long a producer trusts its cached list of worker addresses (shorter while empty).
ADDRESS_TTL = 1.0
EMPTY_TTL = 0.1


class WakeSocket:
    """A worker's receiving end; readable when a producer has signalled."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if sys.platform.startswith("linux"):
            self.address: str | None = f"offload-{os.getpid()}-{os.urandom(6).hex()}"
            self.sock.bind("\0" + self.address)
        else:  # no abstract namespace: the worker relies on its poll timer alone
            self.address = None
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> None:
        try:
            while True:
                self.sock.recv(64)
        except BlockingIOError:
            pass

    def close(self) -> None:
        self.sock.close()


class WakeSender:
    """A producer's sending end, with the worker addresses cached for ADDRESS_TTL seconds."""

    def __init__(self, load_addresses: Callable[[], list[str]]) -> None:
        self._load = load_addresses
        self._addresses: list[str] = []
        self._loaded_at = float("-inf")
        self._sock: socket.socket | None = None

    def send(self) -> None:
        """Signal every known worker; never raises, never blocks."""
        if not sys.platform.startswith("linux"):
            return
        now = time.monotonic()
        if now - self._loaded_at > (ADDRESS_TTL if self._addresses else EMPTY_TTL):
            self._addresses = self._load()
            self._loaded_at = now
        if not self._addresses:
            return
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
        for address in self._addresses:
            with contextlib.suppress(OSError):  # gone, or its buffer is full: awake anyway
                self._sock.sendto(b"\1", "\0" + address)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
