"""Every call of `offload.client.Client` over real HTTP (uvicorn on loopback) and of
`AsyncClient` through httpx's ASGI transport, on both backends."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest

import offload
from offload.client import AsyncClient, Client, Enqueued
from tests.client.conftest import Serve


def _drain(app: offload.App) -> None:
    """Run every due job of `app` with a burst worker (threads), then return."""
    assert app.worker(executor="thread", burst=True, concurrency=2).run() == 0


def test_enqueue_returns_the_stored_job(tasks_app: offload.App, serve: Serve) -> None:
    at = datetime.now(UTC) + timedelta(hours=1)
    with Client(serve(tasks_app)) as client:
        done = client.enqueue(
            "echo", [1, "two"], {"three": 3}, queue="q", priority=5, max_attempts=2, run_at=at
        )
        assert isinstance(done, Enqueued) and not done.duplicate
        assert done.job is not None
        job = tasks_app.job(done.id).job()
        assert done.job == job
        assert (job.args, job.kwargs, job.queue, job.priority) == ([1, "two"], {"three": 3}, "q", 5)
        assert (job.max_attempts, job.run_at, job.state) == (2, at, offload.JobState.SCHEDULED)
        assert client.job(done.id) == job


def test_an_idempotency_key_answers_with_the_same_job(tasks_app: offload.App, serve: Serve) -> None:
    with Client(serve(tasks_app)) as client:
        first = client.enqueue("add", [1, 2], idempotency_key="k-1")
        again = client.enqueue("add", [1, 2], idempotency_key="k-1")
    assert (first.duplicate, again.duplicate, again.id) == (False, True, first.id)
    assert again.job is not None and again.job.idempotency_key == "k-1"
    assert len(tasks_app.jobs()) == 1


def test_enqueue_many_stores_every_job(tasks_app: offload.App, serve: Serve) -> None:
    with Client(serve(tasks_app)) as client:
        done = client.enqueue_many("add", [offload.call(1, 2), offload.call(3, b=4)], queue="m")
    assert [d.duplicate for d in done] == [False, False]
    stored = {job.id: (job.args, job.kwargs, job.queue) for job in tasks_app.jobs()}
    assert stored == {done[0].id: ([1, 2], {}, "m"), done[1].id: ([3], {"b": 4}, "m")}


def test_wait_returns_the_finished_job(tasks_app: offload.App, serve: Serve) -> None:
    with Client(serve(tasks_app)) as client:
        done = client.enqueue("add", [2, 3])
        worker = threading.Timer(0.3, _drain, [tasks_app])  # finishes it during the wait
        worker.start()
        finished = client.wait(done.id, timeout=30)
        worker.join()
    assert (finished.state, finished.result) == (offload.JobState.SUCCEEDED, 5)


def test_wait_times_out_naming_the_state(tasks_app: offload.App, serve: Serve) -> None:
    with Client(serve(tasks_app)) as client:
        done = client.enqueue("add", [2, 3])
        with pytest.raises(offload.ResultTimeout, match=r"still available after 0\.2s") as caught:
            client.wait(done.id, timeout=0.2)
    assert (caught.value.job_id, caught.value.state) == (done.id, "available")


def test_cancel_and_retry(tasks_app: offload.App, serve: Serve) -> None:
    with Client(serve(tasks_app)) as client:
        done = client.enqueue("add", [2, 3])
        cancelled = client.cancel(done.id)
        assert cancelled.state is offload.JobState.CANCELLED
        again = client.retry(done.id)
        assert again.state is offload.JobState.AVAILABLE
        assert tasks_app.job(done.id).job() == again


def test_a_mounted_api_is_reached_under_its_prefix(tasks_app: offload.App) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    site = Starlette(routes=[Mount("/jobs", app=offload.asgi(tasks_app))])

    async def main() -> int:
        transport = httpx.ASGITransport(app=site)
        async with AsyncClient("http://site/jobs", transport=transport) as client:
            done = await client.enqueue("add", [1, 1])
            return (await client.job(done.id)).id

    assert asyncio.run(main()) == tasks_app.jobs()[0].id


def test_async_client_makes_every_call(tasks_app: offload.App) -> None:
    async def main() -> None:
        transport = httpx.ASGITransport(app=offload.asgi(tasks_app))
        async with AsyncClient("http://api", transport=transport) as client:
            one = await client.enqueue("add", [1, 2], idempotency_key="a")
            same = await client.enqueue("add", [1, 2], idempotency_key="a")
            assert (same.id, same.duplicate) == (one.id, True)
            many = await client.enqueue_many("echo", [offload.call(), offload.call(x=1)])
            assert len(many) == 2 and not any(m.duplicate for m in many)
            assert (await client.job(one.id)).args == [1, 2]
            assert (await client.cancel(many[0].id)).state is offload.JobState.CANCELLED
            assert (await client.retry(many[0].id)).state is offload.JobState.AVAILABLE
            waiting = asyncio.create_task(client.wait(one.id, timeout=30))
            await asyncio.to_thread(_drain, tasks_app)
            finished = await waiting
            assert (finished.state, finished.result) == (offload.JobState.SUCCEEDED, 3)
            with pytest.raises(offload.ResultTimeout):
                await client.wait((await client.enqueue("add", [0, 0])).id, timeout=0.05)

    asyncio.run(main())
    assert len(tasks_app.jobs()) == 4


def test_the_request_carries_arguments_and_options_apart() -> None:
    sent: list[httpx.Request] = []

    def accept(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(202, json={"jobs": [{"id": 1, "duplicate": False}]})

    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    with Client("http://api/jobs", "s3cret", transport=httpx.MockTransport(accept)) as client:
        client.enqueue_many(
            "report",
            [offload.call("2026-11", queue="q-arg")],
            queue="reports",
            run_at=at,
            unique="u",
            channel="user:42",
            priority=None,  # None: the task's own, not sent
        )
    (request,) = sent
    assert (request.method, request.url.path) == ("POST", "/jobs/v1/jobs:batch")
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert json.loads(request.content) == {
        "task": "report",
        "queue": "reports",
        "unique": "u",
        "channel": "user:42",
        "run_at": "2030-01-02T03:04:05+00:00",
        "jobs": [{"args": ["2026-11"], "kwargs": {"queue": "q-arg"}}],
    }
