"""The event channel's example page in a real browser: Debian's Chromium driven by
Playwright enqueues a report, and the page shows its progress and result without a reload.

Chromium must be installed (scripts/test installs the `chromium` package): a missing
browser fails this test, it never skips it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

import offload
from tests.server.conftest import free_port, wait_up

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(migrated_db_url: str, spawned: list[subprocess.Popen[bytes]]) -> Iterator[str]:
    """The example site (page and API) and a worker of its app, on a fresh database."""
    env = {
        **os.environ,
        "OFFLOAD_URL": migrated_db_url,
        "REPORT_STEP_SECONDS": "0.3",
        "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path]),
    }
    offload_cli = [sys.executable, "-m", "offload", "--app", "examples.report.app:app"]
    worker = [*offload_cli, "worker", "--executor", "thread", "-c", "2", "--poll-interval", "0.5"]
    spawned.append(subprocess.Popen(worker, env=env, cwd=ROOT))
    port = free_port()
    server = [sys.executable, "-m", "uvicorn", "examples.report.app:web", "--port", str(port)]
    spawned.append(subprocess.Popen(server, env=env, cwd=ROOT))
    base = f"http://127.0.0.1:{port}"
    for process in spawned:
        wait_up(process, base + "/api")  # the API's /health, mounted under /api
    yield base


def test_the_page_shows_progress_and_the_result_without_a_reload(
    site: str, page: Page, migrated_db_url: str
) -> None:
    page.goto(site + "/")
    page.evaluate("window.loadedOnce = true")  # gone if the page ever reloads
    page.click("#build")

    page.wait_for_function("document.getElementById('job').textContent !== 'none yet'")
    job_id = int(page.text_content("#job") or "")
    # Part way: the bar moved and the message names the rows, while the job still runs.
    page.wait_for_function(
        "document.getElementById('message').textContent.includes('of 5 rows')"
        " && document.getElementById('state').textContent === 'running'",
        timeout=30_000,
    )
    assert 0 < float(page.get_attribute("#bar", "value") or 0) < 1
    page.wait_for_function(
        "document.getElementById('state').textContent === 'succeeded'"
        " && document.getElementById('result').textContent !== ''",
        timeout=30_000,
    )
    assert page.evaluate("window.loadedOnce") is True
    assert float(page.get_attribute("#bar", "value") or 0) == 1
    assert page.text_content("#message") == "5 of 5 rows"
    app = offload.App(migrated_db_url)
    try:
        job = app.job(job_id).job()
    finally:
        app.close()
    assert job.state == offload.JobState.SUCCEEDED
    shown = page.text_content("#result") or ""
    assert '"total": 15' in shown and '"user": "ada"' in shown
    assert job.result == {"user": "ada", "rows": 5, "total": 15}
