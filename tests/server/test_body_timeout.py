"""A request body that never ends is cut off by the body timeout: over real HTTP (uvicorn
on loopback), a chunked body dripping forever gets 408 with the JSON error, the connection
is closed, and nothing is stored."""

from __future__ import annotations

import json
import select
import socket
import time
from typing import Any

import pytest

import offload
from tests.serving import served

HEAD = (
    b"POST /v1/jobs HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
#: One chunk of the body: a space, which JSON allows without end.
DRIP = b"1\r\n \r\n"


def _drip_until_answered(sock: socket.socket, deadline: float) -> bytes:
    """Send a chunk every 0.05 s (so the body is never idle for long) until the server
    answers; then read until it closes the connection. Everything it sent."""
    sock.sendall(HEAD + b"1\r\n{\r\n")
    while not select.select([sock], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, "no answer to a body that never ends"
        sock.sendall(DRIP)
    received = b""
    try:
        while chunk := sock.recv(65536):  # b"" once the server closes; a timeout fails the test
            received += chunk
    except ConnectionResetError:
        # The server closed with drips it never read still queued, so TCP reset the
        # connection instead of closing it; the answer read before is what the test checks.
        pass
    return received


@pytest.mark.usefixtures("unchanged")
def test_a_chunked_body_that_never_ends_is_answered_408(tasks_app: offload.App) -> None:
    with served(offload.asgi(tasks_app, body_timeout=0.5)) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            started = time.monotonic()
            answer = _drip_until_answered(sock, started + 10)
            elapsed = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 408 Request Timeout", lines[0]
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers["connection"] == "close"
    error = json.loads(body)
    assert (error["type"], error["message"]) == (
        "body_timeout",
        "the body did not arrive within 0.5 s",
    )
    assert 0.5 <= elapsed < 5


def test_the_body_timeout_is_checked(tasks_app: offload.App) -> None:
    for bad in (0, -1, float("nan"), float("inf"), "5", True):
        with pytest.raises(offload.ConfigurationError, match="body_timeout must be"):
            offload.asgi(tasks_app, body_timeout=bad)  # type: ignore[arg-type]


def test_offload_serve_passes_body_timeout(
    tasks_app: offload.App, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from offload.cli.group import cli
    from offload.server import serve as serving

    seen: dict[str, Any] = {}
    monkeypatch.setattr(serving, "serve", lambda app, **settings: seen.update(settings))
    env = {"OFFLOAD_URL": db_url}
    result = CliRunner().invoke(
        cli, ["serve", "tests.apps.basic:app", "--body-timeout", "2.5"], env=env
    )
    assert result.exit_code == 0, result.output
    assert seen["body_timeout"] == 2.5
    refused = CliRunner().invoke(
        cli, ["serve", "tests.apps.basic:app", "--body-timeout", "0"], env=env
    )
    assert refused.exit_code == 2 and "--body-timeout" in refused.output
