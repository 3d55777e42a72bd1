"""What the dashboard tests share: a cookie-keeping client of the ASGI app, hostile
payloads, and a database filled with something on every page."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from starlette.types import ASGIApp

import offload
from offload.core.records import WorkerInfo
from tests.conformance.helpers import RawDB

#: Twenty payloads that would add an element with an `xss` id, set `window.__xss`, or add an
#: attribute, if any page put them into its markup unescaped.
PAYLOADS = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=2" id="xss2">',
    '"><svg onload="window.__xss=3" id="xss3">',
    '\'><iframe id="xss4" srcdoc="<script>parent.__xss=4</script>">',
    '<b id="xss5">bold</b>',
    "</textarea><script>window.__xss=6</script>",
    "</pre><img id=xss7 src=x onerror=window.__xss=7>",
    "javascript:window.__xss=8",
    '<a id="xss9" href="javascript:window.__xss=9">x</a>',
    "{{ 7 * 7 }}{% if 1 %}<i id=xss10>{% endif %}",
    '<style id="xss11">body{display:none}</style>',
    '<div hx-get="/" hx-trigger="load" id="xss12">htmx</div>',
    '<div hx-ext="sse" sse-connect="/live/overview" id="xss13"></div>',
    '&lt;b id="xss14"&gt;pre-escaped&lt;/b&gt;',
    "<math><mtext><table><mglyph><style><img id=xss15 src=x onerror=window.__xss=15>",
    '" onmouseover="window.__xss=16" data-x="',
    "' onfocus='window.__xss=17' autofocus x='",
    "<input id=xss18 autofocus onfocus=window.__xss=18>",
    "\u2028<script>window.__xss=19</script>\u2029",
    '<object id="xss20" data="javascript:window.__xss=20"></object>',
]


class Dash:
    """A client of an ASGI app that keeps cookies, as a browser does (same origin)."""

    def __init__(self, asgi: ASGIApp, base_url: str = "http://dash.test") -> None:
        self.asgi = asgi
        self.base_url = base_url
        self.cookies = httpx.Cookies()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.asgi)
            async with httpx.AsyncClient(
                transport=transport, base_url=self.base_url, cookies=self.cookies
            ) as client:
                answer = await client.request(method, url, **kwargs)
                self.cookies.update(client.cookies)
                return answer

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    @property
    def csrf(self) -> str:
        """The CSRF token (from the cookie; the pages echo the same one)."""
        if "offload_csrf" not in self.cookies:
            self.get("/login")
        return str(self.cookies["offload_csrf"])

    def post(
        self, url: str, data: dict[str, Any] | None = None, *, token: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """A form POST from this origin, with the CSRF token unless `token` is False."""
        form = dict(data or {})
        if token:
            form["csrf"] = self.csrf
        headers = {"origin": self.base_url, **kwargs.pop("headers", {})}
        return self.request("POST", url, data=form, headers=headers, **kwargs)


def checksum(url: str) -> str:
    """A digest of every job, schedule, queue, topic and group row, and of the chart
    roll-ups and their cursor."""
    raw = RawDB(url)
    rows = {
        "jobs": raw.all_rows(),
        "schedules": raw.query("SELECT * FROM offload_schedules ORDER BY name"),
        "queues": raw.query("SELECT * FROM offload_queues ORDER BY name"),
        "topics": raw.query("SELECT * FROM offload_topics ORDER BY name"),
        "groups": raw.query("SELECT * FROM offload_groups ORDER BY topic, name"),
        "stats": raw.query("SELECT * FROM offload_stats ORDER BY bucket, queue"),
        "stats_cursor": raw.query("SELECT * FROM offload_stats_cursor"),
    }
    return hashlib.sha256(orjson.dumps(rows, default=str)).hexdigest()


@dataclass
class Filled:
    """Ids of what `fill` stored."""

    dead: int
    succeeded: int
    queued: int
    workflow: int
    hostile: list[int]


def hostile_error(text: str) -> type[Exception]:
    """An exception class whose very name is hostile text."""
    return type(text, (Exception,), {})


def _raiser(error: type[Exception]) -> Callable[..., None]:
    def raiser(*args: Any, **kwargs: Any) -> None:
        raise error(f"{args!r} {kwargs!r}")

    return raiser


def fill(app: offload.App, hostile: bool = True) -> Filled:
    """Store something for every page: a dead job with a traceback, a succeeded one, a
    queued one, a workflow, a schedule, a worker row and a topic with a group; with
    `hostile`, jobs whose task, queue, arguments, errors and traceback are `PAYLOADS`."""

    @app.task(name="dash.ok", queue="dash")
    def ok(user: int, tags: list[str] | None = None) -> dict[str, Any]:
        return {"user": user, "tags": tags}

    @app.task(name="dash.boom", queue="dash", retry=offload.RetryPolicy(max_attempts=1))
    def boom(note: str) -> None:
        raise ValueError(f"boom: {note}")

    @app.task(name="dash.step", queue="dash")
    def step(*args: Any) -> int:
        return len(args)

    @app.subscriber("orders", group="mailer")
    def mailer(message: offload.Message) -> None:
        return None

    @app.task(name="dash.nightly", queue="dash")
    def nightly() -> None:
        return None

    app.backend.schedules.sync([app.schedule(nightly, "0 3 * * *", name="nightly")])
    hostile_ids: list[int] = []
    if hostile:
        for index, payload in enumerate(PAYLOADS):
            task = app.task(
                name=f"{payload}#{index}",
                queue=f"q{index}{payload}",
                retry=offload.RetryPolicy(max_attempts=1),
            )(_raiser(hostile_error(payload)))
            hostile_ids.append(task.enqueue(payload, k=payload).id)
    dead = boom.enqueue("the first").id
    succeeded = ok.enqueue(42, tags=["a", "b"]).id
    flow = offload.chain(step.s(1), step.s(2))
    handle = flow.enqueue(name="two steps")
    queues = ["dash", *(f"q{i}{p}" for i, p in enumerate(PAYLOADS) if hostile)]
    worker = app.worker(
        executor="thread", burst=True, concurrency=2, queues=queues, install_signals=False
    )
    assert worker.run() == 0
    queued = ok.enqueue(7).id
    app.publish("orders", {"order": 1})
    stamp = datetime.now(UTC)
    app.backend.workers.register(
        WorkerInfo(
            id="worker-1",
            host="host-1",
            pid=4321,
            queues=queues[:3],
            concurrency=2,
            started_at=stamp,
            heartbeat_at=stamp,
        )
    )
    return Filled(dead, succeeded, queued, handle.id, hostile_ids)


def text_of(html: str) -> str:
    """A page's text without tags (for messages in assertions)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
