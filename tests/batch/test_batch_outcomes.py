"""Each item of a batch call gets its own outcome (both backends, a worker's thread
executor in this process): results, per-item failures, a call that raises or returns the
wrong number of results, and a cancel while the call runs."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import offload
from offload.core.states import JobState
from offload.runtime.worker import Worker
from offload.task import Call

#: Retries with no backoff: due at once, so a burst worker runs them before it exits.
FAST_RETRY = offload.RetryPolicy(max_attempts=2, base=0.0, max_delay=0.0, jitter=0.0)


def drain(app: offload.App, **options: Any) -> Worker:
    worker = app.worker(executor="thread", burst=True, install_signals=False, **options)
    assert worker.run() == 0
    return worker


def states(handles: list[offload.JobHandle[Any]]) -> list[JobState]:
    return [handle.status() for handle in handles]


def test_results_and_item_failures_are_each_items_own(app: offload.App) -> None:
    @app.batch_task(name="mixed", max_size=10, max_wait=0.0, retry=FAST_RETRY)
    def mixed(items: list[offload.BatchItem]) -> list[Any]:
        out: list[Any] = []
        for item in items:
            kind = item.args[0]
            if kind == "error" and item.attempt == 1:
                out.append(offload.ItemFailed(LookupError("not found, yet")))
            elif kind == "message":
                out.append(offload.ItemFailed("always refused"))
            elif kind == "not-json":
                out.append({1, 2})
            else:
                out.append([kind, item.attempt])
        return out

    handles = mixed.enqueue_many([Call(("ok",)), Call(("error",)), Call(("message",))])
    (not_json,) = mixed.enqueue_many([Call(("not-json",))])
    drain(app)
    ok, error, message = handles
    assert ok.result(timeout=1) == ["ok", 1]
    assert error.result(timeout=1) == ["error", 2]  # retried alone, then succeeded
    assert [e["type"] for e in error.job().errors] == ["LookupError"]
    assert "not found, yet" in error.job().errors[0]["message"]
    dead = message.job()
    assert (dead.state, dead.attempt) == (JobState.DEAD, 2)
    assert [(e["type"], e["message"]) for e in dead.errors] == [
        ("offload.ItemFailed", "always refused")
    ] * 2
    bad = not_json.job()
    assert bad.state is JobState.DEAD
    assert bad.errors[0]["type"] == "offload.core.errors.SerializationError"
    assert "the result of item" in bad.errors[0]["message"]
    assert ok.job().attempt == 1  # the failures of others did not run it again


@pytest.mark.parametrize(
    ("returned", "words"),
    [
        ([1], "returned 1 results for 3 items"),
        ([1, 2, 3, 4], "returned 4 results for 3 items"),
        ({"a": 1}, "returned a dict, not a list of results for 3 items"),
    ],
)
def test_a_wrong_result_count_fails_every_item_naming_the_mismatch(
    app: offload.App, returned: Any, words: str
) -> None:
    @app.batch_task(name="miscount", max_size=3, max_wait=0.0, max_attempts=1)
    def miscount(items: list[offload.BatchItem]) -> Any:
        return returned

    handles = miscount.enqueue_many([Call((n,)) for n in range(3)])
    drain(app)
    for handle in handles:
        job = handle.job()
        assert job.state is JobState.DEAD
        (error,) = job.errors
        assert error["type"] == "offload.core.errors.BatchResultMismatch"
        assert words in error["message"]
        assert "batch task 'miscount'" in error["message"]


def test_a_call_that_raises_fails_every_item_under_its_own_attempts(app: offload.App) -> None:
    seen: list[list[tuple[int, int]]] = []

    @app.batch_task(name="flaky", max_size=5, max_wait=0.0, retry=FAST_RETRY)
    def flaky(items: list[offload.BatchItem]) -> list[Any]:
        seen.append([(item.args[0], item.attempt) for item in items])
        if len(seen) == 1:
            raise ConnectionError("the service is down")
        return [item.args[0] for item in items]

    handles = flaky.enqueue_many([Call((n,)) for n in range(4)])
    drain(app)
    assert seen == [[(n, 1) for n in range(4)], [(n, 2) for n in range(4)]]
    for n, handle in enumerate(handles):
        job = handle.job()
        assert (job.state, job.attempt, job.result) == (JobState.SUCCEEDED, 2, n)
        assert [(e["type"], e["message"]) for e in job.errors] == [
            ("ConnectionError", "the service is down")
        ]


def test_an_item_cancelled_while_its_call_runs_ends_cancelled(app: offload.App) -> None:
    started, release = threading.Event(), threading.Event()

    @app.batch_task(name="held", max_size=3, max_wait=0.0)
    def held(items: list[offload.BatchItem]) -> list[Any]:
        started.set()
        assert release.wait(60)
        return [item.args[0] for item in items]

    handles = held.enqueue_many([Call((n,)) for n in range(3)])
    worker = app.worker(executor="thread", burst=True, install_signals=False, lease=1.5)
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert started.wait(60)
    app.cancel(handles[1].id)
    deadline = time.monotonic() + 60
    while handles[1].id not in worker._cancelled:  # the worker's heartbeat has seen it
        assert time.monotonic() < deadline, "the worker never saw the cancel"
        time.sleep(0.05)
    release.set()
    thread.join(60)
    assert not thread.is_alive()
    assert states(handles) == [JobState.SUCCEEDED, JobState.CANCELLED, JobState.SUCCEEDED]
    assert handles[1].job().errors[0]["message"].startswith("cancelled while its batch call")
    assert [handles[0].result(timeout=1), handles[2].result(timeout=1)] == [0, 2]
