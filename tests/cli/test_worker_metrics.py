"""`offload worker --metrics-port`: a real worker process with two child executors, scraped
over HTTP while it drains jobs, counts every job once (its supervisor counts what the
children ran); bad ports, a taken port and a missing extra each fail with one line naming
what is wrong, before any job runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import offload
from tests.cli.helpers import APP, ROOT, assert_one_line_error, base_env, offload_cli

#: Two child processes; retries looked for every 0.1 s, not 1 s.
WORKER = ("-c", "2", "--poll-interval", "0.1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The worker's samples by (name, labels), parsed by prometheus_client."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **want: str
) -> float:
    """The sum of `name`'s samples whose labels include `want`."""
    items = set(want.items())
    return sum(v for (n, labels), v in found.items() if n == name and items <= labels)


def test_a_worker_process_serves_counts_that_match_the_jobs_it_ran(
    store: offload.App, env: dict[str, str]
) -> None:
    ran_in = [store.enqueue("whoami", [0.1]) for _ in range(6)]
    added = [store.enqueue("add", [n, 1]) for n in range(20)]
    failing = store.enqueue("fail")  # 3 attempts: 2 retries, then dead
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "offload.cli", "worker", *WORKER, "--metrics-port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        while time.monotonic() < deadline:
            try:
                found = scrape(port)
            except httpx.TransportError:  # not listening yet
                found = {}
            if total(found, "offload_jobs_finished_total") == 29:
                break
            time.sleep(0.2)
        assert total(found, "offload_jobs_finished_total") == 29, found
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr

    pids = {pid for handle in ran_in for pid in handle.result(timeout=0)}
    assert len(pids) == 2 and process.pid not in pids  # two children ran them
    assert [h.result(timeout=0) for h in added] == [n + 1 for n in range(20)]
    assert failing.status() is offload.JobState.DEAD
    finished = "offload_jobs_finished_total"
    assert total(found, "offload_jobs_started_total", task="whoami") == 6
    assert total(found, "offload_jobs_started_total", task="add") == 20
    assert total(found, "offload_jobs_started_total", task="fail") == 3
    assert total(found, finished, task="whoami", outcome="succeeded") == 6
    assert total(found, finished, task="add", outcome="succeeded", queue="default") == 20
    assert total(found, finished, task="fail", outcome="retrying") == 2
    assert total(found, finished, task="fail", outcome="dead") == 1
    assert total(found, "offload_job_duration_seconds_count") == 29
    assert total(found, "offload_job_wait_seconds_count") == 29
    assert total(found, "offload_job_duration_seconds_sum", task="whoami") >= 0.6
    for name, labels in found:
        assert {key for key, _ in labels} <= {"queue", "task", "outcome", "le"}, name


@pytest.fixture
def sqlite_env(sqlite_url: str) -> dict[str, str]:
    """The test app on a fresh SQLite file (bad input fails alike on every backend)."""
    return base_env(OFFLOAD_APP=APP, OFFLOAD_URL=sqlite_url)


@pytest.mark.parametrize("port", ["0", "65536", "-1", "http"])
def test_a_bad_metrics_port_is_a_usage_error_naming_it(
    sqlite_env: dict[str, str], port: str
) -> None:
    result = offload_cli("worker", "--burst", "--metrics-port", port, env=sqlite_env)
    assert_one_line_error(result, 2, "--metrics-port", port)


def test_a_taken_metrics_port_fails_before_any_job_runs(sqlite_env: dict[str, str]) -> None:
    from tests.apps import basic

    app = offload.App(sqlite_env["OFFLOAD_URL"])
    try:
        app.migrate()
        app.registry.add(basic.app.registry.get("add"))
        handle = app.enqueue("add", [1, 2])
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = str(taken.getsockname()[1])
            result = offload_cli("worker", "--burst", "--metrics-port", port, env=sqlite_env)
        assert_one_line_error(result, 1, f"cannot serve metrics on 127.0.0.1:{port}")
        assert handle.status() is offload.JobState.AVAILABLE
    finally:
        app.close()


def _without_prometheus(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`offload ARGS` in a process where prometheus_client cannot be imported."""
    script = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None  # as if not installed\n"
        "from offload.cli.entry import main\n"
        f"main({list(args)!r})\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**env, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_the_metrics_extra_the_flag_names_it(sqlite_env: dict[str, str]) -> None:
    done = _without_prometheus(sqlite_env, "worker", "--burst", "--metrics-port", "9999")
    assert_one_line_error(
        done,
        1,
        "--metrics-port needs the metrics extra (prometheus_client is missing)",
        "pip install 'offload[metrics]'",
    )


def test_without_the_metrics_extra_a_worker_without_the_flag_runs(
    sqlite_env: dict[str, str],
) -> None:
    done = _without_prometheus(sqlite_env, "worker", "--burst", "--executor", "thread")
    assert done.returncode == 0, done.stderr
