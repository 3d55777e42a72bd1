"""An API without tokens on loopback answers requests for this machine only (DNS
rebinding): a request naming another host gets 421 and changes nothing."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

import offload
from offload.server.hosts import host_name


@pytest.mark.parametrize(
    ("header", "name"),
    [("127.0.0.1:8000", "127.0.0.1"), ("[::1]:8000", "::1"), ("localhost", "localhost"),
     ("evil.example:80", "evil.example"), ("::1", "::1")],
)  # fmt: skip
def test_host_name_drops_the_port(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize("base", ["http://127.0.0.1:8000", "http://localhost", "http://[::1]:9"])
def test_requests_for_this_machine_are_served(tasks_app: offload.App, base: str) -> None:
    client = TestClient(offload.asgi(tasks_app, auth=False, loopback_only=True), base_url=base)
    assert client.get("/health").status_code == 200
    assert client.get("/").status_code == 200  # the dashboard


def test_a_request_naming_another_host_is_refused_and_changes_nothing(
    tasks_app: offload.App,
) -> None:
    api = offload.asgi(tasks_app, auth=False, loopback_only=True)
    rebound = TestClient(api, base_url="http://attacker.example:8000")
    answer = rebound.post("/v1/jobs", json={"task": "add", "args": [1, 2]})
    assert answer.status_code == 421
    assert "localhost only" in answer.text
    assert rebound.get("/jobs").status_code == 421
    assert tasks_app.count_jobs() == 0


def test_without_the_option_any_host_is_served(tasks_app: offload.App) -> None:
    client = TestClient(offload.asgi(tasks_app, auth=False), base_url="http://testserver")
    assert client.get("/health").status_code == 200
