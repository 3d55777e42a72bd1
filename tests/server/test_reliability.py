"""RELIABILITY 23, 32, 36 and 37 over HTTP: a 100 MB chunked body refused within bounded
memory; every route of the router refusing a request without a token; no secret (a token,
the database password, an argument) in any answer or log line; 10,000 queue names.

(The chunked body that never ends and its timeout, and the SSE clients of 37, are the
event-stream work's; metrics' label cardinality is the metrics work's.)
"""

from __future__ import annotations

import logging
import re
import select
import socket
import subprocess
from typing import Any

import httpx
import pytest
from starlette.routing import Mount, Route

import offload
from offload.core.tokens import Scope
from tests.server.conftest import Api, free_port, serve, stop, wait_up
from tests.sizes import sized
from tests.test_secrets import SENTINEL, _closed_port, assert_clean, logged

MiB = 1024 * 1024


def _rss_kib(pid: int, field: str) -> int:
    """A memory figure of process `pid` from /proc (VmRSS now, VmHWM its peak), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")


def _post_chunked(port: int, path: str, total: int, chunk: bytes) -> tuple[bytes, int]:
    """POST up to `total` bytes to `path` as a chunked body, stopping as soon as the server
    answers (or closes); the answer's bytes and how many body bytes were sent."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head.encode())
        framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        try:
            while sent < total:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered before the body ended
                sock.sendall(framed)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it refused the rest: read what it said
        answer = b""
        try:
            while not answer.endswith(b"}") and (part := sock.recv(65536)):
                answer += part
        except ConnectionResetError:
            pass
    return answer, sent


@pytest.mark.slow
def test_a_100_mb_chunked_body_is_413_within_bounded_memory(
    app: offload.App, db_url: str, spawned: list[subprocess.Popen[bytes]]
) -> None:
    """RELIABILITY 23 over real HTTP: the server stops reading at its body limit, answers
    413 naming the limit, stores nothing, and its peak memory grows by less than twice the
    limit while the client offers 100 MB."""
    limit = 2 * MiB
    port = free_port()
    server = serve(db_url, "--port", str(port), "--body-limit", str(limit))
    spawned.append(server)
    base = f"http://127.0.0.1:{port}"
    wait_up(server, base)
    warm = httpx.post(f"{base}/v1/jobs", content=b"{", timeout=30)  # first-request costs
    assert warm.status_code == 400
    peak_before = _rss_kib(server.pid, "VmHWM")
    answer, sent = _post_chunked(port, "/v1/jobs", 100 * MiB, b'["' + b"x" * 65_530 + b'",')
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"type":"body_too_large"' in body
    assert f"limit of {limit} bytes".encode() in body
    assert sent < 100 * MiB, "the server read the whole body"
    growth = (_rss_kib(server.pid, "VmHWM") - peak_before) * 1024
    assert growth < 2 * limit, f"peak memory grew by {growth} bytes"
    assert app.jobs() == []
    stop(server)


def _filled(path: str) -> str:
    """A route's path with each parameter given a value its converter takes."""
    return re.sub(r"\{[^}:]+(:int)?\}", lambda m: "1" if m.group(1) else "x", path)


def test_every_route_of_the_router_but_the_open_ones_is_401_without_a_token(
    tasks_app: offload.App,
) -> None:
    """RELIABILITY 32: enumerated from the router itself (routes added later included),
    with no token and with a wrong one; only /health, /ready and /openapi.json answer."""
    api = offload.asgi(tasks_app, auth=True)
    client = Api(api)
    open_paths = {"/health", "/ready", "/openapi.json"}
    checked = 0
    for route in api.routes:
        if isinstance(route, Mount) and route.path == "/static":
            continue  # the dashboard's scripts and styles, open as any site's are
        assert isinstance(route, Route)
        dashboard = route.endpoint.__module__.startswith("offload.dashboard.")
        for method in sorted((route.methods or set()) - {"HEAD"}):
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                answer = client.request(method, _filled(route.path), headers=headers)
                if dashboard:
                    # A page asks to sign in (401, the sign-in form); a POST without the
                    # session's CSRF token is refused first (403); the sign-in form is open.
                    expected = 200 if (method, route.path) == ("GET", "/login") else 401
                    if method == "POST":
                        expected = 403
                    assert answer.status_code == expected, (method, route.path, answer.text)
                elif route.path in open_paths:
                    assert answer.status_code == 200, (method, route.path)
                else:
                    assert answer.status_code == 401, (method, route.path, answer.text)
                    assert answer.headers["WWW-Authenticate"] == "Bearer"
                checked += 1
    assert checked >= 2 * 14
    assert tasks_app.jobs() == []


def test_no_secret_shows_in_any_answer_or_log(
    tasks_app: offload.App, caplog: pytest.LogCaptureFixture
) -> None:
    """RELIABILITY 36 over HTTP, a token and an argument: every answer of every route, to
    a live token, a mistyped one and refused enqueues carrying a secret argument, is
    free of the token; refusals never echo the argument; nothing is logged with either."""
    caplog.set_level(logging.DEBUG)
    token = tasks_app.create_token("admin", [Scope.ADMIN])
    secret = f"{SENTINEL}-arg"
    client = Api(offload.asgi(tasks_app))
    tasks_app.queue("tight", max_depth=1)
    live, wrong = {"Authorization": f"Bearer {token}"}, {"Authorization": f"Bearer {token}x"}
    answers = []
    for headers in (live, wrong):
        job = client.request("POST", "/v1/jobs", json={"task": "echo"}, headers=headers)
        answers.append(job)
        for path in ("/v1/jobs", "/v1/jobs/1", "/v1/queues", "/v1/workers", "/v1/schedules"):
            answers.append(client.request("GET", path, headers=headers))
        for path in ("/v1/jobs/1/cancel", "/v1/jobs/1/retry"):
            answers.append(client.request("POST", path, headers=headers))
    refusals: list[dict[str, Any]] = [
        {"task": "add", "args": [secret]},  # arguments_mismatch
        {"task": "add", "args": [1, 2], "kwargs": {"c": secret}},
        {"task": "echo", "args": [secret * 70_000]},  # payload_too_large (over 1 MiB)
        {"task": "nope", "args": [secret]},  # unknown_task
        {"task": "echo", "queue": "tight", "args": [secret]},  # queue_full (one is queued)
        {"task": "echo", "args": [secret], "priority": "high"},  # validation_error
    ]
    client.request("POST", "/v1/jobs", json={"task": "echo", "queue": "tight"}, headers=live)
    for body in refusals:
        refused = client.request("POST", "/v1/jobs", json=body, headers=live)
        assert 400 <= refused.status_code < 600, (body["task"], refused.status_code)
        assert secret not in refused.text, refused.text[:300]
        answers.append(refused)
    for answer in answers:
        assert token not in answer.text and token not in str(answer.headers), answer.text[:300]
    assert token not in logged(caplog) and secret not in logged(caplog)
    assert_clean(logged(caplog))


def test_an_unreachable_database_never_shows_its_password_over_http() -> None:
    """RELIABILITY 36: every route of an API whose database is down answers 503 (or 200,
    for /health) without the password in the URL, naming the place redacted."""
    url = f"postgresql://someone:{SENTINEL}@127.0.0.1:{_closed_port()}/nowhere"
    app = offload.App(url, auto_migrate=False)
    try:
        client = Api(offload.asgi(app, auth=False))
        calls: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", "/ready", {}),
            ("POST", "/v1/jobs", {"json": {"task": "echo"}}),
            ("POST", "/v1/jobs:batch", {"json": {"task": "echo", "jobs": [{}]}}),
            ("GET", "/v1/jobs", {}),
            ("GET", "/v1/jobs/1", {}),
            ("POST", "/v1/jobs:cancel", {"json": {"all_jobs": True}}),
            ("GET", "/v1/queues", {}),
        ]
        for method, path, kwargs in calls:
            answer = client.request(method, path, **kwargs)
            assert answer.status_code in (422, 503), (path, answer.text)
            assert_clean(answer.text)
            if answer.status_code == 503:
                assert "***" in answer.text, answer.text
    finally:
        app.close()


#: How many queue names the abuse test enqueues to, one request each.
QUEUE_NAMES = sized(300, 10_000)


@pytest.mark.slow
def test_many_queue_names_over_http(
    app: offload.App, db_url: str, spawned: list[subprocess.Popen[bytes]]
) -> None:
    """RELIABILITY 37, queue names: enqueues to 300 (full: 10,000) distinct queues over
    real HTTP are each stored once, the queue listing answers with every one, and the
    server holds no memory per name (its RSS grows by under 20 MiB)."""
    port = free_port()
    server = serve(db_url, "--port", str(port))
    spawned.append(server)
    base = f"http://127.0.0.1:{port}"
    wait_up(server, base)
    with httpx.Client(base_url=base, timeout=30) as client:
        client.post("/v1/jobs", json={"task": "add", "args": [0, 0], "queue": "warm-up"})
        before = _rss_kib(server.pid, "VmRSS")
        for n in range(QUEUE_NAMES):
            body = {"task": "add", "args": [n, n], "queue": f"q-{n:05d}-'%_"}
            assert client.post("/v1/jobs", json=body).status_code == 202
        growth = (_rss_kib(server.pid, "VmRSS") - before) * 1024
        listed = client.get("/v1/queues")
    assert listed.status_code == 200
    names = {q["name"] for q in listed.json()["queues"]}
    assert {f"q-{n:05d}-'%_" for n in range(QUEUE_NAMES)} <= names
    assert len(app.jobs(limit=QUEUE_NAMES + 10)) == QUEUE_NAMES + 1
    assert growth < 20 * MiB, f"RSS grew by {growth} bytes"
    stop(server)
