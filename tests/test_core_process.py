"""`offload.core.process`: the process id without a system call, right after a fork, and
the locks of the SQLite backend and of the group-commit combiner fresh in a forked child."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import offload
from offload.backends.group import ThreadGroups
from offload.backends.postgres.connections import Connections, Kind
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


def _in_child(body: Callable[[], bool]) -> bool:
    """Fork; run `body` in the child (killed by SIGALRM after 10 s if it hangs); its answer."""
    read, write = os.pipe()
    with warnings.catch_warnings():  # forking a process with threads: what the test is for
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
    if child == 0:
        os.close(read)
        signal.alarm(10)
        try:
            ok = body()
        except BaseException:
            ok = False
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        got = answer.read()
    _, status = os.waitpid(child, 0)
    assert os.WIFEXITED(status), f"the child hung (killed by signal {os.WTERMSIG(status)})"
    return got == b"1"


def _holding(lock: Any, body: Callable[[], bool]) -> bool:
    """`_in_child(body)` while a thread of this process holds `lock`, as a running send,
    watch or statement holds it at the moment some other thread forks."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    try:
        return _in_child(body)
    finally:
        release.set()
        holder.join()


def test_a_child_forked_while_another_thread_writes_to_sqlite_can_enqueue(
    tmp_path: Path,
) -> None:
    """The SQLite backend's lock, held by the parent's writing thread at the fork, is a
    fresh one in the child: its first enqueue goes through instead of waiting forever."""
    app = offload.App(f"sqlite:///{tmp_path / 'jobs.db'}")

    @app.task(name="echo")
    def echo(n: int) -> None: ...

    app.migrate()
    backend: Any = app.backend
    try:  # the lock as tx() holds it, from BEGIN IMMEDIATE to COMMIT
        assert _holding(backend._lock, lambda: echo.enqueue(1).id > 0)
    finally:
        app.close()


def test_a_child_forked_while_a_thread_waits_in_a_group_commit_line_starts_a_fresh_line() -> None:
    """A combiner whose lock and line belonged to the parent's threads is fresh in the
    child: a call there is written, not queued behind a writer that does not exist."""
    writing, release = threading.Event(), threading.Event()

    def alone(n: int) -> int:
        if n == 0:
            writing.set()
            release.wait(20)
        return n * 10

    groups: ThreadGroups[int, int] = ThreadGroups(alone, lambda ns: [n * 10 for n in ns])
    writer = threading.Thread(target=groups.submit, args=(0,))
    writer.start()
    writing.wait()
    try:
        assert _in_child(lambda: groups.submit(7) == 70)
    finally:
        release.set()
        writer.join()


def test_a_child_forked_while_the_wake_up_sender_or_the_commit_watch_is_busy_can_enqueue(
    tmp_path: Path,
) -> None:
    """The SQLite backend's wake-up sender (every enqueue sends) and its commit watch (a
    transactional enqueue's) are fresh in a child: its enqueues go through."""
    path = tmp_path / "jobs.db"
    app = offload.App(f"sqlite:///{path}")

    @app.task(name="echo")
    def echo(n: int) -> None: ...

    app.migrate()
    backend: Any = app.backend

    def in_transaction() -> bool:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN")
        job = echo.options(conn=conn).enqueue(2)
        conn.execute("COMMIT")
        return job.id > 0

    try:
        assert _holding(backend._wake._lock, lambda: echo.enqueue(1).id > 0)
        assert _holding(backend._watch._cond, in_transaction)
    finally:
        app.close()


def test_a_child_forked_while_a_postgres_pool_is_busy_reaches_its_own_connect() -> None:
    """The PostgreSQL pool's lock, held by a parent's statement or watchdog at the fork, is
    fresh in the child: its first statement dials (here a port nobody listens on, so the
    dial is refused) instead of waiting forever."""
    pool = Connections(
        "postgresql://nobody@127.0.0.1:1/x", "127.0.0.1:1", limit=2, connect_timeout=1, wait=1
    )
    kind = Kind("durable", lambda conn: None, 10.0)

    def take() -> bool:
        try:
            with pool.connection(kind):
                return False
        except offload.OffloadError:
            return True  # refused: it got as far as dialling

    assert _holding(pool._lock, take)
