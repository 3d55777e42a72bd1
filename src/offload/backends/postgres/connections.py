"""The PostgreSQL connections of one process: few, checked before use, never waited on long.

Why not psycopg_pool: its reconnect backoff (1 s, doubling, fixed in the library) left
producers waiting 15-25 s after a restarted server was back, its `timeout` answers an outage
with "couldn't get a connection" instead of the cause, its background threads run across a
worker's forks, and two pools (durable and relaxed sessions) could not share one cap. Here a
caller that finds no usable connection opens one itself, so an outage fails in one connect
timeout naming the cause, and the first call after the server returns succeeds.

- **Checked before use.** An idle connection that has something to read was told by the
  server that it is going away (a restart's "terminating connection" and EOF): it is closed
  and replaced, not handed out to fail.
- **Capped across kinds.** Durable sessions (enqueues, reads) and relaxed ones (a worker's
  bookkeeping, `synchronous_commit=off`) share `limit`: a worker holds at most its loop's
  and its outcome writer's, plus its LISTEN connection outside the cap.
- **Half-open links found.** TCP keepalives and `tcp_user_timeout` catch a dead peer; a
  watchdog thread cuts a connection whose operation outlives its kind's deadline (a server
  that accepts bytes but never answers), so that the caller gets an error instead of a hang.
"""

from __future__ import annotations

import logging
import math
import re
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from offload.core import process
from offload.core.errors import BackendUnavailable

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("offload.postgres")

#: libpq settings that find a dead peer at the TCP level: probe an idle link after 10 s,
#: give up on it after 3 unanswered probes, and on sent data unacknowledged for 20 s.
LIVENESS: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    "tcp_user_timeout": 20_000,
}


#: What a server says when it refuses a login (bad password, no such role or database, no
#: pg_hba.conf entry): waiting will not help. libpq reports no SQLSTATE for these.
_REFUSED = re.compile(
    r"authentication failed|does not exist|no pg_hba\.conf entry|permission denied", re.I
)


def one_line(exc: BaseException) -> str:
    """A psycopg error's message on one line (libpq's run over several)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines) or type(exc).__name__


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of session: how it is opened and set up, and how long an operation may take
    on it before the watchdog cuts its link."""

    name: str
    configure: Callable[[psycopg.Connection[Any]], None]
    deadline: float


class Connections:
    """At most `limit` open connections of any kind, handed out one caller at a time."""

    def __init__(
        self,
        url: str,
        location: str,
        *,
        limit: int,
        connect_timeout: float,
        wait: float,
        prepare: bool = True,
    ) -> None:
        self.url = url
        self.location = location
        self.limit = limit
        self.connect_timeout = connect_timeout
        self.wait = wait
        #: Whether statements may be prepared server-side (psycopg does, from their fifth
        #: run): not behind a transaction pooler, whose next transaction may run elsewhere.
        self.prepare = prepare
        self.forked()
        process.reset_after_fork(self)

    def forked(self) -> None:
        """A fresh lock and no connections: at start, and in a forked child, where a lock
        a parent's thread held would stay held (see `_reset`)."""
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        """Forget every connection: at start, and in a forked child, whose inherited
        sockets belong to the parent (closing them would end the parent's sessions)."""
        self._pid = process.pid
        self._idle: dict[str, deque[psycopg.Connection[Any]]] = {}
        self._open = 0
        self._busy: dict[int, tuple[psycopg.Connection[Any], float]] = {}
        #: Callers waiting for a connection, first come first served: without a queue, a
        #: caller woken by a returned connection could lose it, again and again, to callers
        #: arriving meanwhile, and wait past `wait` while others are served.
        self._waiting: deque[threading.Condition] = deque()
        self._watchdog: threading.Thread | None = None
        self._closed = False

    @contextmanager
    def connection(self, kind: Kind) -> Iterator[psycopg.Connection[Any]]:
        """A usable connection of `kind`; a broken one is closed on return, not reused."""
        conn = self._take(kind)
        try:
            yield conn
        finally:
            self._give_back(conn, kind)

    def _take(self, kind: Kind) -> psycopg.Connection[Any]:
        """A connection of `kind`, marked busy for the watchdog (in the same lock hold:
        this is every statement's path)."""
        deadline = time.monotonic() + self.wait
        with self._lock:
            if self._watchdog is None:
                self._watchdog = threading.Thread(
                    target=self._watch, name="offload-pg-watchdog", daemon=True
                )
                self._watchdog.start()
            turn: threading.Condition | None = None  # this caller's place in the queue
            while True:
                if self._closed:
                    if turn is not None:
                        self._waiting.remove(turn)
                    raise BackendUnavailable(f"{self.location}: the backend is closed")
                if turn is None and self._waiting:
                    turn = self._queue_up()  # others came first
                if turn is None or self._waiting[0] is turn:
                    conn = self._idle_one(kind)
                    if conn is not None:
                        self._served(turn)
                        return conn
                    if self._open < self.limit:
                        self._open += 1  # this caller's slot: it connects outside the lock
                        self._served(turn)
                        break
                    other = next((q for q in self._idle.values() if q), None)
                    if other is not None:  # the slot of an idle connection of another kind
                        close_quietly(other.popleft())
                        self._served(turn)
                        break
                if turn is None:
                    turn = self._queue_up()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._waiting.remove(turn)
                    self._wake_next()
                    raise BackendUnavailable(
                        f"{self.location}: all {self.limit} connections stayed busy for "
                        f"{self.wait:g}s"
                    )
                turn.wait(remaining)
        try:
            conn = self._connect(kind)
        except BaseException:
            with self._lock:
                self._open -= 1
                self._wake_next()
            raise
        with self._lock:
            self._busy[id(conn)] = (conn, time.monotonic() + kind.deadline)
        return conn

    def _idle_one(self, kind: Kind) -> psycopg.Connection[Any] | None:
        """An idle connection of `kind` that is still usable, marked busy (unusable ones
        found on the way are closed and their slots freed)."""
        idle = self._idle.setdefault(kind.name, deque())
        while idle:
            conn = idle.pop()
            if usable(conn):
                self._busy[id(conn)] = (conn, time.monotonic() + kind.deadline)
                return conn
            self._open -= 1
            close_quietly(conn)
        return None

    def _queue_up(self) -> threading.Condition:
        turn = threading.Condition(self._lock)
        self._waiting.append(turn)
        return turn

    def _served(self, turn: threading.Condition | None) -> None:
        """A queued caller got its connection: the next in line looks now (there may be
        more to hand out)."""
        if turn is not None:
            self._waiting.popleft()
            self._wake_next()

    def _wake_next(self) -> None:
        """Wake the first caller in line, if any (under the lock)."""
        if self._waiting:
            self._waiting[0].notify()

    def dial(self, **settings: Any) -> psycopg.Connection[Any]:
        """A new connection outside the pool and its cap (a worker's LISTEN connection, and
        every pooled one), with the liveness settings and the connect timeout; a failure is
        BackendUnavailable naming the cause, not transient if the server refused the login."""
        import psycopg

        try:
            return psycopg.connect(
                self.url,
                connect_timeout=max(1, round(self.connect_timeout)),
                **LIVENESS,
                **settings,
            )
        except psycopg.Error as exc:
            reason = one_line(exc).removeprefix("connection failed: ")
            raise BackendUnavailable(
                f"cannot connect to {self.location}: {reason}",
                transient=_REFUSED.search(reason) is None,
            ) from None

    def _connect(self, kind: Kind) -> psycopg.Connection[Any]:
        conn = self.dial()
        if not self.prepare:
            conn.prepare_threshold = None
        try:
            kind.configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _give_back(self, conn: psycopg.Connection[Any], kind: Kind) -> None:
        from psycopg.pq import TransactionStatus

        reusable = not conn.closed and conn.pgconn.transaction_status == TransactionStatus.IDLE
        stale: list[psycopg.Connection[Any]] = []
        with self._lock:
            self._busy.pop(id(conn), None)
            mine = self._pid == process.pid  # else taken before a fork: the parent's
            if reusable and mine and not self._closed:
                self._idle.setdefault(kind.name, deque()).append(conn)
                self._wake_next()
                return
            if mine:
                self._open -= 1
                if conn.broken:  # the link died: its idle siblings, on the same link, may
                    # look healthy yet never answer (a half-open link): replace them too
                    stale = [c for queue in self._idle.values() for c in queue]
                    for queue in self._idle.values():
                        queue.clear()
                    self._open -= len(stale)
                self._wake_next()
        if mine:
            for dead in (conn, *stale):
                close_quietly(dead)

    def _watch(self) -> None:
        """Cut the link of any operation past its kind's deadline: the caller's wait then
        ends with a lost connection instead of hanging on a peer that never answers."""
        while True:
            time.sleep(1.0)
            now = time.monotonic()
            with self._lock:
                if self._closed or self._pid != process.pid:
                    return
                late = [conn for conn, deadline in self._busy.values() if deadline < now]
            for conn in late:
                log.warning(
                    "%s: no answer from the server in time; dropping the connection", self.location
                )
                _sever(conn)

    def close(self) -> None:
        """Close the idle connections; busy ones are closed when given back."""
        with self._lock:
            if self._pid != process.pid:
                self._reset()
            self._closed = True
            idle = [conn for queue in self._idle.values() for conn in queue]
            self._idle.clear()
            self._open -= len(idle)
            for turn in self._waiting:
                turn.notify()
        for conn in idle:
            close_quietly(conn)


def usable(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle connection may be handed out: open, outside a transaction, and
    with nothing to read (an idle session receives nothing but the server's goodbye)."""
    from psycopg.pq import TransactionStatus

    if conn.closed or conn.pgconn.transaction_status != TransactionStatus.IDLE:
        return False
    try:
        return not ready(conn.pgconn.socket)
    except (OSError, ValueError):  # no socket: the connection is gone
        return False


def ready(fd: int, *, write: bool = False, timeout: float = 0.0) -> bool:
    """Whether `fd` becomes readable (or writable), or fails or hangs up, within `timeout`
    seconds. By poll, which takes any descriptor: select refuses those of 1024 and above,
    which a busy process has."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT if write else select.POLLIN)
    return bool(poller.poll(math.ceil(max(timeout, 0.0) * 1000)))


def _sever(conn: psycopg.Connection[Any]) -> None:
    """Shut the connection's socket down under whoever waits on it (without closing the
    descriptor, which psycopg still owns)."""
    try:
        sock = socket.socket(fileno=conn.pgconn.socket)
    except (OSError, ValueError):
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()


def close_quietly(conn: psycopg.Connection[Any]) -> None:
    try:
        conn.close()
    except Exception:  # closing a broken connection may fail; it is gone either way
        log.debug("error closing a connection", exc_info=True)
