"""`Client.events` and `AsyncClient.events` over real HTTP on both backends: a job's stream
ends after its terminal event, a stream resumes after `last_event_id`, and it reconnects
and resumes by itself across a server restart, with no gap and no repeat."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import httpx
import pytest

import offload
from offload.client import AsyncClient, Client
from offload.core.events import EventCursor
from tests.client.conftest import Serve
from tests.server.conftest import free_port, serve, wait_up


def _drain_later(app: offload.App, seconds: float = 0.3) -> threading.Timer:
    """Run every due job of `app` with a burst worker after `seconds`."""

    def drain() -> None:
        assert app.worker(executor="thread", burst=True, concurrency=1).run() == 0

    timer = threading.Timer(seconds, drain)
    timer.start()
    return timer


def test_a_job_stream_ends_after_its_terminal_event_and_resumes_after_an_id(
    tasks_app: offload.App, serve: Serve
) -> None:
    with Client(serve(tasks_app)) as client:
        job_id = client.enqueue("add", [1, 2]).id
        drain = _drain_later(tasks_app)
        events = list(client.events(job_id))
        drain.join()
        assert [e.kind for e in events] == ["enqueued", "started", "succeeded"]
        assert {e.job_id for e in events} == {job_id}
        assert [e.cursor for e in events] == sorted(e.cursor for e in events)
        assert events == tasks_app.events(job_id=job_id)

        rest = list(client.events(job_id, last_event_id=str(events[0].cursor)))
        assert rest == events[1:]
        assert list(client.events(job_id, last_event_id=str(events[-1].cursor))) == []


def test_an_async_channel_stream_carries_notifications_and_job_changes(
    tasks_app: offload.App, serve: Serve
) -> None:
    for n in range(3):
        tasks_app.notify("user:7", {"n": n})
    job_id = tasks_app.enqueue("add", [1, 2], channel="user:7").id
    tasks_app.notify("user:8", {"elsewhere": True})

    async def read() -> list[offload.Event]:
        got: list[offload.Event] = []
        async with AsyncClient(serve(tasks_app)) as client:
            async for event in client.events(
                channel="user:7", last_event_id=str(EventCursor.START)
            ):
                got.append(event)
                if len(got) == 4:
                    break
        return got

    got = asyncio.run(read())
    assert [(e.kind, e.data) for e in got[:3]] == [("notify", {"n": n}) for n in range(3)]
    assert (got[3].kind, got[3].job_id, got[3].channel) == ("enqueued", job_id, "user:7")


def test_the_stream_resumes_by_itself_across_a_server_restart(
    app: offload.App, db_url: str, spawned: list[object]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def start() -> None:
        process = serve(db_url, "--port", str(port))
        spawned.append(process)
        wait_up(process, base)

    start()
    for n in range(5):
        app.notify("c", {"n": n})
    with Client(base) as client:
        stream = client.events(channel="c", last_event_id="0-0", retry_for=60)
        seen = [next(stream).data for _ in range(5)]
        first = spawned[-1]
        first.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
        first.wait(60)  # type: ignore[attr-defined]
        for n in range(5, 10):
            app.notify("c", {"n": n})  # while no server runs
        restart = threading.Timer(1.0, start)  # the client meets refused connections first
        restart.start()
        began = time.monotonic()
        seen += [next(stream).data for _ in range(5)]
        restart.join()
        stream.close()
    assert seen == [{"n": n} for n in range(10)]
    assert time.monotonic() - began >= 1.0


def test_bad_stream_requests_are_named(tasks_app: offload.App, serve: Serve) -> None:
    with Client(serve(tasks_app)) as client:
        with pytest.raises(offload.BadEventId, match="bad event id 'nope'"):
            next(client.events(1, last_event_id="nope"))
        with pytest.raises(offload.ConfigurationError, match="not both"):
            next(client.events(1, channel="c"))
        with pytest.raises(offload.ValidationError, match="channel"):
            next(client.events(channel="x" * 256))
        with pytest.raises(offload.JobNotFound):
            next(client.events(10**9))
    nobody = Client(f"http://127.0.0.1:{free_port()}")
    with nobody, pytest.raises(offload.BackendUnavailable, match="cannot reach the HTTP API"):
        next(nobody.events(channel="c", retry_for=0.5))


def _sse(*frames: str) -> httpx.Response:
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content="".join(frames).encode()
    )


def _event(cursor: str, kind: str) -> str:
    body = {
        "id": cursor,
        "kind": kind,
        "at": "2026-11-29T00:00:00+00:00",
        "job_id": 1,
        "task": "add",
        "queue": "default",
        "channel": None,
        "state": kind,
        "attempt": 1,
        "data": {},
    }
    return f"id: {cursor}\r\nevent: {kind}\r\ndata: {json.dumps(body)}\r\n\r\n"


def test_a_passing_outage_and_a_reconnect_notice_are_ridden_out() -> None:
    # The server's answers, in turn: down (503), a stream dropped for a slow start that
    # names where it began, then the job's last event. Each request's Last-Event-ID is kept.
    asked: list[str | None] = []
    down = httpx.Response(503, json={"type": "backend_unavailable", "message": "db restarting"})
    dropped = _sse('id: 0-5\r\nevent: reconnect\r\ndata: {"type": "slow_client", '
                   '"last_event_id": "0-5"}\r\n\r\n')  # fmt: skip
    answers = iter([down, dropped, _sse(_event("0-6", "succeeded"))])

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("Last-Event-ID"))
        return next(answers)

    with Client("http://api.test", transport=httpx.MockTransport(answer)) as client:
        events = list(client.events(1, retry_for=30))
    assert [(str(e.cursor), e.kind) for e in events] == [("0-6", "succeeded")]
    assert asked == [None, None, "0-5"]

    refused = iter([down])
    client = Client("http://api.test", transport=httpx.MockTransport(lambda _: next(refused)))
    with client, pytest.raises(offload.BackendUnavailable, match="db restarting"):
        next(client.events(1, retry_for=0))
