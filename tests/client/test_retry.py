"""`retry=True`: back pressure end to end (a full bounded queue answers 503 with
Retry-After; the client waits and succeeds once a real worker process drains it), resends
that never store a job twice, and the deadline."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import pytest

import offload
from offload.client import AsyncClient, Client
from tests.client.conftest import Serve
from tests.runtime.conftest import PYTHONPATH, ROOT

QUEUE = "bounded"


def _poll(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Until `condition()` holds; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def flow_tasks(app: offload.App) -> offload.App:
    """`app` with tests.apps.flow's tasks (what its worker processes run) and the queue
    `bounded` holding at most 2 jobs not yet started."""
    from tests.apps import flow

    for name in flow.app.registry.names():
        app.registry.add(flow.app.registry.get(name))
    app.queue(QUEUE, max_depth=2)
    return app


def _start_worker(db_url: str, spawned: list[subprocess.Popen[bytes]]) -> None:
    """A worker process on `bounded`, one job at a time, reporting its drain rate every
    0.5 s (a third of its lease)."""
    env = dict(os.environ, OFFLOAD_URL=db_url, PYTHONPATH=PYTHONPATH, FLOW_ROLE="worker")
    env.update(WORKER_QUEUES=QUEUE, WORKER_CONCURRENCY="1", WORKER_LEASE="1.5")
    spawned.append(
        subprocess.Popen([sys.executable, "-m", "tests.apps.run_flow"], cwd=ROOT, env=env)
    )


def _fill(app: offload.App, client: Client) -> None:
    """The worker busy for about a second, and `bounded` full behind it (the worker may
    have claimed a few ahead: those no longer count)."""
    running = client.enqueue("work", [1.0, "blocker"], queue=QUEUE)
    _poll(lambda: app.job(running.id).status() is offload.JobState.RUNNING, "the blocker to run")
    for _ in range(20):
        try:
            client.enqueue("work", [0.05], queue=QUEUE)
        except offload.QueueFull:
            return
    raise AssertionError("the queue never filled")


def test_back_pressure_end_to_end(
    flow_tasks: offload.App,
    db_url: str,
    serve: Serve,
    spawned: list[subprocess.Popen[bytes]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = flow_tasks
    _start_worker(db_url, spawned)
    url = serve(app)
    with Client(url) as client:
        for _ in range(2):  # the worker drains some, so that the queue has a drain rate
            done = client.enqueue_many("work", [offload.call(0), offload.call(0)], queue=QUEUE)
            for one in done:
                assert client.wait(one.id, timeout=30).state is offload.JobState.SUCCEEDED
        _poll(lambda: app.queue_status(QUEUE).drain_rate > 0, "the worker's drain rate")

        _fill(app, client)
        stored = len(app.jobs(limit=100))
        answer = httpx.post(f"{url}/v1/jobs", json={"task": "work", "args": [0], "queue": QUEUE})
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["Retry-After"]) >= 1
        assert answer.json()["type"] == "queue_full"
        with pytest.raises(offload.QueueFull) as full:
            client.enqueue("work", [0], queue=QUEUE)
        assert full.value.retry_after >= 1 and full.value.limit == 2
        assert len(app.jobs(limit=100)) == stored

        caplog.set_level(logging.INFO, logger="offload.client")
        late = client.enqueue("work", [0, "late"], queue=QUEUE, retry=True, retry_for=30)
        assert not late.duplicate
        assert "queue 'bounded' is full" in caplog.text and "trying again in" in caplog.text
        assert client.wait(late.id, timeout=30).result == "late"

    async def from_asyncio() -> int:
        async with AsyncClient(url) as client:
            done = await client.enqueue("work", [0, "async"], queue=QUEUE, retry=True)
            return done.id

    caplog.clear()
    with Client(url) as client:
        _fill(app, client)
    job_id = asyncio.run(from_asyncio())
    assert "trying again in" in caplog.text
    assert app.job(job_id).wait(timeout=30).result == "async"
    assert sum(job.args[1:] == ["async"] for job in app.jobs(limit=100)) == 1


class LoseFirstAnswer(httpx.BaseTransport):
    """Sends every request, but loses the answer to the first POST (as a cut connection
    would): the server may have acted on a request the client hears nothing of."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        answer = self.inner.handle_request(request)
        if request.method == "POST" and len(self.sent) == 1:
            answer.read()
            answer.close()
            raise httpx.ReadTimeout("answer lost", request=request)
        return answer

    def close(self) -> None:
        self.inner.close()


def test_a_lost_answer_is_resent_under_the_same_key_and_stored_once(
    app: offload.App, serve: Serve
) -> None:
    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    transport = LoseFirstAnswer()
    with Client(serve(app), transport=transport) as client:
        done = client.enqueue("add", [1, 2], retry=True, retry_for=10)
    keys = [request.headers["Idempotency-Key"] for request in transport.sent]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0].startswith("client-")
    (job,) = app.jobs()
    assert (done.id, done.duplicate, job.idempotency_key) == (job.id, False, keys[0])


def test_a_batch_is_not_resent_after_a_lost_answer(app: offload.App, serve: Serve) -> None:
    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    transport = LoseFirstAnswer()
    with (
        Client(serve(app), transport=transport) as client,
        pytest.raises(offload.OutcomeUnknown, match="may or may not have"),
    ):
        client.enqueue_many("add", [offload.call(1, 2)], retry=True, retry_for=10)
    assert len(transport.sent) == 1
    assert len(app.jobs()) == 1  # stored by the one try: a resend would have made two


def test_retry_gives_up_when_the_next_try_would_miss_the_deadline() -> None:
    sent: list[httpx.Request] = []

    def full(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        body = {
            "type": "queue_full",
            "message": "queue 'q' is full",
            "queue": "q",
            "depth": 5,
            "limit": 5,
            "retry_after": 4.2,
        }
        return httpx.Response(503, json=body, headers={"Retry-After": "5"})

    started = time.monotonic()
    with (
        Client("http://api", transport=httpx.MockTransport(full)) as client,
        pytest.raises(offload.QueueFull) as caught,
    ):
        client.enqueue("add", [1], retry=True, retry_for=2)
    assert time.monotonic() - started < 1.0
    assert len(sent) == 1
    assert (caught.value.queue, caught.value.depth, caught.value.retry_after) == ("q", 5, 4.2)


def test_async_retry_honours_retry_after_then_succeeds() -> None:
    sent: list[tuple[float, str]] = []
    job = {
        "id": 7,
        "task": "add",
        "queue": "q",
        "args": [1],
        "kwargs": {},
        "priority": 0,
        "state": "available",
        "attempt": 0,
        "max_attempts": 3,
        "run_at": "2026-11-28T10:00:00+00:00",
        "enqueued_at": "2026-11-28T10:00:00+00:00",
        "started_at": None,
        "finished_at": None,
        "lease_until": None,
        "worker": None,
        "result": None,
    }

    def once_full(request: httpx.Request) -> httpx.Response:
        sent.append((time.monotonic(), request.headers["Idempotency-Key"]))
        if len(sent) == 1:
            body = {"type": "overloaded", "message": "busy", "queue": "q", "reason": "r"}
            return httpx.Response(
                503, json={**body, "retry_after": 0.4}, headers={"Retry-After": "1"}
            )
        return httpx.Response(
            202, json={**job, "idempotency_key": request.headers["Idempotency-Key"]}
        )

    async def main() -> offload.Job | None:
        transport = httpx.MockTransport(once_full)
        async with AsyncClient("http://api", transport=transport) as client:
            done = await client.enqueue("add", [1], retry=True)
            assert (done.id, done.duplicate) == (7, False)
            return done.job

    stored = asyncio.run(main())
    assert stored is not None and stored.state is offload.JobState.AVAILABLE
    (first, key), (second, again) = sent
    assert 1.0 <= second - first < 2.0  # Retry-After, stretched by at most the jitter
    assert key == again
