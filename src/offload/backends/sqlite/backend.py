"""SQLite backend: the zero set-up default.

One connection per process (reopened after fork), WAL journal, `synchronous=FULL` unless the
URL asks for `normal`, and `BEGIN IMMEDIATE` for every write so that concurrent writers wait
on the busy timeout instead of failing with "database is locked".
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from offload.backends.base import Listener
from offload.backends.sql.columns import JOB_COLUMNS, WORKER_COLUMNS
from offload.backends.sql.connector import SqlBackend
from offload.backends.sqlite.wake import CommitWatch, DataVersionSignal, WakeSender, WakeSocket
from offload.core import process
from offload.core.containment import args_match
from offload.core.errors import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    StorageFull,
    ValidationError,
)
from offload.core.times import from_epoch

NOW = "((julianday('now') - 2440587.5) * 86400.0)"
MIN_SQLITE = (3, 38, 0)  # the ->> JSON operator
_SYNC_MODES = {"full": "FULL", "normal": "NORMAL", "extra": "EXTRA"}
#: The state predicates of the jobs' partial indexes (schema 19), as comparisons: SQLite
#: builds a temporary b-tree for an `IN (...)` list each time it tests a row. A query uses a
#: partial index only if its WHERE holds each term of the index's, matched structurally, so
#: the queries spell them with these (tests/conformance/test_job_indexes.py checks both).
STATE_PREDICATES = {
    # offload_jobs_claim, _limited, _group and _group_due: jobs not started yet
    "queued_states": "(state = 'available' OR state = 'scheduled' OR state = 'retrying')",
    # offload_jobs_finished: jobs a prune deletes
    "finished_states": "(state = 'succeeded' OR state = 'dead' OR state = 'cancelled')",
    # offload_jobs_replace: jobs a successor supersedes
    "live_states": "(state = 'waiting' OR state = 'scheduled' OR state = 'available'"
    " OR state = 'retrying' OR state = 'shed' OR state = 'running')",
    # offload_jobs_state: every state but the two with an index of their own (two terms)
    "rare_states": "state <> 'available' AND state <> 'running'",
}
#: Where an insert numbers its jobs / events from while a delete's mark is live (schema 22):
#: after the larger of the mark and the table's newest row; NULL with no mark, and SQLite
#: numbers each row itself, the newest plus one (cheaper than a number given per row).
MARKED = (
    "(SELECT max(h.{mark}, coalesce((SELECT max({key}) FROM offload_{mark}), 0))"
    " FROM offload_high_water AS h WHERE h.{mark} > 0)"
)
_MACROS = {
    "now": NOW,
    "job_mark": MARKED.format(key="id", mark="jobs"),
    "event_mark": MARKED.format(key="position", mark="events"),
    "at": f"coalesce(:now, {NOW})",
    "job_columns": JOB_COLUMNS,
    "worker_columns": WORKER_COLUMNS,
    **STATE_PREDICATES,
}
#: Result codes (sqlite3.Error.sqlite_errorcode & 0xff) of a file that cannot serve at all
#: until someone fixes it: read-only, corrupt, cannot open, not a database.
_BROKEN = frozenset({8, 11, 14, 26})
#: Result codes that may pass by themselves: busy past the busy timeout, locked, I/O error.
_PASSING = frozenset({5, 6, 10})
_FULL = 13
# Result codes worth a sentence of their own.
_CAUSES = {
    8: "the file or its directory is read-only",
    11: "the database file is corrupt",
    10: "a disk I/O error",
    13: "the disk or the database size limit is full",
    14: "cannot open the file (missing directory or no permission)",
    26: "the file is not a SQLite database",
}


def parse_sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    """`sqlite:///rel/path.db` or `sqlite:////abs/path.db` -> (path, options)."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc or not parts.path.startswith("/"):
        raise ConfigurationError(
            f"malformed SQLite URL {url!r}: expected sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db"
        )
    path = parts.path[1:]
    if not path:
        raise ConfigurationError(f"malformed SQLite URL {url!r}: no file path")
    return path, dict(parse_qsl(parts.query))


class SQLiteBackend(SqlBackend):
    """Jobs in one SQLite file, shared safely by any number of local processes."""

    name: ClassVar[str] = "sqlite"
    package: ClassVar[str] = "offload.backends.sqlite"
    parallel_writes: ClassVar[bool] = False
    clock_per_statement: ClassVar[bool] = True

    def __init__(self, url: str) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise ConfigurationError(
                f"SQLite {sqlite3.sqlite_version} is too old; offload needs 3.38 or newer"
            )
        self.path, options = parse_sqlite_url(url)
        self.location = self.path
        sync = options.pop("synchronous", "full").lower()
        if sync not in _SYNC_MODES:
            raise ConfigurationError(
                f"synchronous={sync!r} in {url!r}: use one of {', '.join(_SYNC_MODES)}"
            )
        self.synchronous = _SYNC_MODES[sync]
        try:
            self.busy_timeout_ms = int(float(options.pop("busy_timeout", "60")) * 1000)
        except ValueError:
            raise ConfigurationError(f"busy_timeout in {url!r} must be seconds") from None
        #: A cap on the file's size (MiB), beyond which writes fail with StorageFull.
        self.max_size_mb: float | None = None
        if "max_size_mb" in options:
            try:
                self.max_size_mb = float(options.pop("max_size_mb"))
            except ValueError:
                raise ConfigurationError(f"max_size_mb in {url!r} must be a number") from None
            if not 0 < self.max_size_mb < 2**40:
                raise ConfigurationError(f"max_size_mb in {url!r} must be positive")
        if options:
            raise ConfigurationError(f"unknown SQLite URL option(s): {', '.join(options)}")
        super().__init__(_MACROS, pyformat=False)
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._pid = 0
        self._sync = self.synchronous  # the mode in force on the connection
        self._wake = WakeSender(self._wake_addresses)
        self._watch = CommitWatch(self._wake.send)
        process.reset_after_fork(self)

    def forked(self) -> None:
        """In a child after a fork: a lock the parent's writing thread held stays free
        (`_conn` then opens the child's own connection); likewise the wake-up sender's
        and the commit watch's."""
        self._lock = threading.RLock()
        self._wake.forked()
        self._watch.forked()

    # -- connection -----------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """This process's connection, opened on first use (and again after a fork)."""
        if self._db is None or self._pid != process.pid:
            self._db = self._open()
            self._pid = process.pid
        return self._db

    def _open(self) -> sqlite3.Connection:
        if not os.path.isdir(os.path.dirname(os.path.abspath(self.path))):
            raise BackendUnavailable(f"{self.path}: cannot open: its directory does not exist")
        try:
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            db.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                db.execute("PRAGMA journal_mode = WAL")
            db.execute(f"PRAGMA synchronous = {self.synchronous}")
            self._sync = self.synchronous
            db.execute("PRAGMA foreign_keys = ON")
            # The args_contains filter (jobs.sql `matching`): jsonb containment in Python.
            db.create_function("offload_args_match", 3, args_match, deterministic=True)
            if self.max_size_mb is not None:
                page = db.execute("PRAGMA page_size").fetchone()[0]
                db.execute(f"PRAGMA max_page_count = {int(self.max_size_mb * 2**20 // page)}")
            # Every insert and state change builds small ephemeral tables (RETURNING, and
            # each IN list of 3+ states: the CHECK, the claim and finished indexes). Kept as
            # temp files, each took an 87 KB page-cache block that glibc could hand back to
            # the kernel and fault in again on every statement (10 page faults per enqueue).
            db.execute("PRAGMA temp_store = MEMORY")
        except sqlite3.Error as exc:
            db.close()  # now, not at garbage collection: its file stays open until then
            raise self._error(exc) from None
        return db

    def _error(self, exc: sqlite3.Error) -> BackendError:
        """One line naming the file and the cause, instead of a bare sqlite3 message."""
        code = getattr(exc, "sqlite_errorcode", None)
        cause = _CAUSES.get(code & 0xFF) if isinstance(code, int) else None
        text = f"{self.path}: {cause} ({exc})" if cause else f"{self.path}: {exc}"
        primary = code & 0xFF if isinstance(code, int) else None
        if primary == _FULL:
            return StorageFull(f"{text}{self._size_limit()}", self.path)
        if primary in _PASSING:
            return BackendUnavailable(text)
        if primary in _BROKEN:
            return BackendUnavailable(text, transient=False)
        return BackendError(text)

    def _size_limit(self) -> str:
        """The size limit a full database reached, when one is set below SQLite's own."""
        db = self._db
        if db is None:
            return ""
        try:
            pages = db.execute("PRAGMA max_page_count").fetchone()[0]
            size = db.execute("PRAGMA page_size").fetchone()[0]
        except sqlite3.Error:
            return ""
        if pages >= 1073741823:  # SQLite's default (or more): no limit but the disk's
            return ""
        return f"; limit max_page_count={pages} ({pages * size} bytes)"

    @contextmanager
    def tx(self, conn: Any = None, *, single: bool = False, relaxed: bool = False) -> Iterator[Any]:
        if conn is not None:  # the caller's own connection and transaction
            if not isinstance(conn, sqlite3.Connection):
                raise ConfigurationError(
                    f"conn must be a sqlite3.Connection for the SQLite backend, got {conn!r}"
                )
            # Autocommit the legacy way (isolation_level None) or PEP 249's (Python 3.12's
            # `autocommit=True`, which leaves isolation_level as it was).
            autocommit = conn.isolation_level is None or getattr(conn, "autocommit", None) is True
            if autocommit and not conn.in_transaction:
                raise ValidationError(
                    "conn is in autocommit mode with no transaction open, so each statement would "
                    "commit alone: open one (BEGIN) or turn autocommit off"
                )
            theirs = conn.cursor(_Cursor)
            try:
                yield theirs
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            if theirs.woke:  # the jobs become visible when the caller commits
                self._watch.after_commit(conn)
            return
        with self._lock:
            db = self._conn()
            try:
                sync = "NORMAL" if relaxed else self.synchronous
                if sync != self._sync:  # WAL + NORMAL: the commit is not synced on its own
                    db.execute(f"PRAGMA synchronous = {sync}")
                    self._sync = sync
                db.execute("BEGIN IMMEDIATE")
                cur = db.cursor(_Cursor)
                try:
                    yield cur
                except BaseException:
                    self._roll_back(db)
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._roll_back(db)
                raise self._error(exc) from None
        if cur.woke:  # committed: the jobs are visible now
            self._wake.send()

    def _roll_back(self, db: sqlite3.Connection) -> None:
        """End a failed transaction if SQLite has not already (a full disk or an I/O error
        may roll it back by itself); a connection that cannot even roll back is dropped, so
        the next operation starts on a fresh one."""
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
        except sqlite3.Error:
            db.close()
            self._db = None

    @contextmanager
    def read(self) -> Iterator[Any]:
        with self._lock:
            try:
                yield self._conn().cursor()
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    def inserted_id(self, cur: Any) -> int:
        """The cursor's rowid: SQLite's single inserts have no RETURNING (see jobs.sql)."""
        return int(cur.lastrowid) if cur.rowcount > 0 else 0

    def inserted_ids(self, cur: Any, count: int) -> list[int]:
        """The ids insert_many gave (see jobs.sql): the `count` up to the cursor's rowid, its
        last job's (a trigger's insert does not change it)."""
        if cur.rowcount <= 0:
            return []
        last = int(cur.lastrowid)
        return list(range(last - count + 1, last + 1))

    def time_param(self, value: datetime | None) -> Any:
        return None if value is None else value.timestamp()

    def time(self, value: Any) -> datetime:
        return from_epoch(float(value))  # clamped: see core.times

    # -- schema ---------------------------------------------------------------------

    def apply_migration(self, version: int, sql: str) -> None:
        # Foreign keys off (SQLite allows it only outside a transaction): a table rebuild's
        # DROP TABLE would otherwise delete, cascade into or block a user's own rows that
        # reference offload's tables. They are checked before the commit instead.
        with self._lock:
            self._conn().execute("PRAGMA foreign_keys = OFF")
        try:
            self._migrate(version, sql)
        finally:
            with self._lock:
                self._conn().execute("PRAGMA foreign_keys = ON")

    def _migrate(self, version: int, sql: str) -> None:
        q = self.q["schema"]
        with self.tx() as cur:
            cur.execute(q["exists"])
            if cur.fetchone() is not None:
                cur.execute(q["version"])
                if (cur.fetchone()[0] or 0) >= version:
                    return  # another process got here first
            # Only what the script broke: a user's own tables may hold dangling references
            # already (sqlite3 leaves foreign keys off by default), or a reference SQLite
            # cannot check; neither is the migration's to refuse.
            before = _broken_references(cur)
            for statement in _statements(sql):
                cur.execute(statement)
            broken = _broken_references(cur) - before
            if broken:
                table, parent, _ = sorted(broken, key=str)[0]
                raise BackendError(
                    f"migration {version} would leave a row of {table} whose foreign key "
                    f"names no row of {parent}; nothing was changed"
                )
            cur.execute(q["record"], {"version": version})

    # -- wake-ups -------------------------------------------------------------------

    def wake(self, cur: Any, queues: Collection[str], *, inserted: bool = False) -> None:
        """Marks the transaction: its datagrams go out once its commit is visible. They carry
        no queue name: every worker looks, as a wake-up is only a hint."""
        cur.woke = True

    def _wake_addresses(self) -> list[str]:
        with self.read() as cur:
            cur.execute(self.q["connector"]["wake_addresses"])
            return [row[0] for row in cur.fetchall()]

    def listener(self) -> Listener:
        return WakeSocket()

    def event_listener(self) -> Listener:
        """A `PRAGMA data_version` watch (see `DataVersionSignal`): no writer pays for it."""
        try:
            return DataVersionSignal(self.path)
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def limit_connections(self, limit: int) -> None:
        """Nothing to limit: one connection per process, shared under a lock."""

    def close(self) -> None:
        self._watch.close()  # first, and outside the lock: its thread may be reading addresses
        with self._lock:
            if self._db is not None and self._pid == process.pid:
                self._db.close()
            self._db = None
        self._wake.close()


def _broken_references(cur: sqlite3.Cursor) -> set[tuple[str, str, int | None]]:
    """Every row whose foreign key names no row (`PRAGMA foreign_key_check`): its table,
    the table it references and its rowid; none where SQLite cannot check a reference (a
    key on columns without a unique index: "foreign key mismatch")."""
    try:
        cur.execute("PRAGMA foreign_key_check")
    except sqlite3.DatabaseError:
        return set()
    return {(str(table), str(parent), rowid) for table, rowid, parent, _ in cur.fetchall()}


class _Cursor(sqlite3.Cursor):
    """A cursor that remembers whether its transaction made jobs available."""

    woke = False


def _statements(script: str) -> Iterator[str]:
    """Split a migration script into complete statements."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not buffer.strip():
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""
    if buffer.strip():
        yield buffer.strip()
