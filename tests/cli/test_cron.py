"""`offload scheduler` and `offload cron ...`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import orjson

import offload
from tests.cli.helpers import ROOT, assert_one_line_error, base_env, offload_cli

APP = "tests.apps.cron:app"


def test_scheduler_fires_ticks_and_cron_commands_steer_it(db_url: str) -> None:
    env = base_env(OFFLOAD_APP=APP, OFFLOAD_URL=db_url)
    assert offload_cli("migrate", env=env).returncode == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "offload.cli", "scheduler", "--log-level", "WARNING"],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # until the scheduler has fired a tick of every_second_all
            listed = offload_cli("cron", "list", "--json", env=env)
            assert listed.returncode == 0, listed.stderr
            schedules = {s["name"]: s for s in orjson.loads(listed.stdout)}
            if schedules.get("every_second_all", {}).get("last_job_id") is not None:
                break
            assert time.monotonic() < deadline, f"no tick fired within 30 s: {schedules}"
            time.sleep(0.2)
        assert set(schedules) == {f"every_second_{p}" for p in ("all", "last", "skip")}
        first = schedules["every_second_all"]
        assert first["cron"] == "* * * * * *" and not first["paused"]
        assert first["last_job_id"] is not None and first["next_run"] > first["last_tick"]

        paused = offload_cli("cron", "pause", "every_second_all", env=env)
        assert paused.returncode == 0 and "paused" in paused.stdout
        app = offload.App(db_url)

        def ticks() -> int:
            jobs = app.jobs(limit=500)
            return len([j for j in jobs if j.meta.get("schedule") == "every_second_all"])

        before = ticks()
        time.sleep(2.5)
        assert ticks() == before, "a paused schedule fires nothing"
        assert offload_cli("cron", "resume", "every_second_all", env=env).returncode == 0
        deadline = time.monotonic() + 30
        while ticks() == before:  # a resumed schedule fires again
            assert time.monotonic() < deadline, "the resumed schedule fired nothing in 30 s"
            time.sleep(0.2)

        ran = offload_cli("cron", "run", "every_second_skip", env=env)
        assert ran.returncode == 0
        job = app.job(int(ran.stdout.strip())).job()
        assert job.meta == {"schedule": "every_second_skip", "manual": True}
        app.close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)
    missing = offload_cli("cron", "pause", "nope", env=env)
    assert_one_line_error(missing, 1, "no schedule named 'nope'")
