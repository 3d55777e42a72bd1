"""PostgreSQL: an enqueue on offload's own connection NOTIFYs nothing in its transaction
(PostgreSQL serialises the commits of transactions that NOTIFY, so producers in many
processes could not share a group commit); its wake-ups, the queue's and the event
listeners', follow in a second transaction once the commit is durable. A wake-up lost after
the commit never fails the enqueue: the jobs are stored, and workers also poll."""

from __future__ import annotations

import itertools
import logging
import os
import resource
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

import offload
from offload.backends.params import JobInsertParams
from offload.backends.postgres import backend as pg_backend
from offload.backends.postgres.connections import Connections, usable
from offload.core.job import JobSpec, Payload

#: The notifications of one enqueue: its queue's workers, and the event listeners.
WOKEN = {("offload_jobs", "default"), ("offload_events", "")}
_keys = itertools.count()


def after_commit(url: str) -> str:
    """`url` with offload's `wake=after_commit`: the mode these tests are about."""
    return url + ("&" if "?" in url else "?") + "wake=after_commit"


@pytest.fixture
def pg_app(pg_url: str) -> Iterator[offload.App]:
    application = offload.App(after_commit(pg_url))
    application.migrate()
    yield application
    application.close()


@pytest.fixture
def echo(pg_app: offload.App) -> offload.Task[[int], None]:
    @pg_app.task(name="echo")
    def echo(n: int) -> None:
        """Nothing to run: the tests only enqueue."""

    return echo


@pytest.fixture
def heard(pg_url: str) -> Iterator[Callable[[float], set[tuple[str, str]]]]:
    """A session LISTENing on both channels; calling it returns what arrived within the
    given seconds (stopping once both wake-ups came)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("LISTEN offload_jobs")
        conn.execute("LISTEN offload_events")

        def heard(timeout: float) -> set[tuple[str, str]]:
            got = conn.notifies(timeout=timeout, stop_after=len(WOKEN))
            return {(n.channel, n.payload) for n in got}

        yield heard


def _one(app: offload.App, echo: offload.Task[[int], None]) -> list[int]:
    return [echo.enqueue(1).id]


def _many(app: offload.App, echo: offload.Task[[int], None]) -> list[int]:
    return [handle.id for handle in echo.enqueue_many([(n,) for n in range(3)])]


def _keyed(app: offload.App, echo: offload.Task[[int], None]) -> list[int]:
    """Jobs with keys take a transaction of several statements (a new key: a held one
    would store nothing and wake nobody)."""
    return [echo.options(idempotency_key=f"k{next(_keys)}").enqueue(1).id]


def _group(app: offload.App, echo: offload.Task[[int], None]) -> list[int]:
    """The transaction concurrent callers share (`SqlJobs.insert_group`)."""
    spec = JobSpec(task="echo", queue="default")
    group = [JobInsertParams(spec, [Payload(args=f"[{n}]")]) for n in range(3)]
    ids: list[int] = []
    for outcome in app.backend.jobs.insert_group(group):
        assert not isinstance(outcome, Exception)
        ids += outcome.ids
    return ids


WAYS = [_one, _many, _keyed, _group]


@pytest.mark.parametrize("enqueue", WAYS, ids=lambda way: way.__name__.strip("_"))
def test_an_enqueue_wakes_workers_and_event_listeners(
    pg_app: offload.App,
    echo: offload.Task[[int], None],
    heard: Callable[[float], set[tuple[str, str]]],
    enqueue: Callable[[offload.App, offload.Task[[int], None]], list[int]],
) -> None:
    assert enqueue(pg_app, echo)
    assert heard(5.0) == WOKEN


@pytest.mark.parametrize("enqueue", WAYS, ids=lambda way: way.__name__.strip("_"))
def test_by_default_an_enqueue_wakes_in_its_own_transaction_and_opens_no_waker(
    pg_url: str,
    heard: Callable[[float], set[tuple[str, str]]],
    enqueue: Callable[[offload.App, offload.Task[[int], None]], list[int]],
) -> None:
    """Without `wake=after_commit` the wake-ups are delivered with the enqueue's commit: no
    second transaction, no session more."""
    app = offload.App(pg_url)
    app.migrate()
    try:

        @app.task(name="echo")
        def echo(n: int) -> None:
            """Nothing to run: the test only enqueues."""

        assert enqueue(app, echo)
        assert heard(5.0) == WOKEN
        backend: Any = app.backend
        assert not backend.wake_after_commit and backend._waker.conn is None
    finally:
        app.close()


def test_an_unknown_wake_mode_is_refused_naming_it(pg_url: str) -> None:
    url = pg_url + ("&" if "?" in pg_url else "?") + "wake=later"
    with pytest.raises(
        offload.ConfigurationError, match=r"wake='later' in .*in_commit, after_commit"
    ):
        offload.App(url).check()


@pytest.mark.parametrize("enqueue", WAYS, ids=lambda way: way.__name__.strip("_"))
def test_a_failed_wake_up_after_the_commit_still_returns_the_stored_ids(
    pg_app: offload.App,
    echo: offload.Task[[int], None],
    heard: Callable[[float], set[tuple[str, str]]],
    enqueue: Callable[[offload.App, offload.Task[[int], None]], list[int]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend: Any = pg_app.backend
    # A waker of its own whose statement fails (the app's own is back once undone).
    monkeypatch.setattr(
        backend, "_waker", pg_backend._Waker(backend.connections, b"SELECT 1/0, $1::json")
    )
    with caplog.at_level(logging.DEBUG, logger="offload.postgres"):
        ids = enqueue(pg_app, echo)
        backend._waker.close()  # reads the wake-up's result: its failure is logged
    assert ids
    assert [backend.jobs.get(job_id).id for job_id in ids] == ids  # stored
    assert "a wake-up lost: ERROR:  division by zero" in caplog.text
    # Nothing at all: the enqueue's own transaction (its statement, which writes the events)
    # NOTIFYed nothing, so that its commit held no NOTIFY lock while waiting for the disk.
    assert heard(0.5) == set()
    # The connection serves the next enqueue, whose wake-ups arrive.
    monkeypatch.undo()
    enqueue(pg_app, echo)
    assert heard(5.0) == WOKEN


def test_an_enqueue_on_the_callers_connection_wakes_at_its_commit(
    pg_app: offload.App,
    echo: offload.Task[[int], None],
    heard: Callable[[float], set[tuple[str, str]]],
    pg_url: str,
) -> None:
    with psycopg.connect(pg_url) as conn:
        echo.options(conn=conn).enqueue(1)
        assert heard(0.3) == set()
        conn.commit()
        assert heard(5.0) == WOKEN


def test_a_refused_enqueue_rolls_back_and_the_connection_serves_again(
    pg_app: offload.App,
    echo: offload.Task[[int], None],
    heard: Callable[[float], set[tuple[str, str]]],
) -> None:
    backend: Any = pg_app.backend
    spec = JobSpec(task="echo", queue="default")
    with pytest.raises(offload.BackendError):  # args the json column refuses
        backend.jobs.insert(JobInsertParams(spec, [Payload(args="[not json")]))
    assert heard(0.3) == set()
    assert _one(pg_app, echo)
    assert heard(5.0) == WOKEN
    assert backend.connections._open == 1  # the same connection: rolled back, kept


@pytest.fixture
def high_fds() -> Iterator[None]:
    """Descriptors taken until the next one opened is 1024 or above (a busy server's
    process), which `select.select` refuses."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    taken = [os.open(os.devnull, os.O_RDONLY)]
    while taken[-1] < 1100:
        taken.append(os.open(os.devnull, os.O_RDONLY))
    for fd in taken[-60:]:  # free ones above 1024 for the sessions to come
        os.close(fd)
    del taken[-60:]
    try:
        yield
    finally:
        for fd in taken:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("high_fds")
def test_a_waker_on_a_descriptor_above_1024_sends_and_closes(
    pg_app: offload.App,
    echo: offload.Task[[int], None],
    heard: Callable[[float], set[tuple[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
    pg_url: str,
) -> None:
    backend: Any = pg_app.backend
    # A wake-up that takes a while to answer: the next send, and close(), wait for it.
    slow = pg_backend._Waker(backend.connections, b"SELECT pg_sleep(0.2), $1::json")
    monkeypatch.setattr(backend, "_waker", slow)
    ids = _one(pg_app, echo) + _one(pg_app, echo)
    assert slow.conn is not None and slow.conn.pgconn.socket >= 1024
    assert len(ids) == 2
    _one(pg_app, echo)
    slow.close()  # waits for the last answer: does not raise
    monkeypatch.undo()
    _one(pg_app, echo)
    assert backend._waker.conn.pgconn.socket >= 1024
    assert heard(5.0) == WOKEN
    pg_app.close()  # does not raise
    # An idle connection on such a descriptor is usable (select refused it: never reused).
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.pgconn.socket >= 1024
        assert usable(conn)


def _waker_pid(backend: Any) -> int:
    pid: int = backend._waker.conn.info.backend_pid
    return pid


def test_the_wake_up_right_after_the_wakers_session_ended_is_heard(
    pg_app: offload.App,
    echo: offload.Task[[int], None],
    heard: Callable[[float], set[tuple[str, str]]],
    pg_url: str,
) -> None:
    backend: Any = pg_app.backend
    _one(pg_app, echo)
    assert heard(5.0) == WOKEN
    pid = _waker_pid(backend)
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            time.sleep(0.02)
    _one(pg_app, echo)
    assert heard(5.0) == WOKEN
    assert _waker_pid(backend) != pid


def test_a_waker_that_cannot_connect_backs_off_and_enqueues_wake_on_their_own(
    pg_app: offload.App,
    echo: offload.Task[[int], None],
    heard: Callable[[float], set[tuple[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend: Any = pg_app.backend
    closed_port = Connections(
        "postgresql://postgres@127.0.0.1:1/offload",
        "127.0.0.1:1",
        limit=1,
        connect_timeout=1.0,
        wait=1.0,
    )
    dials: list[float] = []
    real_dial = closed_port.dial

    def dial(**settings: Any) -> psycopg.Connection[Any]:
        dials.append(time.monotonic())
        return real_dial(**settings)

    monkeypatch.setattr(closed_port, "dial", dial)
    waker = pg_backend._Waker(closed_port, backend._waker.sql)
    monkeypatch.setattr(backend, "_waker", waker)
    with caplog.at_level(logging.WARNING, logger="offload.postgres"):
        for _ in range(5):
            _one(pg_app, echo)
            assert heard(5.0) == WOKEN  # sent on the enqueue's own connection
        assert len(dials) == 1  # backing off: the other enqueues did not try
        assert caplog.text.count("cannot open the session that sends wake-ups") == 1
        waker.connections, waker.retry_at = backend.connections, 0.0  # the server is back
        _one(pg_app, echo)
        assert heard(5.0) == WOKEN
    assert waker.conn is not None
    assert "the waker session is open again" in caplog.text


def test_a_child_forked_while_the_waker_is_busy_enqueues(
    pg_app: offload.App,
    echo: offload.Task[[int], None],
    heard: Callable[[float], set[tuple[str, str]]],
) -> None:
    backend: Any = pg_app.backend
    _one(pg_app, echo)
    assert heard(5.0) == WOKEN
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with backend._waker.lock:  # as a send waiting for the server
            held.set()
            release.wait(20)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # forking with threads
            pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                signal.alarm(10)  # a hung enqueue kills the child
                _one(pg_app, echo)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        holder.join()
    assert os.waitstatus_to_exitcode(status) == 0
    assert heard(5.0) == WOKEN  # the child's, from a session of its own
    _one(pg_app, echo)  # the parent's session still serves
    assert heard(5.0) == WOKEN


def test_a_wake_up_after_close_opens_no_session(
    pg_app: offload.App, echo: offload.Task[[int], None], pg_url: str
) -> None:
    backend: Any = pg_app.backend
    _one(pg_app, echo)
    pg_app.close()
    others = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    with psycopg.connect(pg_url, autocommit=True) as spare:
        # A thread whose commit ended just before close() reaches the waker after it.
        backend._waker.send({"default"}, spare)
        assert backend._waker.conn is None
        deadline = time.monotonic() + 5.0
        while (count := spare.execute(others).fetchone()) != (0,):  # closed ones leave soon
            assert time.monotonic() < deadline, count
            time.sleep(0.05)


def test_defer_wake_ends_with_the_enqueues_transaction(
    pg_app: offload.App,
    echo: offload.Task[[int], None],
    heard: Callable[[float], set[tuple[str, str]]],
) -> None:
    backend: Any = pg_app.backend
    _one(pg_app, echo)
    assert heard(5.0) == WOKEN
    _keyed(pg_app, echo)
    assert heard(5.0) == WOKEN
    assert backend.connections._open == 1  # the same pooled connection, then:
    with backend.connections.connection(backend._durable) as conn:
        setting = conn.execute("SELECT current_setting('offload.defer_wake', true)").fetchone()
        assert setting in ((None,), ("",))
        # A later transaction on it notifies in it again (here the events of a change).
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("UPDATE offload_jobs SET state = 'cancelled' RETURNING id")
            backend.events.written(cur, [row[0] for row in cur.fetchall()])
    assert ("offload_events", "") in heard(5.0)
