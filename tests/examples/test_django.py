"""The Django example project (examples/django_project) on both backends, each run in a
process of its own: see django_scenario.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import offload

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "examples" / "django_project"
SRC = Path(offload.__file__).resolve().parents[1]


def django_env(database: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env["EXAMPLE_DATABASE"] = database
    env["DJANGO_SETTINGS_MODULE"] = "project.settings"
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(PROJECT)])
    return env


def run(database: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT,
        env={**django_env(database), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_transactions_decide_and_results_come_back(db_url: str, tmp_path: Path) -> None:
    database = db_url if db_url.startswith("postgresql") else str(tmp_path / "django.db")
    done = run(database, str(Path(__file__).with_name("django_scenario.py")))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scenario ok" in done.stdout


def test_the_dashboard_is_for_staff_only(db_url: str, tmp_path: Path) -> None:
    database = db_url if db_url.startswith("postgresql") else str(tmp_path / "django.db")
    done = run(database, str(Path(__file__).with_name("django_dashboard_scenario.py")))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dashboard ok" in done.stdout


def test_the_dashboard_in_front_of_asgi_django_is_for_staff_only(
    db_url: str, tmp_path: Path
) -> None:
    database = db_url if db_url.startswith("postgresql") else str(tmp_path / "django.db")
    scenario = str(Path(__file__).with_name("django_asgi_scenario.py"))
    done = run(database, scenario, PYTHONPATH=os.pathsep.join([str(SRC), str(PROJECT), str(ROOT)]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "asgi dashboard ok" in done.stdout


def test_manage_py_offload_scheduler_fires_and_serve_answers(db_url: str, tmp_path: Path) -> None:
    """`manage.py offload scheduler` enqueues the project's periodic task (declared with
    `offload.contrib.django.schedule`), `manage.py offload worker` runs it, and `manage.py
    offload serve` answers over HTTP with the project's jobs."""
    sqlite = not db_url.startswith("postgresql")
    database = str(tmp_path / "django.db") if sqlite else db_url
    every_second = {"EXAMPLE_TIDY_ORDERS_CRON": "* * * * * *"}
    migrated = run(database, "manage.py", "migrate", "-v0", **every_second)
    assert migrated.returncode == 0, migrated.stderr
    jobs = offload.App(f"sqlite:///{database}" if sqlite else db_url)
    env = {**django_env(database), **every_second}
    manage = [sys.executable, "manage.py", "offload"]
    scheduler = subprocess.Popen([*manage, "scheduler"], cwd=PROJECT, env=env)
    try:
        deadline = time.monotonic() + 60
        while not jobs.jobs(task="shop.tasks.tidy_orders"):
            assert scheduler.poll() is None, "the scheduler stopped"
            assert time.monotonic() < deadline, "the scheduler fired no tick in 60 s"
            time.sleep(0.2)
    finally:
        scheduler.send_signal(signal.SIGTERM)
        assert scheduler.wait(30) == 0
    tick = jobs.jobs(task="shop.tasks.tidy_orders")[-1]
    assert (tick.queue, tick.meta["schedule"]) == ("mail", "shop.tasks.tidy_orders")
    worked = run(database, *manage[1:], "worker", "--burst", "-q", "mail", **every_second)
    assert worked.returncode == 0, worked.stderr
    assert jobs.job(tick.id).job().state is offload.JobState.SUCCEEDED

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = subprocess.Popen([*manage, "serve", "--port", str(port)], cwd=PROJECT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "offload serve stopped"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/jobs/{tick.id}") as got:
                    answer = json.loads(got.read())
                break
            except OSError:
                assert time.monotonic() < deadline, "offload serve did not answer in 60 s"
                time.sleep(0.2)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    assert (answer["task"], answer["state"]) == ("shop.tasks.tidy_orders", "succeeded")
    jobs.close()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            "offload-key",
            "settings.OFFLOAD has no key 'AUTO_MIGRTE'; did you mean 'AUTO_MIGRATE'?",
        ),
        (
            "tasks-option",
            "TASKS['default']['OPTIONS'] has no key 'max_attempt'; did you mean 'max_attempts'?",
        ),
        ("tasks-key", "TASKS['default'] has no key 'QUEUE'; did you mean 'QUEUES'?"),
        ("database-alias", "settings.OFFLOAD['DATABASE'] 'replica'; known databases: default"),
    ],
)
def test_a_wrong_setting_stops_the_project_naming_it(
    bad: str, message: str, tmp_path: Path
) -> None:
    env = django_env(str(tmp_path / "django.db"))
    env["DJANGO_SETTINGS_MODULE"] = "tests.examples.django_bad_settings"
    env["PYTHONPATH"] += os.pathsep + str(ROOT)
    env["BAD_SETTING"] = bad
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
