"""The HTTP API as a whole: its OpenAPI document against its routes, mounting under a
prefix, the listings of queues, workers and schedules, and `offload serve` for real."""

from __future__ import annotations

import subprocess
import threading
import time

import httpx
import pytest
from jsonschema import Draft202012Validator
from starlette.applications import Starlette
from starlette.routing import Mount, Route

import offload
from offload.core.status import QueueStatus
from offload.server.openapi import document
from offload.server.serve import check_listen, is_loopback
from tests.server.conftest import Api, free_port, serve, stop, wait_up


def test_the_document_describes_exactly_the_routes(tasks_app: offload.App) -> None:
    api = offload.asgi(tasks_app)
    served = set()
    for route in api.routes:
        if isinstance(route, Mount) and route.path == "/static":
            continue  # the dashboard's files
        assert isinstance(route, Route)
        if route.endpoint.__module__.startswith("offload.dashboard."):
            continue  # the dashboard's pages (docs/dashboard.md), not the JSON API
        for method in route.methods or ():
            if method != "HEAD":
                served.add((route.path.replace(":int}", "}"), method.lower()))
    documented = {(path, method) for path, item in document()["paths"].items() for method in item}
    assert served == documented


def test_the_document_is_valid_openapi_31_json_schema(api: Api) -> None:
    doc = api.call("GET", "/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    assert "servers" not in doc
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    operation_ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))


def test_mounted_under_a_prefix(tasks_app: offload.App) -> None:
    host = Starlette(routes=[Mount("/jobs", app=offload.asgi(tasks_app))])
    client = Api(host)
    created = client.request("POST", "/jobs/v1/jobs", json={"task": "add", "args": [1, 2]})
    assert created.status_code == 202
    location = created.headers["Location"]
    assert location == f"http://api.test/jobs/v1/jobs/{created.json()['id']}"
    assert client.request("GET", location).json()["args"] == [1, 2]
    doc = client.request("GET", "/jobs/openapi.json").json()
    assert doc["servers"] == [{"url": "/jobs"}]
    assert client.request("GET", "/v1/jobs").status_code == 404


def test_queues_workers_and_schedules(tasks_app: offload.App) -> None:
    tasks_app.queue("declared", max_depth=10)

    @tasks_app.periodic("0 3 * * *", name="nightly")
    def nightly() -> None: ...

    api = Api(offload.asgi(tasks_app))
    api.call("POST", "/v1/jobs", json={"task": "echo", "queue": "mail"})
    worker = tasks_app.worker(
        queues=["mail"], concurrency=1, scheduler=True, executor="thread", install_signals=False
    )
    running = threading.Thread(target=worker.run)
    running.start()
    try:
        deadline = time.monotonic() + 60
        while not api.call("GET", "/v1/schedules").json()["schedules"]:
            assert time.monotonic() < deadline, "the scheduler stored no schedule"
            time.sleep(0.05)
        workers = api.call("GET", "/v1/workers").json()["workers"]
        assert [(w["queues"], w["lost"]) for w in workers] == [(["mail"], False)]
        queues = {q["name"]: q for q in api.call("GET", "/v1/queues").json()["queues"]}
        assert queues["declared"]["policy"]["max_depth"] == 10
        assert queues["mail"]["workers"] == [workers[0]["id"]]
        (schedule,) = api.call("GET", "/v1/schedules").json()["schedules"]
        assert (schedule["name"], schedule["cron"]) == ("nightly", "0 3 * * *")
        assert schedule["next_run"] is not None
    finally:
        worker.stop()
        running.join(60)
    assert not running.is_alive()


def test_loopback_addresses() -> None:
    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "example.com", "localhost.evil"):
        assert not is_loopback(host), host


def test_listening_beyond_loopback_needs_a_token_or_insecure(
    tasks_app: offload.App, caplog: pytest.LogCaptureFixture
) -> None:
    assert check_listen(tasks_app, "127.0.0.1", insecure=False) is False
    with pytest.raises(offload.ConfigurationError, match=r"0\.0\.0\.0, which is not loopback"):
        check_listen(tasks_app, "0.0.0.0", insecure=False)
    assert not caplog.records
    assert check_listen(tasks_app, "0.0.0.0", insecure=True) is False
    assert "without credentials (--insecure, no API token)" in caplog.text
    caplog.clear()
    tasks_app.create_token("reader", ["read"])
    for host in ("127.0.0.1", "0.0.0.0"):
        for insecure in (False, True):
            assert check_listen(tasks_app, host, insecure=insecure) is True
    assert not caplog.records


def test_offload_serve_runs_uvicorn(
    app: offload.App, db_url: str, spawned: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    server = serve(db_url, "--port", str(port))
    spawned.append(server)
    base = f"http://127.0.0.1:{port}"
    wait_up(server, base)
    assert httpx.get(f"{base}/ready", timeout=30).json() == {"status": "ready"}
    created = httpx.post(f"{base}/v1/jobs", json={"task": "add", "args": [2, 3]}, timeout=30)
    assert created.status_code == 202
    assert created.headers["Location"] == f"{base}/v1/jobs/{created.json()['id']}"
    assert app.job(created.json()["id"]).job().args == [2, 3]
    stop(server)


def test_offload_serve_refuses_a_public_address_without_a_token(
    app: offload.App, db_url: str, spawned: list[subprocess.Popen[bytes]]
) -> None:
    server = serve(db_url, "--host", "0.0.0.0", "--port", str(free_port()))
    spawned.append(server)
    output = server.communicate(timeout=60)[0].decode()
    assert server.returncode == 1, output
    assert "error: refusing to serve the HTTP API" in output
    assert "offload tokens create" in output
    assert "pass --insecure" in output


def test_offload_serve_on_a_public_address_with_a_token_checks_it(
    app: offload.App, db_url: str, spawned: list[subprocess.Popen[bytes]]
) -> None:
    token = app.create_token("producer", ["enqueue"])
    port = free_port()
    server = serve(db_url, "--host", "0.0.0.0", "--port", str(port))
    spawned.append(server)
    base = f"http://127.0.0.1:{port}"
    wait_up(server, base)
    job = {"task": "add", "args": [2, 3]}
    refused = httpx.post(f"{base}/v1/jobs", json=job, timeout=30)
    assert (refused.status_code, refused.headers["WWW-Authenticate"]) == (401, "Bearer")
    assert app.jobs() == []
    auth = {"Authorization": f"Bearer {token}"}
    created = httpx.post(f"{base}/v1/jobs", json=job, headers=auth, timeout=30)
    assert created.status_code == 202, created.text
    assert httpx.get(f"{base}/v1/jobs", headers=auth, timeout=30).status_code == 403
    assert "without credentials" not in stop(server)


def test_app_calls_run_off_the_event_loop(
    tasks_app: offload.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    original = tasks_app.queue_statuses

    def recording() -> list[QueueStatus]:
        threads.append(threading.current_thread())
        return original()

    monkeypatch.setattr(tasks_app, "queue_statuses", recording)
    assert Api(offload.asgi(tasks_app)).call("GET", "/v1/queues").status_code == 200
    assert threads, "the route did not call the App"
    assert threads[0] is not threading.current_thread()  # the loop runs on this thread
