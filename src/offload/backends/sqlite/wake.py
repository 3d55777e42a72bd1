"""Wake-ups between processes sharing one SQLite file, which has no LISTEN/NOTIFY.

Each worker binds a Unix datagram socket in Linux's abstract namespace and records its
address in the worker registry. After committing new jobs, a producer sends one byte to every
registered address. A lost datagram costs only latency: workers also poll on a timer.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable

from offload.core.errors import OffloadError

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
        self._lock = threading.Lock()  # the commit watch's thread sends too

    def send(self) -> None:
        """Signal every known worker; never raises, never blocks. The addresses are read
        outside the lock: the read takes the backend's lock, which `close` may hold."""
        if not sys.platform.startswith("linux"):
            return
        now = time.monotonic()
        with self._lock:
            stale = now - self._loaded_at > (ADDRESS_TTL if self._addresses else EMPTY_TTL)
        if stale:
            try:
                addresses = self._load()
            except OffloadError:  # the jobs are committed: a missed wake-up costs a poll
                return
            with self._lock:
                self._addresses, self._loaded_at = addresses, now
        with self._lock:
            if not self._addresses:
                return
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            for address in self._addresses:
                with contextlib.suppress(OSError):  # gone, or its buffer is full: awake anyway
                    self._sock.sendto(b"\1", "\0" + address)

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def forked(self) -> None:
        """In a child after a fork: a lock a parent's thread held there stays free."""
        self._lock = threading.Lock()


class CommitWatch:
    """Sends wake-ups for jobs stored in a caller's own transaction once it has ended.

    SQLite tells no one about a commit, so a thread looks at `in_transaction` of the
    caller's connection (held until then), often at first and then less, until it ends (a
    rollback wakes the workers for nothing, which costs one empty claim). Past `GIVE_UP`
    seconds it stops looking: the workers' poll finds the jobs then.
    """

    GIVE_UP = 60.0

    def __init__(self, send: Callable[[], None]) -> None:
        self._send = send
        self._cond = threading.Condition()
        self._watched: list[tuple[sqlite3.Connection, float]] = []
        self._thread: threading.Thread | None = None
        self._closed = False

    def after_commit(self, conn: sqlite3.Connection) -> None:
        """Wake workers once `conn`'s current transaction has ended."""
        if not conn.in_transaction:
            self._send()
            return
        with self._cond:
            if self._closed:
                return
            self._watched.append((conn, time.monotonic() + self.GIVE_UP))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="offload-commit-watch", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        pause = 0.0005
        while True:
            with self._cond:
                while not self._watched and not self._closed:
                    self._cond.wait()
                    pause = 0.0005
                if self._closed:
                    return
                watched = list(self._watched)
            ended = False
            now = time.monotonic()
            kept = []
            for conn, deadline in watched:
                if now > deadline:
                    continue
                try:
                    busy = conn.in_transaction
                except sqlite3.Error:  # closed: its transaction ended one way or the other
                    busy = False
                if busy:
                    kept.append((conn, deadline))
                else:
                    ended = True
            with self._cond:
                self._watched = kept + self._watched[len(watched) :]
            if ended and not self._closed:
                self._send()
                pause = 0.0005
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def forked(self) -> None:
        """In a child after a fork: a fresh condition, and no watch (the connections
        watched, and the thread watching them, are the parent's)."""
        self._cond = threading.Condition()
        self._watched = []
        self._thread = None

    def close(self) -> None:
        """Stop watching (a transaction still open wakes nobody: the poll finds its jobs)."""
        with self._cond:
            self._closed = True
            self._watched = []
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(1.0)


class DataVersionSignal:
    """An event reader's wake-up: readable when another connection committed to the file.

    Whoever commits job changes (a worker's outcome, a claim, an enqueue) would otherwise
    have to send datagrams to every reader on its hot path; instead a thread of the reader
    reads `PRAGMA data_version` on a connection of its own every `EVERY` seconds, which
    changes whenever any other connection commits (a read of shared memory in WAL mode,
    no query of the events). Every commit wakes it, events or not: it is a hint, and the
    reader's read finds out.
    """

    EVERY = 0.05
    address = None

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._stop = threading.Event()
        self._seen = self._version()
        self._thread = threading.Thread(target=self._run, name="offload-events", daemon=True)
        self._thread.start()

    def _version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def _run(self) -> None:
        while not self._stop.wait(self.EVERY):
            try:
                version = self._version()
            except sqlite3.Error:  # busy or gone for a moment: the safety re-read covers it
                continue
            if version != self._seen:
                self._seen = version
                with contextlib.suppress(BlockingIOError):  # a byte is pending already
                    os.write(self._write, b"\1")

    def fileno(self) -> int:
        return self._read

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 64):
                pass

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._db.close()
        for fd in (self._read, self._write):
            os.close(fd)
