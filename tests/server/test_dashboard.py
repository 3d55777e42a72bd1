"""The dashboard through the ASGI app, on both backends: every page, bad input as pages
(never a 500), sign-in with a token, CSRF, read-only tokens, and bulk actions by filter
in batches."""

from __future__ import annotations

import itertools
import threading
import time
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

import offload
from offload.dashboard import _actions, _charts, _live, _security
from tests.server.dashboard import PAYLOADS, Dash, checksum, fill, text_of

PAGES = ["/", "/jobs", "/dead", "/workflows", "/cron", "/workers", "/topics"]


@pytest.fixture
def dash(app: offload.App) -> Dash:
    """A client of the API with the dashboard, tokens not checked."""
    return Dash(offload.asgi(app, auth=False))


def assert_secured(answer: Any) -> None:
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert answer.headers["x-frame-options"] == "DENY"


def test_every_page_renders_what_is_stored(app: offload.App, dash: Dash) -> None:
    filled = fill(app)
    for path in [*PAGES, f"/jobs/{filled.dead}", f"/workflows/{filled.workflow}"]:
        answer = dash.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])
        assert answer.headers["content-type"].startswith("text/html")
        assert_secured(answer)
        assert "<script>" not in answer.text, path  # scripts are files only
        assert " style=" not in answer.text and "<style" not in answer.text, path
    overview = text_of(dash.get("/").text)
    assert "dash" in overview and "Pause" in overview
    dead = dash.get(f"/jobs/{filled.dead}").text
    assert "ValueError" in dead and "boom: the first" in dead and "Traceback" in dead
    succeeded = dash.get(f"/jobs/{filled.succeeded}").text
    assert "&#34;user&#34;: 42" in succeeded  # the result, escaped JSON
    graph = dash.get(f"/workflows/{filled.workflow}").text
    assert graph.count('class="node node-succeeded"') == 2 and "<line" in graph
    assert "nightly" in dash.get("/cron").text and "0 3 * * *" in dash.get("/cron").text
    assert "host-1" in dash.get("/workers").text
    topics = text_of(dash.get("/topics").text)
    assert "orders" in topics and "mailer" in topics


def test_every_payload_is_escaped(app: offload.App, dash: Dash) -> None:
    filled = fill(app)
    pages = [*PAGES, *(f"/jobs/{job_id}" for job_id in filled.hostile)]
    pages += [
        f"/jobs?queue={PAYLOADS[2]}",
        f"/jobs?task={PAYLOADS[1]}",
        f"/jobs?args={PAYLOADS[6]}",
    ]
    for path in pages:
        injected = Injected.find(dash.get(path).text)
        assert injected == [], (path, injected)
    detail = dash.get(f"/jobs/{filled.hostile[1]}").text
    assert "&lt;img src=x onerror=" in detail


class Injected(HTMLParser):
    """Elements and attributes a payload would add, in a page as a browser parses it."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    @classmethod
    def find(cls, html: str) -> list[str]:
        parser = cls()
        parser.feed(html)
        parser.close()
        return parser.found

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        marked = (dict(attrs).get("id") or "").startswith("xss")
        if tag in ("img", "iframe", "object", "style", "math", "textarea") or (
            tag in ("input", "svg") and marked
        ):
            self.found.append(tag)
        if tag == "script" and not dict(attrs).get("src"):
            self.found.append("inline script")
        for name, value in attrs:
            if (
                name.startswith("on")
                or name == "style"
                or (name == "id" and (value or "").startswith("xss"))
            ):
                self.found.append(f"{tag} {name}={value}")
            if name in ("href", "src", "data", "action") and (value or "").lower().startswith(
                "javascript:"
            ):
                self.found.append(f"{tag} {name}={value}")


def test_static_files_are_served_with_the_headers(dash: Dash) -> None:
    for name in ("dashboard.js", "dashboard.css", "vendor/htmx.min.js", "vendor/uPlot.iife.min.js"):
        answer = dash.get(f"/static/{name}")
        assert answer.status_code == 200, name
        assert_secured(answer)
    assert dash.get("/static/vendor/htmx.LICENSE").status_code == 200


def test_an_unknown_job_or_workflow_is_a_404_page(dash: Dash) -> None:
    for path in ("/jobs/987654", "/workflows/987654"):
        answer = dash.get(path)
        assert answer.status_code == 404
        assert "Not found" in answer.text and "987654" in answer.text
        assert_secured(answer)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("state=bogus", "state"),
        ("after=yesterday-ish", "after"),
        ("before=2026-13-45", "before"),
        ("args={not json", "args"),
        ("args=null", "args"),
        ("before_id=abc", "before_id"),
        ("before_id=99999999999999999999999", "before_id"),
    ],
)
def test_a_malformed_filter_is_named_on_the_page(dash: Dash, query: str, field: str) -> None:
    answer = dash.get(f"/jobs?{query}")
    assert answer.status_code == 400
    assert 'id="filter-problems"' in answer.text
    assert f"<b>{field}</b>" in answer.text


def test_pages_go_by_keyset_and_end_with_a_message(app: offload.App, dash: Dash) -> None:
    fill(app, hostile=False)
    task = app.registry.get("dash.ok")
    assert task is not None
    app.enqueue_many("dash.ok", [offload.call(i) for i in range(120)])
    first = dash.get("/jobs?queue=dash").text
    assert first.count('<tr data-job="') == 50
    seen: list[str] = []
    page = first
    while 'id="next-page"' in page:
        link = page.split('id="next-page" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        seen.append(link)
        page = dash.get(link).text
    assert len(seen) == 2  # 50 + 50 + the rest
    past = dash.get("/jobs?queue=dash&before_id=1")
    assert past.status_code == 200
    assert "No more jobs past this point" in past.text


def test_filters_narrow_the_list(app: offload.App, dash: Dash) -> None:
    filled = fill(app, hostile=False)
    dead = dash.get("/dead").text
    assert f'data-job="{filled.dead}"' in dead and f'data-job="{filled.succeeded}"' not in dead
    assert f'formaction="/jobs/{filled.dead}/retry"' in dead  # a Retry button per dead job
    by_task = dash.get("/jobs?task=dash.ok&state=succeeded").text
    assert (
        f'data-job="{filled.succeeded}"' in by_task and f'data-job="{filled.queued}"' not in by_task
    )
    recent = dash.get("/jobs?after=1h").text
    assert f'data-job="{filled.queued}"' in recent
    assert "No jobs match" in dash.get("/jobs?before=2000-01-01T00:00:00Z").text


# -- actions and CSRF -------------------------------------------------------------------


def test_actions_change_what_they_say(app: offload.App, dash: Dash) -> None:
    filled = fill(app, hostile=False)
    retried = dash.post(f"/jobs/{filled.dead}/retry", {"next": f"/jobs/{filled.dead}"})
    assert retried.status_code == 303
    assert retried.headers["location"] == f"/jobs/{filled.dead}"
    assert app.job(filled.dead).job().state == offload.JobState.AVAILABLE
    assert dash.post(f"/jobs/{filled.queued}/cancel").status_code == 303
    assert app.job(filled.queued).job().state == offload.JobState.CANCELLED
    htmx = dash.post(f"/jobs/{filled.queued}/retry", headers={"hx-request": "true"})
    assert htmx.status_code == 200 and "Retried: the job is queued again." in htmx.text
    assert app.job(filled.queued).job().state == offload.JobState.AVAILABLE
    assert dash.post("/queues/pause", {"name": "dash"}).status_code == 303
    assert app.queue_status("dash").paused
    assert dash.post("/queues/resume", {"name": "dash"}).status_code == 303
    assert not app.queue_status("dash").paused
    assert dash.post("/cron/pause", {"name": "nightly"}).status_code == 303
    assert [s.paused for s in app.schedule_statuses()] == [True]
    ran = dash.post("/cron/run", {"name": "nightly"})
    assert ran.status_code == 303 and ran.headers["location"].startswith("/jobs/")
    replayed = dash.post("/topics/replay", {"topic": "orders", "group": "mailer", "position": "0"})
    assert replayed.status_code == 303
    deleted = dash.post(f"/jobs/{filled.succeeded}/delete")
    assert deleted.status_code == 303
    assert dash.get(f"/jobs/{filled.succeeded}").status_code == 404
    selected = dash.post("/jobs/selected", {"operation": "cancel", "ids": [str(filled.dead)]})
    assert selected.status_code == 303
    assert app.job(filled.dead).job().state == offload.JobState.CANCELLED


def test_bad_actions_are_pages_not_500s(app: offload.App, dash: Dash) -> None:
    fill(app, hostile=False)
    bad: list[tuple[str, dict[str, Any]]] = [
        ("/queues/explode", {"name": "dash"}),
        ("/queues/pause", {}),
        ("/cron/pause", {"name": "no such schedule"}),
        ("/jobs/selected", {"operation": "retry"}),
        ("/jobs/selected", {"operation": "retry", "ids": ["x"]}),
        ("/jobs/selected", {"operation": "explode", "ids": ["1"]}),
        ("/jobs/987654/retry", {}),
        ("/topics/replay", {"topic": "orders", "group": "nobody", "position": "0"}),
        ("/topics/replay", {"topic": "orders", "group": "mailer", "position": "soon"}),
        ("/jobs/bulk", {"operation": "retry"}),
        ("/jobs/bulk", {"operation": "retry", "state": "bogus"}),
    ]
    for path, form in bad:
        answer = dash.post(path, form)
        assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text[:300])
        assert 'class="message message-error"' in answer.text


ACTIONS: list[tuple[str, dict[str, Any]]] = [
    ("/jobs/{dead}/retry", {}),
    ("/jobs/{queued}/cancel", {}),
    ("/jobs/{succeeded}/delete", {}),
    ("/queues/pause", {"name": "dash"}),
    ("/cron/pause", {"name": "nightly"}),
    ("/jobs/selected", {"operation": "delete", "ids": ["{succeeded}"]}),
    ("/topics/replay", {"topic": "orders", "group": "mailer", "position": "0"}),
    ("/workflows/{workflow}/cancel", {}),
]


@pytest.mark.parametrize("how", ["no token", "wrong token", "foreign origin", "cross-site"])
def test_cross_site_posts_are_refused_and_change_nothing(
    app: offload.App, dash: Dash, migrated_db_url: str, how: str
) -> None:
    filled = fill(app, hostile=False)
    ids = {k: str(v) for k, v in vars(filled).items() if isinstance(v, int)}
    dash.get("/")  # the CSRF cookie, as a visit sets it
    before = checksum(migrated_db_url)
    for template, form in ACTIONS:
        data = {
            k: [x.format(**ids) for x in v] if isinstance(v, list) else v for k, v in form.items()
        }
        headers = {}
        if how == "wrong token":
            data["csrf"] = "A" * 43
        if how == "foreign origin":
            headers["origin"] = "https://evil.example"
        if how == "cross-site":
            headers["sec-fetch-site"] = "cross-site"
        answer = dash.post(
            template.format(**ids),
            data,
            token=how in ("foreign origin", "cross-site"),
            headers=headers,
        )
        assert answer.status_code == 403, (template, how, answer.text[:300])
        assert "Refused" in answer.text
    assert checksum(migrated_db_url) == before


def test_every_get_leaves_the_database_unchanged(
    app: offload.App, dash: Dash, migrated_db_url: str
) -> None:
    filled = fill(app, hostile=False)
    before = checksum(migrated_db_url)
    for path in [
        *PAGES,
        f"/jobs/{filled.dead}",
        f"/workflows/{filled.workflow}",
        "/jobs/bulk?operation=retry&state=dead",
        "/jobs/bulk?operation=delete&queue=dash",
        "/jobs?args=42",
        "/charts.json?window=hour",
        "/charts.json?window=day",
        "/login",
        f"/jobs/{filled.dead}/retry",  # a GET on an action: 405, nothing done
    ]:
        assert dash.get(path).status_code < 500, path
    assert checksum(migrated_db_url) == before


# -- sign-in ----------------------------------------------------------------------------


@pytest.fixture
def secured(app: offload.App) -> tuple[Dash, dict[str, str]]:
    """The dashboard checking tokens, and an admin and a read-only token."""
    tokens = {
        "admin": app.create_token("ops", "admin"),
        "read": app.create_token("viewer", "read"),
        "enqueue": app.create_token("producer", "enqueue"),
    }
    return Dash(offload.asgi(app, auth=True)), tokens


def test_pages_need_a_signed_in_token(
    app: offload.App, secured: tuple[Dash, dict[str, str]]
) -> None:
    dash, tokens = secured
    filled = fill(app, hostile=False)
    first = dash.get(f"/jobs/{filled.dead}")
    assert first.status_code == 401 and 'name="token"' in first.text
    assert_secured(first)
    wrong = dash.post("/login", {"token": "offload_nope", "next": "/jobs"})
    assert wrong.status_code == 401 and "not a live API token" in wrong.text
    producer = dash.post("/login", {"token": tokens["enqueue"]})
    assert producer.status_code == 401 and "lacks the read scope" in producer.text
    signed = dash.post("/login", {"token": tokens["admin"], "next": f"/jobs/{filled.dead}"})
    assert signed.status_code == 303 and signed.headers["location"] == f"/jobs/{filled.dead}"
    cookie = next(v for k, v in signed.headers.multi_items() if k == "set-cookie")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=" in cookie
    assert "Secure" not in cookie  # plain http here; https sets Secure
    for path in PAGES:
        assert dash.get(path).status_code == 200, path
    assert dash.post(f"/jobs/{filled.dead}/retry").status_code == 303
    offsite = dash.post("/login", {"token": tokens["admin"], "next": "//evil.example/x"})
    assert offsite.headers["location"] == "/"


def test_an_expired_or_revoked_session_gets_the_login_page(
    app: offload.App, secured: tuple[Dash, dict[str, str]]
) -> None:
    dash, tokens = secured
    dash.post("/login", {"token": tokens["admin"]})
    assert dash.get("/jobs").status_code == 200
    past = int(time.time()) - 10
    dash.cookies.set("offload_session", _security.session_value(tokens["admin"], past))
    expired = dash.get("/jobs")
    assert expired.status_code == 401 and "Your session expired" in expired.text
    forged = _security.session_value(tokens["admin"], past + 10_000)[:-4] + "0000"
    dash.cookies.set("offload_session", forged)
    assert "damaged" in dash.get("/jobs").text
    dash.cookies.delete("offload_session")
    dash.post("/login", {"token": tokens["admin"]})
    assert dash.get("/jobs").status_code == 200
    app.revoke_token("ops")
    revoked = dash.get("/jobs")
    assert revoked.status_code == 401 and "no longer valid" in revoked.text
    assert dash.post("/queues/pause", {"name": "dash"}).status_code == 401


def test_a_live_stream_ends_once_its_token_is_revoked(
    app: offload.App, secured: tuple[Dash, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page left open must not keep receiving fresh HTML after its session ends."""
    monkeypatch.setattr(_live, "REFRESH", 0.2)
    dash, tokens = secured
    dash.post("/login", {"token": tokens["admin"]})
    answers: list[httpx.Response] = []
    streaming = threading.Thread(
        target=lambda: answers.append(dash.get("/live/overview")), daemon=True
    )
    streaming.start()
    time.sleep(1.0)
    assert streaming.is_alive(), "the stream ended while its session was valid"
    app.revoke_token("ops")
    streaming.join(15)
    assert not streaming.is_alive(), "the stream went on after its token was revoked"
    assert answers[0].status_code == 200 and "event: queues" in answers[0].text


def test_a_read_only_token_sees_no_actions_and_is_refused_them(
    app: offload.App, secured: tuple[Dash, dict[str, str]], migrated_db_url: str
) -> None:
    dash, tokens = secured
    filled = fill(app, hostile=False)
    dash.post("/login", {"token": tokens["read"]})
    for path in [*PAGES, f"/jobs/{filled.dead}", f"/workflows/{filled.workflow}"]:
        html = dash.get(path).text
        forms = html.count('method="post"')
        assert forms == 1, (path, forms)  # only "sign out"
        assert "(read-only)" in html
    before = checksum(migrated_db_url)
    for template, form in ACTIONS:
        ids = {k: str(v) for k, v in vars(filled).items() if isinstance(v, int)}
        data = {
            k: [x.format(**ids) for x in v] if isinstance(v, list) else v for k, v in form.items()
        }
        answer = dash.post(template.format(**ids), data)
        assert answer.status_code == 403 and "no admin scope" in answer.text, template
    assert checksum(migrated_db_url) == before


def test_mounted_under_a_prefix(app: offload.App) -> None:
    fill(app, hostile=False)
    host = Starlette(routes=[Mount("/ops", app=offload.asgi(app, auth=False))])
    dash = Dash(host)
    page = dash.get("/ops/jobs")
    assert page.status_code == 200
    assert 'href="/ops/static/dashboard.css"' in page.text and 'href="/ops/jobs/' in page.text
    assert dash.get("/ops/static/dashboard.js").status_code == 200
    paused = dash.post("/ops/queues/pause", {"name": "dash", "next": "/ops/"})
    assert paused.status_code == 303 and paused.headers["location"] == "/ops/"
    assert app.queue_status("dash").paused
    assert (
        dash.post("/ops/queues/resume", {"name": "dash", "next": "/elsewhere"}).headers["location"]
        == "/ops/"
    )


# -- what App.count_jobs, App.bulk, App.stats and the new filters give ---------------------


def test_filters_by_error_type_and_arguments(app: offload.App, dash: Dash) -> None:
    filled = fill(app, hostile=False)
    by_error = dash.get("/jobs?error_type=ValueError").text
    assert f'data-job="{filled.dead}"' in by_error and by_error.count('<tr data-job="') == 1
    assert "No jobs match" in dash.get("/jobs?error_type=KeyError").text
    by_kwarg = dash.get('/jobs?args={"tags": ["a"]}').text
    assert f'data-job="{filled.succeeded}"' in by_kwarg
    assert f'data-job="{filled.queued}"' not in by_kwarg
    by_arg = dash.get("/jobs?args=7").text
    assert f'data-job="{filled.queued}"' in by_arg and f'data-job="{filled.dead}"' not in by_arg
    assert f'data-job="{filled.dead}"' in dash.get('/jobs?args="the first"').text


def test_bulk_by_filter_confirms_the_count_then_runs_in_batches(
    app: offload.App, dash: Dash, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_actions, "BATCH_SIZE", 40)
    fill(app, hostile=False)
    app.enqueue_many("dash.ok", [offload.call(i) for i in range(230)], queue="bulk")
    confirm = dash.get("/jobs/bulk?operation=cancel&queue=bulk")
    assert confirm.status_code == 200
    assert '<p id="bulk-count"><b>230</b> jobs match' in confirm.text
    assert app.jobs(queue="bulk", state="available", limit=1)  # nothing changed yet
    started = dash.post("/jobs/bulk", {"operation": "cancel", "queue": "bulk", "expected": "230"})
    assert started.status_code == 303
    progress_url = started.headers["location"]
    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + 60
    while True:
        fragment = dash.get(progress_url + "?fragment=1").text
        numbers = {
            name: int(fragment.split(f'data-{name}="', 1)[1].split('"', 1)[0])
            for name in ("matched", "changed", "batches")
        }
        seen.append((numbers["matched"], numbers["batches"]))
        if 'data-done="yes"' in fragment:
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert numbers == {"matched": 230, "changed": 230, "batches": 6}  # 5 x 40 + 30
    assert "Done" in fragment and "hx-trigger" not in fragment  # stops polling
    assert app.count_jobs(queue="bulk", state="cancelled") == 230
    assert all(a <= b for a, b in itertools.pairwise(seen))
    page = dash.get(progress_url)
    assert page.status_code == 200 and "230 changed" in text_of(page.text)


def test_bulk_by_filter_refuses_a_null_argument_pattern_changing_nothing(
    app: offload.App, dash: Dash
) -> None:
    """A bare JSON null is not "no filter": a bulk action by `state` and `args=null` would
    otherwise take every job of that state."""
    fill(app, hostile=False)
    app.enqueue_many("dash.ok", [offload.call(i) for i in range(6)], queue="bulk")
    confirm = dash.get("/jobs/bulk?operation=cancel&state=available&args=null")
    assert confirm.status_code == 400
    assert "args_contains cannot be null" in text_of(confirm.text)
    started = dash.post(
        "/jobs/bulk",
        {"operation": "cancel", "state": "available", "args": "null", "expected": "6"},
    )
    assert started.status_code in (400, 422)
    assert app.count_jobs(queue="bulk", state="available") == 6


def test_bulk_by_filter_refuses_an_empty_filter(dash: Dash) -> None:
    assert dash.get("/jobs/bulk?operation=retry").status_code == 422
    refused = dash.get("/jobs/bulk?operation=retry&state=succeeded")
    assert refused.status_code == 422 and "retry takes jobs that are" in refused.text
    assert dash.post("/jobs/bulk", {"operation": "retry"}).status_code == 422
    assert dash.get("/bulk/12345").status_code == 404


def test_charts_read_the_stats(app: offload.App, dash: Dash) -> None:
    fill(app, hostile=False)
    assert sum(p.succeeded for p in app.stats(roll=False)) == 0  # the page rolls nothing up
    answer = dash.get("/charts.json?window=hour")
    assert sum(v or 0 for v in answer.json()["columns"]["succeeded"]) == 0
    app.backend.stats.roll()  # as a worker's scheduler does, every stats_interval
    for window, bucket in (("hour", 60), ("day", 900)):
        answer = dash.get(f"/charts.json?window={window}")
        assert answer.status_code == 200
        body = answer.json()
        assert body["bucket_seconds"] == bucket
        columns = body["columns"]
        assert set(columns) == {"at", *_charts.SERIES}
        assert len({len(values) for values in columns.values()}) == 1
        assert sum(v or 0 for v in columns["succeeded"]) >= 1
        assert sum(v or 0 for v in columns["dead"]) >= 1
    assert dash.get("/charts.json?window=week").status_code == 400


# -- live parts, through a real `offload serve` -------------------------------------------


def _sse_events(lines: Any, wanted: set[str], limit: float = 30) -> dict[str, str]:
    """The first data of each event name in `wanted` from an SSE body's lines."""
    found: dict[str, str] = {}
    name, data = "message", []
    deadline = time.monotonic() + limit
    for line in lines:
        assert time.monotonic() < deadline, f"no {wanted - set(found)} within {limit}s"
        if line.startswith("event:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:
            found.setdefault(name, "\n".join(data))
            name, data = "message", []
            if wanted <= set(found):
                return found
    raise AssertionError(f"the stream ended before {wanted - set(found)}")


def test_live_streams_send_rendered_fragments(
    migrated_db_url: str, start_api: Any, basic_app: offload.App
) -> None:
    server = start_api()
    job = basic_app.enqueue("add", [1, 2])
    with httpx.stream("GET", f"{server.base}/live/jobs/{job.id}", timeout=30) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert_secured(answer)
        events = _sse_events(answer.iter_lines(), {"job", "events"})
    assert 'id="job-panel" data-state="available"' in events["job"]
    assert 'data-kind="enqueued"' in events["events"]
    with httpx.stream("GET", f"{server.base}/live/overview", timeout=30) as answer:
        queues = _sse_events(answer.iter_lines(), {"queues"})["queues"]
    assert '<tr data-queue="default">' in queues and ">succeeded</th>" in queues
    assert httpx.get(f"{server.base}/live/jobs/987654").status_code == 404
