"""PostgreSQL: an enqueue on offload's own connection NOTIFYs nothing in its transaction
(PostgreSQL serialises the commits of transactions that NOTIFY, so producers in many
processes could not share a group commit); its wake-ups, the queue's and the event
listeners', follow in a second transaction once the commit is durable. A wake-up lost after
the commit never fails the enqueue: the jobs are stored, and workers also poll."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

import offload
from offload.backends.params import JobInsertParams
from offload.backends.postgres import backend as pg_backend
from offload.core.job import JobSpec, Payload

#: The notifications of one enqueue: its queue's workers, and the event listeners.
WOKEN = {("offload_jobs", "default"), ("offload_events", "")}
_keys = itertools.count()


@pytest.fixture
def pg_app(pg_url: str) -> Iterator[offload.App]:
    application = offload.App(pg_url)
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
    # Nothing at all: the enqueue's own transaction (its statement, the event triggers)
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
