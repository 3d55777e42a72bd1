"""The dashboard in a real browser, on both backends: Debian's Chromium drives pages of a
real `offload serve`, with a real worker process on loopback. Each page loads with no
Content-Security-Policy violation and no script error; live parts update without a
reload; hostile data injects nothing (RELIABILITY 33).

Screenshots go to the test's directory; with OFFLOAD_UPDATE_SCREENSHOTS=1 the SQLite run
also writes them into docs/images/dashboard/ (the docs' pictures)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Page

import offload
from tests.server.conftest import free_port, wait_up
from tests.server.dashboard import PAYLOADS, fill

ROOT = Path(__file__).resolve().parents[2]
DOCS_IMAGES = ROOT / "docs" / "images" / "dashboard"
APP = "tests.apps.dashboard:app"


@dataclass
class Site:
    """A running dashboard: its URL, an App on its database, where screenshots go."""

    base: str
    app: offload.App
    url: str
    shots: Path
    problems: list[str] = field(default_factory=list)

    def shoot(self, page: Page, name: str) -> None:
        """Save a screenshot as a test artifact (and for the docs, when asked)."""
        page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)
        if os.environ.get("OFFLOAD_UPDATE_SCREENSHOTS") == "1" and self.url.startswith("sqlite"):
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(DOCS_IMAGES / f"{name}.png"), full_page=True)

    def violations(self) -> list[str]:
        """The CSP violations and script errors noted (not failed loads)."""
        return [p for p in self.problems if "Content Security Policy" in p or "page error" in p]

    def watch(self, page: Page) -> None:
        """Note every CSP violation and script error of `page`."""

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.problems.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "OFFLOAD_URL": url, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}


def _test_app(url: str) -> offload.App:
    """An App on `url` with the tasks and schedules of the test app, migrated."""
    from tests.apps import dashboard

    app = offload.App(url)
    for name in dashboard.app.registry.names():
        app.registry.add(dashboard.app.registry.get(name))
    app.schedules.update(dashboard.app.schedules)
    app.migrate()
    return app


@pytest.fixture
def site(
    migrated_db_url: str, spawned: list[subprocess.Popen[bytes]], tmp_path: Path
) -> Iterator[Site]:
    """`offload serve` of the test app and a worker of its `dash` queue."""
    app = _test_app(migrated_db_url)
    app.backend.schedules.sync(list(app.schedules.values()))
    port = free_port()
    env = _env(migrated_db_url)
    cli = [sys.executable, "-m", "offload", "--app", APP]
    worker = [*cli, "worker", "--executor", "thread", "-c", "4", "-q", "dash"]
    spawned.append(subprocess.Popen([*worker, "--poll-interval", "0.2"], env=env, cwd=ROOT))
    server = subprocess.Popen([*cli, "serve", "--port", str(port)], env=env, cwd=ROOT)
    spawned.append(server)
    base = f"http://127.0.0.1:{port}"
    wait_up(server, base)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    yield Site(base, app, migrated_db_url, shots)
    app.close()


def _state(app: offload.App, job_id: int) -> offload.JobState:
    return app.job(job_id).job().state


def _wait_state(app: offload.App, job_id: int, state: offload.JobState) -> None:
    handle = app.job(job_id)
    for _ in range(300):
        if handle.job().state == state:
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never became {state}: {handle.job().state}")


def test_each_page_loads_without_a_csp_violation(site: Site, page: Page) -> None:
    site.watch(page)
    ok = site.app.registry.get("dash.ok")
    handle = site.app.enqueue("dash.ok", [42], {"tags": ["vip"]})
    dead = site.app.enqueue("dash.flaky", ["order-7"])
    _wait_state(site.app, dead.id, offload.JobState.DEAD)
    _wait_state(site.app, handle.id, offload.JobState.SUCCEEDED)
    flow = offload.chord(
        [site.app.signature("dash.slow", seconds=0.1) for _ in range(3)],
        site.app.signature("dash.slow", seconds=0.1),
    )
    workflow = flow.enqueue(name="fan-in")
    assert ok is not None
    for name, path in [
        ("overview", "/"),
        ("jobs", "/jobs"),
        ("job", f"/jobs/{dead.id}"),
        ("dead", "/dead"),
        ("workflows", "/workflows"),
        ("workflow", f"/workflows/{workflow.id}"),
        ("cron", "/cron"),
        ("workers", "/workers"),
        ("topics", "/topics"),
    ]:
        page.goto(site.base + path)
        page.wait_for_load_state("networkidle") if path != "/" else page.wait_for_timeout(1500)
        assert page.locator("h1").count() == 1, path
        if path == "/":  # after the live table's first swap: every state still a column
            headers = page.locator("#queues th").all_inner_texts()
            assert {"available", "succeeded", "dead"} <= set(headers), headers
            assert page.locator('#queues tr[data-queue="dash"]').count() == 1
        site.shoot(page, name)
    assert site.problems == [], site.problems


def test_retry_a_dead_job_and_watch_it_succeed_live(site: Site, page: Page) -> None:
    site.watch(page)
    dead = site.app.enqueue("dash.flaky", ["order-9"])
    _wait_state(site.app, dead.id, offload.JobState.DEAD)
    page.goto(f"{site.base}/jobs/{dead.id}")
    page.wait_for_selector("#job-panel[data-state=dead]")
    assert "payment service down for order-9" in page.inner_text("#job-live")
    page.evaluate("window.loadedOnce = true")  # gone if the page ever reloads
    page.click("#retry-job")
    page.wait_for_selector("#job-message >> text=Retried")
    page.wait_for_selector("#job-panel[data-state=succeeded]", timeout=30_000)
    assert page.evaluate("window.loadedOnce") is True
    assert '"paid order-9"' in page.inner_text("#job-result")
    page.wait_for_selector("#events li[data-kind=succeeded]", timeout=10_000)
    assert _state(site.app, dead.id) == offload.JobState.SUCCEEDED
    site.shoot(page, "job-retried")
    assert site.problems == [], site.problems


def test_pause_a_cron_schedule(site: Site, page: Page) -> None:
    site.watch(page)
    page.goto(site.base + "/cron")
    row = page.locator('tr[data-schedule="nightly-report"]')
    assert row.locator(".schedule-state").inner_text() == "active"
    row.get_by_role("button", name="Pause").click()
    page.wait_for_selector('tr[data-schedule="nightly-report"] .state-paused')
    assert [s.paused for s in site.app.schedule_statuses()] == [True]
    site.shoot(page, "cron-paused")
    page.locator('tr[data-schedule="nightly-report"]').get_by_role("button", name="Resume").click()
    page.wait_for_selector('tr[data-schedule="nightly-report"] >> text=active')
    assert [s.paused for s in site.app.schedule_statuses()] == [False]
    assert site.problems == [], site.problems


def test_a_workflow_graph_fills_in_live(site: Site, page: Page) -> None:
    site.watch(page)
    flow = offload.chain(
        site.app.signature("dash.slow", seconds=1.0),
        offload.group(*(site.app.signature("dash.slow", seconds=1.0) for _ in range(3))),
        site.app.signature("dash.slow", seconds=0.5),
    )
    handle = flow.enqueue(name="pipeline")
    page.goto(f"{site.base}/workflows/{handle.id}")
    page.evaluate("window.loadedOnce = true")
    assert page.locator("svg.graph g.node").count() == 5
    first = page.locator("svg.graph g.node[data-state=succeeded]").count()
    assert first < 5
    done = page.locator("svg.graph g.node[data-state=succeeded]")
    deadline = time.monotonic() + 30  # polled from here: the page's CSP forbids eval
    while done.count() < 2:
        assert time.monotonic() < deadline, "the graph never filled in"
        page.wait_for_timeout(100)
    partway = done.count()
    page.wait_for_selector("#workflow-panel[data-state=succeeded]", timeout=30_000)
    assert page.locator("svg.graph g.node[data-state=succeeded]").count() == 5
    assert first < partway or partway < 5  # seen part way, then whole
    assert page.evaluate("window.loadedOnce") is True
    assert page.locator("svg.graph line.edge").count() == 1 * 3 + 3 * 1
    site.shoot(page, "workflow-done")
    assert site.problems == [], site.problems


#: Finds what a payload would have added to the DOM: elements with an `xss` id, inline
#: handlers, styles or javascript: URLs, and `window.__xss`.
_INJECTED = """() => {
  const found = [];
  if (window.__xss !== undefined) found.push('window.__xss=' + window.__xss);
  if (window.parent.__xss !== undefined) found.push('parent.__xss');
  for (const el of document.querySelectorAll('*')) {
    if (el.id && el.id.startsWith('xss')) found.push('#' + el.id);
    if (['IFRAME', 'OBJECT', 'IMG', 'STYLE', 'MATH'].includes(el.tagName))
      found.push(el.tagName);
    if (el.tagName === 'SCRIPT' && !el.src) found.push('inline script');
    for (const attr of el.attributes) {
      // uPlot sizes its own nodes through el.style (CSSOM, which the CSP allows)
      const drawn = attr.name === 'style' && el.closest('figure.chart');
      if (attr.name.startsWith('on') || (attr.name === 'style' && !drawn))
        found.push(el.tagName + ' ' + attr.name);
      const url = ['href', 'src', 'data', 'action'].includes(attr.name);
      if (url && /^\\s*javascript:/i.test(attr.value))
        found.push(el.tagName + ' ' + attr.name + '=' + attr.value);
    }
  }
  return found;
}"""


def test_hostile_data_injects_nothing_on_any_page(site: Site, page: Page) -> None:
    site.watch(page)
    filler = offload.App(site.url)  # tasks of its own, none of the test app's
    try:
        filled = fill(filler)
    finally:
        filler.close()
    pages = ["/", "/jobs", "/dead", "/workflows", "/cron", "/workers", "/topics"]
    pages += [f"/jobs/{job_id}" for job_id in filled.hostile]
    pages += [
        f"/jobs?queue={PAYLOADS[2]}",
        f"/jobs?task={PAYLOADS[1]}",
        f"/workflows/{filled.workflow}",
    ]
    for path in pages:
        answer = page.goto(site.base + path)
        assert answer is not None
        policy = answer.headers["content-security-policy"]
        assert "unsafe-inline" not in policy and "script-src 'self'" in policy
        page.wait_for_timeout(300)  # let htmx, the SSE swaps and any payload's timers run
        assert page.evaluate(_INJECTED) == [], path
    page.goto(f"{site.base}/jobs/{filled.hostile[1]}")
    assert "<img src=x onerror=" in page.inner_text("#job-args")  # shown as text
    assert site.violations() == [], site.violations()


@pytest.fixture
def secured_site(
    migrated_db_url: str, spawned: list[subprocess.Popen[bytes]], tmp_path: Path
) -> Iterator[tuple[Site, dict[str, str]]]:
    """`offload serve` of the test app with tokens checked, and a read and an admin token."""
    app = _test_app(migrated_db_url)
    tokens = {scope: app.create_token(f"{scope}-user", scope) for scope in ("read", "admin")}
    port = free_port()
    cli = [sys.executable, "-m", "offload", "--app", APP, "serve", "--port", str(port)]
    server = subprocess.Popen(cli, env=_env(migrated_db_url), cwd=ROOT)
    spawned.append(server)
    base = f"http://127.0.0.1:{port}"
    wait_up(server, base)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    yield Site(base, app, migrated_db_url, shots), tokens
    app.close()


def test_sign_in_with_a_token_read_only_sees_no_actions(
    secured_site: tuple[Site, dict[str, str]], page: Page
) -> None:
    site, tokens = secured_site
    site.watch(page)
    job = site.app.enqueue("dash.ok", [1])
    page.goto(f"{site.base}/jobs/{job.id}")
    assert page.locator("input#token").count() == 1
    site.shoot(page, "login")
    page.fill("#token", tokens["read"])
    page.click("button[type=submit]")
    page.wait_for_selector("#job-panel")
    assert page.url == f"{site.base}/jobs/{job.id}"
    assert page.locator("#job-actions").count() == 0
    assert "(read-only)" in page.inner_text("header")
    page.goto(site.base + "/")
    assert page.locator("form[action='/queues/pause']").count() == 0
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert (
        cookies["offload_session"]["httpOnly"]
        and cookies["offload_session"]["sameSite"] == "Strict"
    )
    page.click("text=Sign out")
    page.wait_for_selector("input#token")  # signed out: the overview asks for a token
    page.goto(f"{site.base}/jobs")
    assert page.locator("input#token").count() == 1
    page.fill("#token", tokens["admin"])
    page.click("button[type=submit]")
    page.wait_for_selector("h1 >> text=Jobs")
    assert page.locator("form#selected").count() == 1
    assert site.violations() == [], site.violations()  # the sign-in pages answer 401


def test_a_form_on_another_origin_cannot_pause_a_queue(site: Site, page: Page) -> None:
    """RELIABILITY 34 in a browser: a page on another origin posts to the dashboard, with
    the user's cookies; the server refuses it (403) and the queue stays as it was."""
    site.app.enqueue("dash.parked", [1])
    page.goto(site.base + "/")  # the user's visit: the CSRF cookie is set
    evil_port = free_port()
    evil = site.shots / "evil.html"
    evil.write_text(
        f'<form id="f" method="post" action="{site.base}/queues/pause">'
        '<input name="name" value="parked"><input name="csrf" value="guessed">'
        '<button id="go">win a prize</button></form>'
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(evil_port), "--bind", "127.0.0.1"],
        cwd=evil.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                page.goto(f"http://127.0.0.1:{evil_port}/evil.html")
                break
            except Exception:
                time.sleep(0.1)
        with page.expect_response(lambda r: r.url.endswith("/queues/pause")) as answer:
            page.click("#go")
        assert answer.value.status == 403
    finally:
        server.terminate()
        server.wait(10)
    assert not site.app.queue_status("parked").paused


def test_filter_jobs_by_an_argument_value(site: Site, page: Page) -> None:
    site.watch(page)
    wanted = site.app.enqueue("dash.ok", [7], {"tags": ["vip", "eu"]})
    other = site.app.enqueue("dash.ok", [8], {"tags": ["eu"]})
    _wait_state(site.app, other.id, offload.JobState.SUCCEEDED)
    page.goto(site.base + "/jobs")
    page.fill("input[name=args]", '{"tags": ["vip"]}')
    page.click("#filters button[type=submit]")
    page.wait_for_selector(f'tr[data-job="{wanted.id}"]')
    assert page.locator("tr[data-job]").count() == 1
    site.shoot(page, "jobs-filtered")
    page.fill("input[name=args]", "{not json")
    page.click("#filters button[type=submit]")
    page.wait_for_selector("#filter-problems")
    assert "not JSON" in page.inner_text("#filter-problems")
    assert site.violations() == [], site.violations()


def test_bulk_cancel_by_filter_shows_the_count_first(site: Site, page: Page) -> None:
    site.watch(page)
    site.app.enqueue_many("dash.parked", [offload.call(i) for i in range(1500)])
    page.goto(site.base + "/jobs?queue=parked&state=available")
    page.click("text=Cancel all…")
    page.wait_for_selector("#bulk-count")
    assert page.inner_text("#bulk-count").startswith("1500 jobs match")
    assert site.app.count_jobs(queue="parked", state="cancelled") == 0  # asked, not done
    site.shoot(page, "bulk-confirm")
    page.click("#confirm-bulk")
    page.wait_for_selector("#bulk-progress[data-done=yes]", timeout=30_000)
    assert page.get_attribute("#bulk-progress", "data-changed") == "1500"
    assert int(page.get_attribute("#bulk-progress", "data-batches") or 0) >= 2
    site.shoot(page, "bulk-done")
    assert site.app.count_jobs(queue="parked", state="cancelled") == 1500
    assert site.violations() == [], site.violations()
