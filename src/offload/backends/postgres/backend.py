"""PostgreSQL backend, for many worker hosts and transactional enqueue.

Needs the `postgres` extra (psycopg 3), imported with the first connection:
a worker's fork server and job processes load the app, and with it this module, but never
connect unless a task enqueues, so they start without psycopg (about 80 ms of imports).
Connections come from `Connections` (checked before use, capped, opened on demand); a
dedicated connection per worker LISTENs for wake-ups, with the worker's poll timer behind it
because NOTIFY is only a hint.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from offload.backends import redact
from offload.backends.base import Listener
from offload.backends.postgres.connections import (
    Connections,
    Kind,
    close_quietly,
    one_line,
    ready,
    usable,
)
from offload.backends.postgres.shards import PgShards
from offload.backends.sql.columns import JOB_COLUMNS, WORKER_COLUMNS
from offload.backends.sql.connector import SqlBackend
from offload.core.errors import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    ExtraMissing,
    OutcomeUnknown,
    QueueMoved,
    StorageFull,
    ValidationError,
)
from offload.core.times import TOO_EARLY, TOO_LATE

if TYPE_CHECKING:
    import psycopg

CHANNEL = "offload_jobs"
#: Where the statements that write events and `App.notify` NOTIFY.
EVENTS_CHANNEL = "offload_events"
#: Values of the URL's `pool_mode` parameter (see `_own_param`).
POOL_MODES = ("session", "transaction")
#: Values of the URL's `wake` parameter: when an enqueue's wake-ups are sent (`enqueuing`).
WAKES = ("in_commit", "after_commit")
_MACROS = {
    "at": "coalesce(:now::timestamptz, now())",
    "job_columns": JOB_COLUMNS,
    "job_columns_j": ", ".join("j." + c.strip() for c in JOB_COLUMNS.split(",")),
    "worker_columns": WORKER_COLUMNS,
    # What a statement that wrote job events adds to wake event listeners (at commit); not
    # in an enqueue's transaction whose wake-ups follow its commit (schema 20). A scalar
    # subquery is run once, when a row first needs it: a statement that returns no row
    # NOTIFYs nothing.
    "wake_events": "(SELECT pg_notify('offload_events', '') "
    "WHERE current_setting('offload.defer_wake', true) IS DISTINCT FROM 'on')",
}
#: SQLSTATE classes and codes that mean the server cannot be reached or is going away:
#: connection exceptions, admin/crash shutdown, cannot connect now, too many connections.
_UNAVAILABLE_CLASSES = ("08", "53")
_UNAVAILABLE_CODES = frozenset({"57P01", "57P02", "57P03"})
#: SQLSTATE classes of a session the server will not serve: invalid authorization, no such
#: database. Waiting does not help.
_REFUSED_CLASSES = ("28", "3D")
#: A deadlock (40P01) or a serialization failure (40001): the server rolled the whole
#: transaction back, so nothing of it is stored and running it again is safe. Two
#: transactions that lock rows in opposite orders (e.g. a caller's own transaction
#: publishing to two topics beside a pipeline's acknowledgement) can meet one at any time.
_CONFLICT_CODES = frozenset({"40P01", "40001"})
#: A prepared statement missing (26000) or already there (42P05): psycopg prepared it on a
#: server session that a transaction pooler has since lent to another client.
_POOLER_CODES = frozenset({"26000", "42P05"})
#: Raised by the fence trigger of a queue moved to another shard (schema 15).
_MOVED_CODE = "OF001"
#: Seconds a worker's bookkeeping statement (a claim, a heartbeat, outcomes) may take before
#: its link is taken for dead: they take milliseconds, and a worker stuck on a half-open
#: link must notice soon enough to honour a SIGTERM within its grace period.
_BOOKKEEPING_DEADLINE = 10.0
#: The name `wake_committed` is prepared under in the waker's session (`_Waker`).
_WAKE_STATEMENT = b"offload_wake_committed"
#: Severities of a message after which the server closes the session (its goodbye).
_GOODBYE_SEVERITIES = frozenset({"FATAL", "PANIC"})

log = logging.getLogger("offload.postgres")


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\\0")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _configure(conn: psycopg.Connection[Any]) -> None:
    """A bookkeeping session (claims, outcomes): autocommit, JSON as text."""
    from psycopg.types.string import TextLoader

    # Autocommit: a single statement is its own transaction (one round trip); several
    # statements are wrapped in an explicit transaction by `tx`.
    conn.autocommit = True
    # JSON columns come back as text and are decoded once, by the shared decoder.
    for name in ("json", "jsonb"):
        conn.adapters.register_loader(name, TextLoader)


def _configure_tolerant(conn: psycopg.Connection[Any]) -> None:
    """A session for enqueues and reads: as `_configure`, and times out of range read
    clamped. Claims keep psycopg's C loader: the wrapper costs a Python call per time, and
    a job dated out of range is never due."""
    _configure(conn)
    conn.adapters.register_loader("timestamptz", _timestamp_loader())


@functools.cache
def _timestamp_loader() -> type[psycopg.adapt.Loader]:
    """A timestamptz loader that reads a time no datetime can hold ('infinity', a year past
    9999, written by hand or by an older version) as the nearest end of datetime's range,
    as SQLite rows do, instead of failing the whole fetch. It wraps psycopg's own (C)
    loader, which cannot be subclassed: about 0.2 us more per timestamp read."""
    import psycopg
    from psycopg.adapt import Loader
    from psycopg.pq import Format

    oid = psycopg.postgres.types["timestamptz"].oid
    found = psycopg.adapters.get_loader(oid, Format.TEXT)
    assert found is not None
    fast: type[psycopg.abc.Loader] = found

    class ClampedTimestamptzLoader(Loader):
        def __init__(self, oid: int, context: psycopg.abc.AdaptContext | None = None) -> None:
            super().__init__(oid, context)
            self._load = fast(oid, context).load

        def load(self, data: psycopg.abc.Buffer) -> datetime:
            try:
                value: datetime = self._load(data)
            except psycopg.DataError:
                text = bytes(data)
                early = text.startswith(b"-") or text.endswith(b" BC")
                return TOO_EARLY if early else TOO_LATE
            return value

    return ClampedTimestamptzLoader


def _configure_relaxed(conn: psycopg.Connection[Any]) -> None:
    """A worker's bookkeeping session: as `_configure`, and commits that do not wait for
    the WAL flush (see `SqlBackend.tx`). A SET, not a startup option: poolers such as
    PgBouncer refuse startup options."""
    _configure(conn)
    conn.execute("SET synchronous_commit = off")


def _own_param(url: str, name: str, values: tuple[str, ...]) -> tuple[str, str | None]:
    """`url` without offload's own parameter `name` (libpq would refuse it), and its value,
    one of `values` (None when the URL has none): `pool_mode=transaction` when a pooler
    (PgBouncer pool_mode=transaction) hands each transaction to any server session;
    `wake=after_commit` for enqueues whose wake-ups follow their commit (`enqueuing`)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = [value for key, value in query if key == name]
    if not given:
        return url, None
    if given[-1] not in values:
        raise ConfigurationError(
            f"{name}={given[-1]!r} in {redact(url)!r}: use one of {', '.join(values)}"
        )
    rest = urlencode([(key, value) for key, value in query if key != name])
    return urlunsplit(parts._replace(query=rest)), given[-1]


def _url_connect_timeout(url: str) -> float | None:
    """The URL's own `connect_timeout` (libpq's parameter, in seconds), if it sets one: the
    bound within which an enqueue fails while the server is unreachable."""
    given = [value for key, value in parse_qsl(urlsplit(url).query) if key == "connect_timeout"]
    if not given:  # (parsed here, not by psycopg: an App must not import it before use)
        return None
    value = given[-1]
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigurationError(
            f"connect_timeout in the URL must be seconds, got {value!r}"
        ) from None
    if not 0 < seconds <= 3600:
        raise ConfigurationError(f"connect_timeout in the URL must be in (0, 3600], got {value}")
    return seconds


class PgListener:
    """A LISTEN connection; its socket is readable when a NOTIFY arrived."""

    def __init__(
        self, conn: psycopg.Connection[Any], location: str, channel: str = CHANNEL
    ) -> None:
        self.address: str | None = None
        self.location = location
        self.conn = conn
        try:
            self.conn.execute(f"LISTEN {channel}")
        except BaseException:
            self.conn.close()
            raise

    def fileno(self) -> int:
        return self.conn.pgconn.socket

    def drain(self) -> None:
        """Discard the notifications received (libpq directly: the wake-up path of an idle
        worker, where `Connection.notifies` costs tens of microseconds). Raises
        BackendUnavailable once the server has closed the connection."""
        import psycopg
        from psycopg.pq import ConnStatus

        pgconn = self.conn.pgconn
        try:
            pgconn.consume_input()
        except psycopg.Error as exc:
            lost = f"{self.location}: wake-up channel lost: {one_line(exc)}"
            raise BackendUnavailable(lost) from None
        while pgconn.notifies() is not None:
            pass
        if pgconn.status == ConnStatus.BAD:
            raise BackendUnavailable(f"{self.location}: wake-up channel lost")

    def close(self) -> None:
        self.conn.close()


class PollOnly:
    """The wake-up channel behind a transaction pooler, where LISTEN cannot work (its
    session is lent to other clients between transactions): never readable, so workers
    find new jobs by their poll interval alone."""

    address = None

    def __init__(self) -> None:
        self._read, self._write = os.pipe()

    def fileno(self) -> int:
        return self._read

    def drain(self) -> None:
        """Nothing arrives."""

    def close(self) -> None:
        for fd in (self._read, self._write):
            os.close(fd)


class _Waker:
    """A session of its own (outside the cap, as a worker's LISTEN one) that sends the
    wake-ups of committed enqueues (`wake_committed`, prepared) without waiting for them:
    each send first reads the previous one's result, which has arrived meanwhile. Waiting
    would add a round trip to every enqueue, sending them on the enqueue's own session too
    (its result must be read before the next statement), and a pipeline behind the COMMIT
    doubled the client CPU of an enqueue. A wake-up is a hint, sent after the commit:
    nothing here raises into the enqueue. A failure is logged at debug and the session
    dropped (the next send dials another); while no session can be opened, dials back off
    and the enqueue sends its wake-up on its own connection (`spare`). Every wait has a
    deadline (the connections' wait), so a stuck server cannot hold the lock for long."""

    def __init__(self, connections: Connections, sql: bytes) -> None:
        self.connections = connections
        self.sql = sql
        self.lock = threading.Lock()
        self.conn: psycopg.Connection[Any] | None = None
        #: Whether a sent wake-up's result is still to be read.
        self.pending = False
        #: Whether the session's server said goodbye (`_goodbye`): it ends, sends nothing.
        self.ended = False
        #: Set by `close`: later sends are skipped, not dialled (nothing would close them).
        self.closed = False
        #: The back-off after a failed dial: seconds, and the monotonic time of the next try.
        self.backoff = 0.0
        self.retry_at = 0.0
        #: Whether the fork hook is registered: by the first send, so that the Apps that
        #: never use `wake=after_commit` leave none behind (hooks cannot be removed).
        self.hooked = False

    def forked(self) -> None:
        """In a forked child: a fresh lock, and the parent's session forgotten (not closed:
        that would end it for the parent)."""
        self.lock = threading.Lock()
        self.conn, self.pending = None, False

    def send(self, queues: set[str], spare: psycopg.Connection[Any]) -> None:
        """Send the wake-ups of `queues`; while the waker has no session, on `spare` (the
        enqueue's own, idle connection), waiting for the answer. Never raises."""
        from psycopg.pq import ExecStatus

        names = [orjson.dumps(sorted(queues))]
        with self.lock:
            if self.closed:
                return
            if not self.hooked:
                # A child forked while another thread held the lock (across a network wait)
                # would find it held forever, and the session is the parent's: start afresh.
                os.register_at_fork(after_in_child=functools.partial(_forked, weakref.ref(self)))
                self.hooked = True
            try:
                if self._send(names):
                    return
            except Exception as exc:
                self._drop(one_line(exc))
        try:
            result = spare.pgconn.exec_params(self.sql, names)
            if result.status != ExecStatus.TUPLES_OK:
                log.debug("%s: a wake-up lost: %s", self.connections.location, _message(result))
        except Exception as exc:
            log.debug("%s: a wake-up lost: %s", self.connections.location, one_line(exc))

    def _send(self, names: list[bytes]) -> bool:
        """Send on the session (the previous result read, dialled if none); False if none
        could be opened."""
        deadline = time.monotonic() + self.connections.wait
        conn = self.conn
        if conn is not None and self.pending:
            try:
                self._collect(conn, deadline)
            except Exception as exc:  # e.g. the session ended since: this one still goes
                self._drop(one_line(exc))
                conn = None
        # The server said goodbye meanwhile: the FATAL read by `_collect` (the socket shows
        # nothing more to read until the server's process exits), or still unread.
        if conn is not None and (self.ended or not usable(conn)):
            self._drop("the session ended")
            conn = None
        if conn is None:
            conn = self._dial(deadline)
            if conn is None:
                return False
        pgconn = conn.pgconn
        pgconn.send_query_prepared(_WAKE_STATEMENT, names)
        self.pending = True
        while pgconn.flush():  # (a few dozen bytes: sent at once)
            if not ready(pgconn.socket, write=True, timeout=deadline - time.monotonic()):
                raise BackendError("the wake-up could not be sent in time")
        return True

    def _dial(self, deadline: float) -> psycopg.Connection[Any] | None:
        """A new session, the statement prepared; None while backing off or if it fails,
        which warns once an outage (and once it is over)."""
        now = time.monotonic()
        if now < self.retry_at:
            return None
        try:
            conn = self.connections.dial(autocommit=True)
        except Exception as exc:
            self._failed(now, one_line(exc))
            return None
        self.ended = False
        try:
            conn.add_notice_handler(self._goodbye)
            pgconn = conn.pgconn
            pgconn.send_prepare(_WAKE_STATEMENT, self.sql)
            while pgconn.flush():
                if not ready(pgconn.socket, write=True, timeout=deadline - time.monotonic()):
                    raise BackendError("no answer in time")
            self.conn, self.pending = conn, True  # the preparation's result: read like one
            self._collect(conn, deadline, failed=BackendError)
        except Exception as exc:
            self.conn, self.pending = None, False
            close_quietly(conn)
            self._failed(now, one_line(exc))
            return None
        if self.backoff:
            log.warning("%s: the waker session is open again", self.connections.location)
            self.backoff = self.retry_at = 0.0
        return conn

    def _failed(self, now: float, why: str) -> None:
        """A dial failed: wait 1 s before the next, doubling up to 30 s."""
        if not self.backoff:
            log.warning(
                "%s: cannot open the session that sends wake-ups after enqueues (%s); "
                "enqueues send them on their own connections until it opens",
                self.connections.location,
                why,
            )
        self.backoff = min(max(self.backoff * 2, 1.0), 30.0)
        self.retry_at = now + self.backoff

    def _collect(
        self,
        conn: psycopg.Connection[Any],
        deadline: float,
        failed: type[Exception] | None = None,
    ) -> None:
        """Read the previous wake-up's result (waiting, if it has not come yet, until the
        deadline); its failure is logged (raised as `failed`, if given)."""
        from psycopg.pq import ExecStatus

        pgconn = conn.pgconn
        pgconn.consume_input()
        while pgconn.is_busy():
            if not ready(pgconn.socket, timeout=deadline - time.monotonic()):
                raise BackendError("no answer to the previous wake-up in time")
            pgconn.consume_input()
        self.pending = False
        while (result := pgconn.get_result()) is not None:
            if result.status not in (ExecStatus.TUPLES_OK, ExecStatus.COMMAND_OK):
                if failed is not None:
                    raise failed(_message(result))
                log.debug("%s: a wake-up lost: %s", self.connections.location, _message(result))

    def _goodbye(self, diag: psycopg.errors.Diagnostic) -> None:
        """The session's notice handler. libpq hands an idle session's error to it: the
        FATAL of its end (`pg_terminate_backend`, a server shutting down), often read by
        `_collect` along with the previous result, before the server's process exits and
        closes the socket."""
        self.ended |= diag.severity_nonlocalized in _GOODBYE_SEVERITIES

    def _drop(self, why: str) -> None:
        log.debug("%s: a wake-up lost: %s", self.connections.location, why)
        conn, self.conn, self.pending = self.conn, None, False
        if conn is not None:
            close_quietly(conn)

    def close(self) -> None:
        """Read the last wake-up's result (its failure logged), then close the session;
        later sends are skipped. Never raises."""
        with self.lock:
            self.closed = True
            conn, self.conn = self.conn, None
            if conn is None:
                return
            try:
                if self.pending:
                    self._collect(conn, time.monotonic() + self.connections.wait)
            except Exception as exc:
                log.debug("%s: a wake-up lost: %s", self.connections.location, one_line(exc))
            self.pending = False
            close_quietly(conn)


def _forked(waker: weakref.ref[_Waker]) -> None:
    """`os.register_at_fork` hook of a waker, which it does not keep alive."""
    alive = waker()
    if alive is not None:
        alive.forked()


def _message(result: psycopg.pq.abc.PGresult) -> str:
    return (result.error_message or b"").decode(errors="replace").strip()


class PostgresBackend(SqlBackend):
    """Jobs in PostgreSQL tables, shared by any number of hosts."""

    name: ClassVar[str] = "postgresql"
    package: ClassVar[str] = "offload.backends.postgres"
    parallel_writes: ClassVar[bool] = True
    clock_per_statement: ClassVar[bool] = False

    def __init__(
        self,
        url: str,
        pool_size: int = 10,
        *,
        connect_timeout: float = 5.0,
        deadline: float = 30.0,
    ) -> None:
        try:
            parts = urlsplit(url)
        except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 host
            raise ConfigurationError(f"malformed PostgreSQL URL {redact(url)!r}: {exc}") from None
        if parts.scheme not in ("postgresql", "postgres") or not (parts.netloc or parts.query):
            raise ConfigurationError(
                f"malformed PostgreSQL URL {redact(url)!r}: expected postgresql://user@host/db"
            )
        if find_spec("psycopg") is None:
            raise ExtraMissing("the PostgreSQL backend", "postgres", "psycopg")
        self.location = redact(url)
        url, self.pool_mode = _own_param(url, "pool_mode", POOL_MODES)
        self.url, wake = _own_param(url, "wake", WAKES)
        url = self.url
        #: Enqueues send their wake-ups after their commit (`enqueuing`), not in it.
        self.wake_after_commit = wake == "after_commit"
        super().__init__(_MACROS, pyformat=True)
        self.shards = PgShards(self)
        # Durable sessions for enqueues and reads; relaxed ones (synchronous_commit=off,
        # opened by workers only) for bookkeeping, whose commits need not wait for the
        # WAL flush: see SqlBackend.tx. A worker's bookkeeping is short: cut it sooner.
        self._durable = Kind("durable", _configure_tolerant, deadline)
        # Behind a transaction pooler a SET would stay on a server session that other
        # clients' transactions use next: there bookkeeping commits are durable too.
        pooled = self.pool_mode == "transaction"
        self._relaxed = Kind(
            "relaxed",
            _configure if pooled else _configure_relaxed,
            min(deadline, _BOOKKEEPING_DEADLINE),
        )
        given = _url_connect_timeout(url)
        connect_timeout = given if given is not None else connect_timeout
        self.connections = Connections(
            url,
            self.location,
            limit=pool_size,
            connect_timeout=connect_timeout,
            wait=connect_timeout,
            prepare=not pooled,
        )
        #: The queues to wake once each open enqueue transaction committed, by its cursor.
        self._deferred: dict[Any, set[str]] = {}
        self._waker = _Waker(self.connections, self.q["connector"]["wake_committed"].encode())

    def limit_connections(self, limit: int) -> None:
        """Open at most `limit` connections from now on (a worker's loop and its outcome
        writer need two). Not counted: a worker's LISTEN connection, and the session that
        sends wake-ups after enqueues' commits with `wake=after_commit` (`_Waker`),
        opened by a process's first enqueue."""
        if limit < 1:
            raise ConfigurationError(f"connections must be >= 1, got {limit}")
        self.connections.limit = limit

    @contextmanager
    def tx(self, conn: Any = None, *, single: bool = False, relaxed: bool = False) -> Iterator[Any]:
        import psycopg  # a dictionary lookup once the first connection has loaded it

        if conn is not None:  # the caller's connection: its transaction decides
            if not isinstance(conn, psycopg.Connection):
                raise ConfigurationError(
                    f"conn must be a psycopg.Connection for the PostgreSQL backend, got {conn!r}"
                )
            idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            if conn.autocommit and idle:
                raise ValidationError(
                    "conn is in autocommit mode with no transaction open, so each statement would "
                    "commit alone: open one (BEGIN) or turn autocommit off"
                )
            try:
                with conn.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                raise self._error(exc) from None
            return
        sent = False  # past this point a lost connection may or may not have committed
        try:
            with self.connections.connection(self._relaxed if relaxed else self._durable) as own:
                if single:  # autocommit: the statement is its own transaction
                    with own.cursor() as cur:
                        sent = True
                        yield cur
                else:
                    with own.transaction(), own.cursor() as cur:
                        yield cur
                        sent = True  # the COMMIT goes out as the blocks end
        except psycopg.Error as exc:
            raise self._error(exc, sent=sent) from None

    def enqueuing(self, conn: Any = None, *, single: bool = False) -> AbstractContextManager[Any]:
        """An enqueue's transaction. With `wake=after_commit` in the URL, one on offload's
        own connection NOTIFYs nothing, and its wake-ups follow its commit, in a transaction
        of their own that does not wait for the disk, sent without waiting for them
        (`_Waker`): PostgreSQL serialises the commits of transactions that NOTIFY (a
        database-wide lock held across the WAL flush), so producers in many processes cannot
        share its group commit otherwise. It costs a second transaction per enqueue and a
        hop more before workers hear of it, which is why it is not the default. A caller's
        `conn` keeps its wake-ups in its transaction (delivered at its commit), and so does
        a session behind a transaction pooler (where no one can LISTEN)."""
        if conn is not None or self.pool_mode == "transaction" or not self.wake_after_commit:
            return self.tx(conn, single=single)
        return self._deferring(single)

    def defers_wake(self, cur: Any) -> bool:
        return cur in self._deferred

    @contextmanager
    def _deferring(self, single: bool) -> Iterator[Any]:
        """`tx` on offload's own durable connection, collecting the wake-ups asked for in it
        (`wake`), sent once it committed."""
        import psycopg

        sent = False  # as in `tx`
        try:
            with self.connections.connection(self._durable) as own, own.cursor() as cur:
                queues = self._deferred[cur] = set()
                try:
                    if single:
                        sent = True
                        yield cur
                    else:
                        with own.transaction():
                            yield cur
                            sent = True
                finally:
                    del self._deferred[cur]
                if queues:  # committed: on `own`, idle again, if the waker has no session
                    self._waker.send(queues, own)
        except psycopg.Error as exc:
            raise self._error(exc, sent=sent) from None

    def _error(self, exc: Exception, *, sent: bool = False) -> BackendError:
        """Classify by SQLSTATE: the server gone or refusing connections is unavailability
        (a lost connection after a write was sent: an unknown outcome); a refused login or
        a missing database will not pass by waiting; a deadlock or a serialization failure
        passes by trying again (transient, so workers retry rather than stop); anything else
        (a constraint, a bad statement) is an error of the operation. An error without
        SQLSTATE comes from the client's side of a lost connection."""
        code = getattr(exc, "sqlstate", None)
        text = f"{self.location}: {one_line(exc)}"
        if code in _POOLER_CODES and self.pool_mode != "transaction":
            return BackendUnavailable(
                f"{text}; the server looks like a pooler in transaction mode (PgBouncer "
                "pool_mode=transaction): add pool_mode=transaction to the URL",
                transient=False,
            )
        if code is not None and code[:2] in _REFUSED_CLASSES:  # e.g. the role was dropped
            return BackendUnavailable(text, transient=False)
        if code in _CONFLICT_CODES:  # rolled back whole, even after the statement was sent
            text += " (the transaction was rolled back, nothing of it stored: trying again is safe)"
        if (
            code is None
            or code[:2] in _UNAVAILABLE_CLASSES
            or code in _UNAVAILABLE_CODES
            or code in _CONFLICT_CODES
        ):
            if sent and (code is None or code[:2] == "08"):
                return OutcomeUnknown(
                    f"{text} (the connection broke before the commit was confirmed: the "
                    "write may or may not be stored)",
                    "write",
                )
            if code == "53100":
                return StorageFull(text, self.location)
            return BackendUnavailable(text)
        return self._moved(exc) if code == _MOVED_CODE else BackendError(text)

    def _moved(self, exc: Exception) -> QueueMoved:
        """The fence trigger's refusal (schema 15): its detail is JSON {queue, shard}."""
        moved = orjson.loads(exc.diag.message_detail or "{}")  # type: ignore[attr-defined]
        return QueueMoved(str(moved.get("queue")), str(moved.get("shard")), self.location)

    def read(self) -> AbstractContextManager[Any]:
        return self._reader()

    @contextmanager
    def _reader(self) -> Iterator[Any]:
        import psycopg

        try:
            with self.connections.connection(self._durable) as own, own.cursor() as cur:
                yield cur
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def time_param(self, value: datetime | None) -> Any:
        return value

    def time(self, value: Any) -> datetime:
        if not isinstance(value, datetime):
            raise BackendError(f"expected a timestamp from the database, got {value!r}")
        return value.astimezone(UTC)

    def apply_migration(self, version: int, sql: str) -> None:
        q = self.q["schema"]
        with self.tx() as cur:
            cur.execute(q["lock"])
            cur.execute(q["exists"])
            if cur.fetchone() is not None:
                cur.execute(q["version"])
                if (cur.fetchone()[0] or 0) >= version:
                    return  # another process got here first
            cur.execute(sql.encode())
            cur.execute(q["record"], {"version": version})

    def storable_json(self, text: str) -> str:
        """jsonb cannot hold a NUL character: error texts (a traceback quoting a binary
        value) get it written as the two characters backslash zero instead."""
        if "\\u0000" not in text:
            return text
        return orjson.dumps(_without_nul(orjson.loads(text))).decode()

    def wake(self, cur: Any, queues: Collection[str], *, inserted: bool = False) -> None:
        """NOTIFY in `cur`'s transaction (delivered at commit; in autocommit, right after the
        statement committed). Inserts need nothing: each insert query NOTIFYs in its own
        statement (jobs.sql), whoever runs it, so an enqueue pays no second round trip. The
        other operations that make jobs available (release, rescue, retry, a cancel) are
        rare enough to pay it. In an enqueue whose wake-ups follow its commit (`enqueuing`)
        they are collected instead."""
        deferred = self._deferred.get(cur)
        if deferred is not None:
            deferred.update(queues)
        elif not inserted:
            cur.connection.execute(self.q["connector"]["wake"], {"queues": sorted(queues)})

    def listener(self) -> Listener:
        return self._listen(CHANNEL)

    def event_listener(self) -> Listener:
        """LISTEN on the channel that statements which wrote events NOTIFY (`wake_events`),
        delivered at their transaction's commit."""
        return self._listen(EVENTS_CHANNEL)

    def _listen(self, channel: str) -> Listener:
        """A LISTEN connection of its own on `channel` (never readable behind a
        transaction pooler, where LISTEN cannot work)."""
        import psycopg

        if self.pool_mode == "transaction":
            return PollOnly()

        conn = self.connections.dial(autocommit=True)
        try:
            return PgListener(conn, self.location, channel)
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        self._waker.close()
        self.connections.close()
