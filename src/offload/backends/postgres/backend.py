"""PostgreSQL backend, for many worker hosts and transactional enqueue.

Needs the `postgres` extra (psycopg 3 and psycopg-pool), imported with the first connection:
a worker's fork server and job processes load the app, and with it this module, but never
connect unless a task enqueues, so they start without psycopg (about 80 ms of imports).
Connections come from a pool opened on first use; a dedicated connection per worker LISTENs
for wake-ups, with the worker's poll timer behind it because NOTIFY is only a hint.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import orjson

from offload.backends import redact
from offload.backends.base import Listener
from offload.backends.sql.columns import JOB_COLUMNS, WORKER_COLUMNS
from offload.backends.sql.connector import SqlBackend
from offload.core.errors import BackendError, BackendUnavailable, ConfigurationError
from offload.core.times import TOO_EARLY, TOO_LATE

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

CHANNEL = "offload_jobs"
_MACROS = {
    "at": "coalesce(:now::timestamptz, now())",
    "job_columns": JOB_COLUMNS,
    "job_columns_j": ", ".join("j." + c.strip() for c in JOB_COLUMNS.split(",")),
    "worker_columns": WORKER_COLUMNS,
}
#: SQLSTATE classes and codes that mean the server cannot be reached or is going away:
#: connection exceptions, admin/crash shutdown, cannot connect now, too many connections.
_UNAVAILABLE_CLASSES = ("08", "53")
_UNAVAILABLE_CODES = frozenset({"57P01", "57P02", "57P03"})


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


def _relaxed_options(url: str) -> str:
    """Startup options of a bookkeeping session: the URL's own (or $PGOPTIONS, which an
    explicit value would otherwise replace), then synchronous_commit=off."""
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(url).get("options") or os.environ.get("PGOPTIONS", "")
    return f"{given} -c synchronous_commit=off".strip()


class PgListener:
    """A LISTEN connection; its socket is readable when a NOTIFY arrived."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.address: str | None = None
        self.conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        self.conn.execute(f"LISTEN {CHANNEL}")

    def fileno(self) -> int:
        return self.conn.pgconn.socket

    def drain(self) -> None:
        """Discard the notifications received (libpq directly: the wake-up path of an idle
        worker, where `Connection.notifies` costs tens of microseconds)."""
        pgconn = self.conn.pgconn
        pgconn.consume_input()
        while pgconn.notifies() is not None:
            pass

    def close(self) -> None:
        self.conn.close()


class PostgresBackend(SqlBackend):
    """Jobs in PostgreSQL tables, shared by any number of hosts."""

    name: ClassVar[str] = "postgresql"
    package: ClassVar[str] = "offload.backends.postgres"
    parallel_writes: ClassVar[bool] = True

    def __init__(self, url: str, pool_size: int = 10) -> None:
        try:
            parts = urlsplit(url)
        except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 host
            raise ConfigurationError(f"malformed PostgreSQL URL {redact(url)!r}: {exc}") from None
        if parts.scheme not in ("postgresql", "postgres") or not (parts.netloc or parts.query):
            raise ConfigurationError(
                f"malformed PostgreSQL URL {redact(url)!r}: expected postgresql://user@host/db"
            )
        if find_spec("psycopg") is None or find_spec("psycopg_pool") is None:
            raise ConfigurationError(
                "the PostgreSQL backend needs the postgres extra: pip install 'offload[postgres]'"
            )
        self.url = url
        self.location = redact(url)
        self.pool_size = pool_size
        super().__init__(_MACROS, pyformat=True)
        # Durable commits, and (opened by workers only) commits that do not wait for the
        # WAL flush: synchronous_commit=off for a worker's bookkeeping, see SqlBackend.tx.
        self._pools: dict[bool, psycopg_pool.ConnectionPool[Any]] = {}
        self._lock = threading.Lock()

    def _get_pool(self, relaxed: bool = False) -> psycopg_pool.ConnectionPool[Any]:
        pool = self._pools.get(relaxed)
        if pool is not None:
            return pool
        import psycopg_pool

        with self._lock:
            if relaxed not in self._pools:
                if not self._pools:
                    self._check_reachable()
                self._pools[relaxed] = psycopg_pool.ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self.pool_size,
                    configure=_configure if relaxed else _configure_tolerant,
                    kwargs={"options": _relaxed_options(self.url)} if relaxed else None,
                    timeout=30,
                    open=True,
                )
            return self._pools[relaxed]

    def _check_reachable(self) -> None:
        """Fail fast with one line, instead of a pool that retries in the background."""
        import psycopg

        try:
            psycopg.connect(self.url, connect_timeout=10).close()
        except psycopg.Error as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            reason = "; ".join(lines) or type(exc).__name__
            raise BackendUnavailable(f"cannot connect to {self.location}: {reason}") from None

    @contextmanager
    def tx(self, conn: Any = None, *, single: bool = False, relaxed: bool = False) -> Iterator[Any]:
        import psycopg  # a dictionary lookup once the first connection has loaded it

        if conn is not None:  # the caller's connection: its transaction decides
            if not isinstance(conn, psycopg.Connection):
                raise ConfigurationError(
                    f"conn must be a psycopg.Connection for the PostgreSQL backend, got {conn!r}"
                )
            try:
                with conn.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                raise self._error(exc) from None
            return
        try:
            with self._get_pool(relaxed).connection() as own:
                if single:  # autocommit: the statement is its own transaction
                    with own.cursor() as cur:
                        yield cur
                else:
                    with own.transaction(), own.cursor() as cur:
                        yield cur
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def _error(self, exc: Exception) -> BackendError:
        """Classify by SQLSTATE: the server gone or refusing connections is unavailability;
        anything else (a constraint, a bad statement) is an error of the operation. An error
        without SQLSTATE comes from the client's side of a lost connection."""
        code = getattr(exc, "sqlstate", None)
        text = f"{self.location}: {exc}"
        if code is None or code[:2] in _UNAVAILABLE_CLASSES or code in _UNAVAILABLE_CODES:
            return BackendUnavailable(text)
        return BackendError(text)

    def read(self) -> AbstractContextManager[Any]:
        return self._reader()

    @contextmanager
    def _reader(self) -> Iterator[Any]:
        import psycopg

        try:
            with self._get_pool().connection() as own, own.cursor() as cur:
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
        rare enough to pay it."""
        if not inserted:
            cur.connection.execute(self.q["connector"]["wake"], {"queues": sorted(queues)})

    def listener(self) -> Listener:
        import psycopg

        try:
            return PgListener(self.url)
        except psycopg.Error as exc:
            raise BackendUnavailable(f"cannot connect to {self.location}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()
