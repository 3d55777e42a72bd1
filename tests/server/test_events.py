"""Event streams over real HTTP (`offload serve` on a loopback port, on both backends): a
job's stream from enqueue to its end, a channel's stream, resuming with Last-Event-ID from
one server or two, a slow client dropped with memory bounded, and the refusals."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
from jsonschema import Draft202012Validator

import offload
from offload.app import Call
from offload.core.events import Event, EventCursor
from offload.server.openapi import document
from tests.runtime.conftest import StartWorker
from tests.server.conftest import ApiServer
from tests.server.sse import Message, messages
from tests.sizes import sized

StartApi = Any  # the start_api fixture's callable
#: Seconds any one read of a stream may wait before the test fails.
READ_TIMEOUT = 30.0
EVENT_SCHEMA = Draft202012Validator(
    {"$ref": "#/components/schemas/Event", "components": document()["components"]}
)


def _checked(message: Message) -> Message:
    """`message`, whose data must be an Event of the document with the same id and kind."""
    EVENT_SCHEMA.validate(message.data)
    assert (message.data["id"], message.data["kind"]) == (message.id, message.event)
    return message


def _take(stream: Iterator[Message], count: int) -> list[Message]:
    return [_checked(next(stream)) for _ in range(count)]


def _client(base: str, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=READ_TIMEOUT, **kwargs)


def _stored(app: offload.App, after: EventCursor, **filters: Any) -> list[Event]:
    """Every stored event after `after` matching `filters`, oldest first."""
    out: list[Event] = []
    while page := app.events(after=after, limit=500, **filters):
        out += page
        after = page[-1].cursor
    return out


def test_a_job_stream_from_enqueue_to_succeeded(
    basic_app: offload.App, start_api: StartApi, start_worker: StartWorker
) -> None:
    server: ApiServer = start_api()
    with _client(server.base) as client:
        created = client.post("/v1/jobs", json={"task": "report_progress"})
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        received: list[Message] = []
        with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for message in messages(response):
                received.append(_checked(message))
                if len(received) == 1:
                    start_worker(concurrency=1)  # what follows arrives live
        # the server ended the stream after the terminal event
        assert [m.event for m in received] == ["enqueued", "started", "progress", "succeeded"]
        assert [m.data["state"] for m in received] == [
            "available",
            "running",
            "running",
            "succeeded",
        ]
        assert {m.data["job_id"] for m in received} == {job_id}
        assert received[2].data["data"] == {"fraction": 0.5, "message": "halfway"}
        cursors = [EventCursor.parse(m.id or "") for m in received]
        assert cursors == sorted(set(cursors))
        assert [str(e.cursor) for e in _stored(basic_app, EventCursor.START, job_id=job_id)] == [
            m.id for m in received
        ]

        last = {"Last-Event-ID": received[-1].id or ""}
        assert client.get(f"/v1/jobs/{job_id}/events", headers=last).status_code == 204
        query = {"last_event_id": received[-1].id}
        assert client.get(f"/v1/jobs/{job_id}/events", params=query).status_code == 204

        resumed = {"Last-Event-ID": received[1].id or ""}
        with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=resumed) as response:
            assert [m.id for m in messages(response)] == [m.id for m in received[2:]]


def test_a_channel_stream_carries_its_jobs_and_notifications(
    basic_app: offload.App, start_api: StartApi
) -> None:
    server: ApiServer = start_api()
    mine = {"channel": "user:42"}
    with _client(server.base) as client:
        with client.stream("GET", "/v1/events", params=mine) as response:
            assert response.status_code == 200
            basic_app.notify("user:42", {"step": "begin"})
            created = client.post("/v1/jobs", json={"task": "noop", "channel": "user:42"})
            assert created.status_code == 202, created.text
            assert created.json()["channel"] == "user:42"
            basic_app.enqueue("noop", channel="user:7")
            basic_app.notify("user:7", {"not": "mine"})
            basic_app.cancel(created.json()["id"])
            basic_app.notify("user:42", {"step": "end"})
            received = _take(messages(response), 4)
        assert [(m.event, m.data["data"]) for m in received] == [
            ("notify", {"step": "begin"}),
            ("enqueued", {}),
            ("cancelled", {}),
            ("notify", {"step": "end"}),
        ]
        assert {m.data["channel"] for m in received} == {"user:42"}

        resume = {**mine, "last_event_id": received[0].id}
        with client.stream("GET", "/v1/events", params=resume) as response:
            assert [m.id for m in _take(messages(response), 3)] == [m.id for m in received[1:]]


def _follow(bases: list[str], start: str, total: int, connections: int) -> list[Message]:
    """`total` events of the default queue after `start`, over `connections` connections
    (each one closed after its share, the next resuming with Last-Event-ID), taking the
    servers of `bases` in turn."""
    share = math.ceil(total / connections)
    received: list[Message] = []
    last = start
    deadline = time.monotonic() + 120
    for number in range(connections):
        headers = {"Last-Event-ID": last}
        base = bases[number % len(bases)]
        with (
            _client(base) as client,
            client.stream(
                "GET", "/v1/events", params={"queue": "default"}, headers=headers
            ) as response,
        ):
            assert response.status_code == 200
            for message in messages(response):
                received.append(message)
                last = message.id or ""
                if len(received) >= min(total, share * (number + 1)):
                    break
        assert time.monotonic() < deadline, f"{len(received)} of {total} events in time"
    return received


def _reconnecting(app: offload.App, bases: list[str], start_worker: StartWorker, jobs: int) -> None:
    """Enqueue `jobs` no-op jobs, run them with a worker process while a client follows
    their queue's events over 11 connections: it must receive every event once, in order."""
    start = app.event_tail()
    app.enqueue_many("noop", [Call((), {})] * jobs)
    start_worker(concurrency=4, executor="thread")
    received = _follow(bases, str(start), 3 * jobs, connections=11)
    stored = _stored(app, start, queue="default")
    assert len(stored) == 3 * jobs
    assert [m.id for m in received] == [str(e.cursor) for e in stored]
    kinds: dict[int, list[str]] = {}
    for message in received:
        kinds.setdefault(_checked(message).data["job_id"], []).append(message.event)
    assert len(kinds) == jobs
    assert all(k == ["enqueued", "started", "succeeded"] for k in kinds.values())


def test_reconnecting_ten_times_during_completions_misses_and_repeats_nothing(
    basic_app: offload.App, start_api: StartApi, start_worker: StartWorker
) -> None:
    server: ApiServer = start_api()
    _reconnecting(basic_app, [server.base], start_worker, jobs=sized(1000, 1000))


def test_two_api_processes_serve_a_stream_interchangeably(
    basic_app: offload.App, start_api: StartApi, start_worker: StartWorker
) -> None:
    servers: list[ApiServer] = [start_api(), start_api()]
    _reconnecting(basic_app, [s.base for s in servers], start_worker, jobs=sized(200, 1000))


def _memory_kb(pid: int, field: str) -> int:
    """A memory figure of process `pid` from /proc (VmRSS now, VmHWM its peak), in kB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _flood(app: offload.App, start: int, count: int, probe: Iterator[Message]) -> None:
    """Notify `count` events of 10 kB on the slow channel, then one on the probe channel,
    and wait until the probe stream delivers it: the server has fanned out the flood."""
    pad = "x" * 10_000
    for n in range(start, start + count):
        app.notify("slow", {"n": n, "pad": pad})
    app.notify("probe", {"after": start + count})
    assert _checked(next(probe)).data["data"] == {"after": start + count}


def test_a_slow_client_is_dropped_with_a_reconnect_event_and_memory_stays_bounded(
    basic_app: offload.App, start_api: StartApi
) -> None:
    # a buffer as large as one read of the database, so only a blocked socket overflows it
    server: ApiServer = start_api("--event-buffer", "500")
    pid = server.process.pid
    # a receive window that stays small (the kernel would grow it to 32 MB), so the flood
    # blocks the server's socket; large enough to read the backlog back quickly
    window = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)]
    flood = sized(1500, 5000)  # 15 MB: past the socket buffers (about 4 MB) and the 5 MB buffer
    with (
        _client(server.base) as fast,
        fast.stream("GET", "/v1/events", params={"channel": "probe"}) as probing,
        _client(server.base, transport=httpx.HTTPTransport(socket_options=window)) as slow,
        slow.stream("GET", "/v1/events", params={"channel": "slow"}) as response,
    ):
        probe = messages(probing)
        _flood(basic_app, 0, flood, probe)  # fills the socket buffers, then the client's
        peak = _memory_kb(pid, "VmHWM")
        _flood(basic_app, flood, flood, probe)  # as much again, while the client reads nothing
        grown = _memory_kb(pid, "VmHWM") - peak
        received = list(messages(response))  # now read: up to the end of the stream
    delivered, last = received[:-1], received[-1]
    assert [m.data["data"]["n"] for m in map(_checked, delivered)] == list(range(len(delivered)))
    assert 0 < len(delivered) < flood, f"{len(delivered)} of {flood} events delivered"
    assert (last.event, last.id) == ("reconnect", delivered[-1].id)
    assert last.data == {"type": "slow_client", "last_event_id": delivered[-1].id}
    # Bounded: one read of the database (500 events of 10 kB) may be held beside the
    # stream's buffer; growth with the flood would be 15 MB (CI size) or 50 MB (full).
    assert grown < 10_000, f"the server's peak memory grew by {grown} kB for {flood} more events"

    with (
        _client(server.base) as client,
        client.stream(
            "GET",
            "/v1/events",
            params={"channel": "slow"},
            headers={"Last-Event-ID": delivered[-1].id or ""},
        ) as response,
    ):
        (following,) = _take(messages(response), 1)
    assert following.data["data"]["n"] == len(delivered)


def test_refusals_and_the_end_of_a_job_stream(basic_app: offload.App, start_api: StartApi) -> None:
    reader = basic_app.create_token("reader", ["read"])
    producer = basic_app.create_token("producer", ["enqueue"])
    server: ApiServer = start_api()  # tokens exist: it checks them
    job = basic_app.enqueue("noop")
    basic_app.cancel(job.id)
    routes = [f"/v1/jobs/{job.id}/events", "/v1/events"]
    with _client(server.base, headers={"Authorization": f"Bearer {reader}"}) as client:
        for route in routes:
            for headers, params in (({"Last-Event-ID": "nope"}, {}), ({}, {"last_event_id": "1"})):
                answer = client.get(route, headers=headers, params=params)
                assert answer.status_code == 400, answer.text
                assert answer.json()["type"] == "bad_event_id"
                assert "bad event id" in answer.json()["message"]
            assert httpx.get(server.base + route).status_code == 401
            other = {"Authorization": f"Bearer {producer}"}
            answer = httpx.get(server.base + route, headers=other)
            assert (answer.status_code, answer.json()["type"]) == (403, "forbidden")
        answer = client.get("/v1/jobs/999999999/events")
        assert (answer.status_code, answer.json()["type"]) == (404, "job_not_found")
        for params, field in (({"channel": "x" * 256}, "channel"), ({"chanel": "a"}, "chanel")):
            answer = client.get("/v1/events", params=params)
            assert answer.status_code == 422, answer.text
            assert field in answer.json()["message"]

        with client.stream("GET", routes[0]) as response:
            ended = [_checked(m) for m in messages(response)]  # over: it closes by itself
        assert [m.event for m in ended] == ["enqueued", "cancelled"]
        past = {"Last-Event-ID": ended[-1].id or ""}
        assert client.get(routes[0], headers=past).status_code == 204
        # the header wins over the query (an EventSource reconnects to its first URL)
        answer = client.get(routes[0], headers=past, params={"last_event_id": "garbage"})
        assert answer.status_code == 204
