"""A TCP proxy between offload and PostgreSQL that can break the link on demand.

- `cut()`: close every connection and refuse new ones (the server's host is gone), until
  `restore()`.
- `reset()`: abort every open connection with an RST; new ones pass.
- `blackhole()`: keep every connection open but pass no byte either way, new ones
  included (a half-open link: a dead peer behind a firewall that drops packets), until
  `restore()`, which then closes them.
- `swallow_replies()`: pass what clients send, drop what the server answers and reset the
  connection once an answer arrives: the server commits a write whose client never hears.
- `swallow_commit_replies()`: the same, but only for the answer to a COMMIT (earlier
  answers of the transaction pass): a transaction of many statements commits unheard.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from enum import Enum


class Mode(Enum):
    PASS = "pass"
    CUT = "cut"
    BLACKHOLE = "blackhole"
    SWALLOW = "swallow"
    SWALLOW_COMMIT = "swallow commit"


class Proxy:
    """Listens on 127.0.0.1 (a free port); forwards to `upstream` (host, port)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.mode = Mode.PASS
        self._lock = threading.Lock()
        self._links: list[tuple[socket.socket, socket.socket]] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True, name="proxy")
        self._thread.start()

    def url(self, url: str) -> str:
        """`url` (of the upstream server) pointed at the proxy instead."""
        return url.replace(f":{self.upstream[1]}/", f":{self.port}/", 1)

    # -- faults ---------------------------------------------------------------------

    def cut(self) -> None:
        self._set(Mode.CUT)
        self._drop_all(reset=False)

    def reset(self) -> None:
        self._drop_all(reset=True)

    def blackhole(self) -> None:
        self._set(Mode.BLACKHOLE)

    def swallow_replies(self) -> None:
        self._set(Mode.SWALLOW)

    def swallow_commit_replies(self) -> None:
        self._set(Mode.SWALLOW_COMMIT)

    def restore(self) -> None:
        if self.mode in (Mode.BLACKHOLE, Mode.SWALLOW, Mode.SWALLOW_COMMIT):
            self._drop_all(reset=True)  # their byte streams lost data: unusable now
        self._set(Mode.PASS)

    def close(self) -> None:
        self._closed = True
        self._server.close()
        self._drop_all(reset=True)

    # -- plumbing -------------------------------------------------------------------

    def _set(self, mode: Mode) -> None:
        with self._lock:
            self.mode = mode

    def _drop_all(self, *, reset: bool) -> None:
        with self._lock:
            links, self._links = self._links, []
        for pair in links:
            for sock in pair:
                _close(sock, reset=reset)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.mode is Mode.CUT:
                _close(client, reset=False)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client, reset=True)
                continue
            with self._lock:
                self._links.append((client, upstream))
            for src, dst, replies in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(
                    target=self._pump, args=(src, dst, replies), daemon=True, name="pump"
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, replies: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                _close(dst, reset=False)
                return
            mode = self.mode
            if mode is Mode.BLACKHOLE:
                continue  # received (the sender's kernel sees it acknowledged), never passed
            # CommandComplete's tag of a COMMIT, NUL-terminated, in the server's answer.
            commit = mode is Mode.SWALLOW_COMMIT and b"COMMIT\x00" in data
            if replies and (mode is Mode.SWALLOW or commit):
                _close(dst, reset=True)
                _close(src, reset=True)
                return
            try:
                dst.sendall(data)
            except OSError:
                _close(src, reset=False)
                return


def _close(sock: socket.socket, *, reset: bool) -> None:
    """Close `sock` even while a pump thread is blocked reading it: shut it down first (a
    bare close would wait for that read to end); with `reset`, abort it with an RST."""
    with contextlib.suppress(OSError):
        if reset:  # SO_LINGER 0: the close sends RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
