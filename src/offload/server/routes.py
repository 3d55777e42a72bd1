"""The routes of the HTTP API, each one App call run in a thread pool (the App's calls
block on the database and must never hold up the event loop)."""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar, cast

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from offload.app import App, Call
from offload.core.containment import NULL_PATTERN, parse_pattern
from offload.core.errors import BackPressure, OffloadError
from offload.core.events import EventCursor
from offload.core.job import Job
from offload.core.records import JobChange
from offload.core.selection import JobSelection
from offload.core.times import parse_time
from offload.core.tokens import Scope
from offload.core.wire import BODY_OPTIONS
from offload.dashboard import routes as dashboard_routes
from offload.server.body import query, read_json, validators
from offload.server.broadcast import EventFilter
from offload.server.errors import (
    ErrorResponse,
    JSONResponse,
    RequestError,
    error_body,
    offload_error_response,
    request_error_response,
)
from offload.server.metrics import CONTENT_TYPE, ApiMetrics
from offload.server.openapi import MAX_PAGE, SCOPES, document
from offload.server.streams import Streams

T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]

_INTEGER = re.compile(r"-?0*[0-9]{1,19}")
#: An Authorization header with a bearer token (the scheme's case does not matter).
_BEARER = re.compile(r"bearer +(\S+) *", re.IGNORECASE)
#: What a 401 answer carries: how to authenticate.
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class Api:
    """The route handlers, bound to one App; with `auth`, each route but the open ones
    needs a bearer token with its scope (`SCOPES`)."""

    def __init__(
        self, app: App, body_limit: int, body_timeout: float, auth: bool, event_buffer: int
    ) -> None:
        self.app = app
        self.body_limit = body_limit
        self.body_timeout = body_timeout
        self.auth = auth
        self.schemas = validators()
        self.metrics = ApiMetrics(app)
        self.streams = Streams(app, event_buffer)

    def guarded(self, handler: Handler, scope: Scope | None) -> Handler:
        """`handler`, after checking the request's token allows `scope` (as is, when
        tokens are not checked or the route is open)."""
        if not self.auth or scope is None:
            return handler

        @functools.wraps(handler)
        async def checked(request: Request) -> Response:
            await self._authorize(request, scope)
            return await handler(request)

        return checked

    async def _authorize(self, request: Request, scope: Scope) -> None:
        """Refuse, before the body is read, a request without a live token (401) or whose
        token does not allow `scope` (403). The database is asked each time, so a revoked
        token is refused from the next request on."""
        given = request.headers.getlist("authorization")
        if not given:
            raise RequestError(
                401,
                "unauthorized",
                f"this route needs a bearer token with the {scope} scope: "
                "Authorization: Bearer TOKEN",
                headers=_CHALLENGE,
            )
        match = _BEARER.fullmatch(given[0]) if len(given) == 1 else None
        if match is None:
            raise RequestError(
                401,
                "unauthorized",
                "the Authorization header must be one 'Bearer TOKEN'",
                headers=_CHALLENGE,
            )
        info = await self._call(self.app.authenticate, match.group(1))
        if info is None:
            raise RequestError(
                401,
                "unauthorized",
                "the bearer token is not a live token (unknown, revoked or mistyped)",
                headers=_CHALLENGE,
            )
        if not info.allows(scope):
            has = ", ".join(s.value for s in Scope if s in info.scopes)
            raise RequestError(
                403,
                "forbidden",
                f"this route needs the {scope} scope; token {info.name!r} has: {has}",
            )

    async def _body(self, request: Request, schema: str) -> dict[str, Any]:
        body: dict[str, Any] = await read_json(
            request, self.body_limit, self.body_timeout, self.schemas[schema]
        )
        return body

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await run_in_threadpool(fn, *args, **kwargs)

    # -- jobs -----------------------------------------------------------------------------

    async def enqueue(self, request: Request) -> Response:
        """POST /v1/jobs: 202 with the stored job, 200 with a key holder instead."""
        body = await self._body(request, "EnqueueRequest")
        options = _options(body)
        key = request.headers.get("idempotency-key")
        if key is not None:
            options["idempotency_key"] = key

        def enqueue() -> tuple[Job, bool]:
            handle = self.app.enqueue(body["task"], body.get("args"), body.get("kwargs"), **options)
            return handle.job(), handle.duplicate

        try:
            job, duplicate = await self._call(enqueue)
        except BackPressure as exc:
            self.metrics.rejected(exc)
            raise
        if not duplicate:
            self.metrics.enqueued(job.queue, job.task)
        location = str(request.url_for("job", job_id=job.id))
        return JSONResponse(
            job.to_dict(), status_code=200 if duplicate else 202, headers={"Location": location}
        )

    async def enqueue_many(self, request: Request) -> Response:
        """POST /v1/jobs:batch: every job stored, or none."""
        if "idempotency-key" in request.headers:  # ignoring it would promise what is not kept
            raise RequestError(
                422,
                "validation_error",
                "a batch takes no Idempotency-Key: one key names one job",
                "Idempotency-Key",
            )
        body = await self._body(request, "BatchRequest")
        calls = [Call(tuple(c.get("args", ())), c.get("kwargs", {})) for c in body["jobs"]]
        options = _options(body)
        try:
            handles = await self._call(self.app.enqueue_many, body["task"], calls, **options)
        except BackPressure as exc:
            self.metrics.rejected(exc)
            raise
        queue = options.get("queue") or self.app.registry.get(body["task"]).options.queue
        self.metrics.enqueued(queue, body["task"], sum(not h.duplicate for h in handles))
        jobs = [{"id": h.id, "duplicate": h.duplicate} for h in handles]
        return JSONResponse({"jobs": jobs}, status_code=202)

    async def job(self, request: Request) -> Response:
        """GET /v1/jobs/{job_id}."""
        job_id: int = request.path_params["job_id"]
        handle = await self._call(self.app.job, job_id)
        return JSONResponse((await self._call(handle.job)).to_dict())

    async def jobs(self, request: Request) -> Response:
        """GET /v1/jobs: newest first, `limit` a page; `next` is the following page's
        `cursor` (None on the last page)."""
        given = query(
            request,
            {
                "queue": str,
                "state": str,
                "task": str,
                "before": parse_time,
                "after": parse_time,
                "error_type": str,
                "args_contains": parse_pattern,
                "cursor": _integer,
                "limit": _page_size,
            },
        )
        limit = given.pop("limit", 50)
        cursor = given.pop("cursor", None)
        found = await self._call(self.app.jobs, before_id=cursor, limit=limit + 1, **given)
        page = found[:limit]
        following = page[-1].id if len(found) > limit else None
        return JSONResponse({"jobs": [job.to_dict() for job in page], "next": following})

    async def cancel(self, request: Request) -> Response:
        """POST /v1/jobs/{job_id}/cancel."""
        job = await self._call(self.app.cancel, request.path_params["job_id"])
        return JSONResponse(job.to_dict())

    async def retry(self, request: Request) -> Response:
        """POST /v1/jobs/{job_id}/retry."""
        job = await self._call(self.app.retry, request.path_params["job_id"])
        return JSONResponse(job.to_dict())

    async def cancel_many(self, request: Request) -> Response:
        """POST /v1/jobs:cancel: by ids and/or filters, all of which must hold."""
        selection = _selection(await self._body(request, "Selection"))
        return _changed(await self._call(self.app.cancel_many, **selection))

    async def retry_many(self, request: Request) -> Response:
        """POST /v1/jobs:retry: by ids and/or filters, all of which must hold."""
        selection = _selection(await self._body(request, "Selection"))
        return _changed(await self._call(self.app.retry_many, **selection))

    # -- workflows ------------------------------------------------------------------------

    async def enqueue_workflow(self, request: Request) -> Response:
        """POST /v1/workflows: 202 with the workflow's id and each node's job id."""
        body = await self._body(request, "WorkflowRequest")
        nodes = [_node(index, node) for index, node in enumerate(body["nodes"])]
        try:
            handle = await self._call(self.app.enqueue_workflow, nodes, name=body.get("name"))
        except BackPressure as exc:
            self.metrics.rejected(exc)
            raise
        for node in nodes:
            queue = node.get("queue") or self.app.registry.get(node["task"]).options.queue
            self.metrics.enqueued(queue, node["task"])
        location = str(request.url_for("workflow", workflow_id=handle.id))
        ids = {name: job.id for name, job in handle.nodes.items()}
        return JSONResponse(
            {"id": handle.id, "nodes": ids}, status_code=202, headers={"Location": location}
        )

    async def workflow(self, request: Request) -> Response:
        """GET /v1/workflows/{workflow_id}."""
        status = await self._call(self.app.workflow_status, request.path_params["workflow_id"])
        return JSONResponse(status.to_json())

    async def workflows(self, request: Request) -> Response:
        """GET /v1/workflows: newest first, `limit` a page; `next` is the following page's
        `cursor` (None on the last page)."""
        given = query(request, {"cursor": _integer, "limit": _page_size})
        limit = given.get("limit", 50)
        found = await self._call(
            self.app.workflow_statuses, before_id=given.get("cursor"), limit=limit + 1
        )
        page = found[:limit]
        following = page[-1].id if len(found) > limit else None
        return JSONResponse({"workflows": [w.to_json() for w in page], "next": following})

    async def cancel_workflow(self, request: Request) -> Response:
        """POST /v1/workflows/{workflow_id}/cancel."""
        changes = await self._call(self.app.cancel_workflow, request.path_params["workflow_id"])
        return _changed(changes)

    # -- events ---------------------------------------------------------------------------

    async def job_events(self, request: Request) -> Response:
        """GET /v1/jobs/{job_id}/events: the job's events from its first (or after
        Last-Event-ID) until its terminal one; 204 once that was delivered."""
        job_id: int = request.path_params["job_id"]
        after = _resume_from(request, query(request, {"last_event_id": str}))
        handle = await self._call(self.app.job, job_id)  # JobNotFound: 404
        # Read before its events: a job finished by now has its last events stored (one
        # finished before events were kept has none, and its stream would never end).
        finished = (await self._call(handle.job)).state.finished
        stream = await self.streams.open(
            EventFilter(job_id=job_id),
            after or EventCursor.START,
            until_terminal=True,
            finished=finished,
        )
        return Response(status_code=204) if stream is None else stream

    async def events(self, request: Request) -> Response:
        """GET /v1/events: every event of a queue and/or channel (no filter: all), from
        now on or after Last-Event-ID."""
        given = query(request, {"queue": str, "channel": str, "last_event_id": str})
        after = _resume_from(request, given)
        if after is None:
            after = await self._call(self.app.event_tail)
        event_filter = EventFilter(queue=given.get("queue"), channel=given.get("channel"))
        stream = await self.streams.open(event_filter, after, until_terminal=False)
        assert stream is not None  # only a stream until a terminal event is ever over
        return stream

    # -- the rest -------------------------------------------------------------------------

    async def queues(self, request: Request) -> Response:
        """GET /v1/queues."""
        found = await self._call(self.app.queue_statuses)
        return JSONResponse({"queues": [{"name": q.name, **q.to_json()} for q in found]})

    async def workers(self, request: Request) -> Response:
        """GET /v1/workers."""
        found = await self._call(self.app.worker_statuses)
        return JSONResponse({"workers": [w.to_json() for w in found]})

    async def schedules(self, request: Request) -> Response:
        """GET /v1/schedules."""
        found = await self._call(self.app.schedule_statuses)
        return JSONResponse({"schedules": [s.to_json() for s in found]})

    async def health(self, request: Request) -> Response:
        """GET /health: the process answers; the database is not asked."""
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        """GET /ready: the database answers and its schema is current (503 otherwise)."""
        await self._call(self.app.check)
        return JSONResponse({"status": "ready"})

    async def metrics_text(self, request: Request) -> Response:
        """GET /metrics: Prometheus' text format (queue gauges read now, from the database)."""
        text = await self._call(self.metrics.render)
        return Response(text, media_type=CONTENT_TYPE)

    async def openapi(self, request: Request) -> Response:
        """GET /openapi.json, with the prefix the API is mounted under as its server, and
        security only if this server checks tokens."""
        doc = document(auth=self.auth)
        root = request.scope.get("root_path", "")
        if root:
            doc["servers"] = [{"url": root}]
        return JSONResponse(doc)


def _resume_from(request: Request, given: dict[str, Any]) -> EventCursor | None:
    """The cursor a stream resumes after: the Last-Event-ID header (which an EventSource
    sends when it reconnects, to the URL it was opened with), else `?last_event_id=`."""
    text = request.headers.get("last-event-id", given.get("last_event_id"))
    return None if text is None else EventCursor.parse(text)


def _options(body: dict[str, Any]) -> dict[str, Any]:
    """The `Task.options` of an enqueue body (`run_at` read as an aware datetime)."""
    options = {name: body[name] for name in BODY_OPTIONS if name in body}
    if "run_at" in body:
        options["at"] = _moment("run_at", body["run_at"])
    return options


def _node(index: int, node: dict[str, Any]) -> dict[str, Any]:
    """A node of a workflow body as `App.enqueue_workflow` takes it (`run_at` read as an
    aware datetime, `at`)."""
    if "run_at" not in node:
        return node
    out = {name: value for name, value in node.items() if name != "run_at"}
    out["at"] = _moment(f"nodes.{index}.run_at", node["run_at"])
    return out


def _moment(field: str, text: str) -> datetime:
    """An RFC 3339 time with an offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise RequestError(
            422,
            "validation_error",
            f"{field}: {text[:100]!r} is not an RFC 3339 time with "
            "an offset (2026-11-28T09:30:00Z)",
            field,
        )
    return moment


def _selection(body: dict[str, Any]) -> JobSelection:
    """The App's selection of a bulk body (times parsed)."""
    selection: dict[str, Any] = {}
    for name, value in body.items():
        if name in ("before", "after"):
            try:
                selection[name] = parse_time(value)
            except ValueError as exc:
                raise RequestError(422, "validation_error", f"{name}: {exc}", name) from None
        elif name == "args_contains" and value is None:
            raise RequestError(422, "validation_error", f"{name}: {NULL_PATTERN}", name)
        else:
            selection[name] = value
    return cast(JobSelection, selection)


def _changed(changes: list[JobChange]) -> Response:
    out = [{"id": c.id, "queue": c.queue, "state": str(c.state)} for c in changes]
    return JSONResponse({"changed": out})


def _integer(text: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"{text[:50]!r} is not an integer")
    return int(text)


def _page_size(text: str) -> int:
    size = _integer(text)
    if not 1 <= size <= MAX_PAGE:
        raise ValueError(f"must be from 1 to {MAX_PAGE}, got {size}")
    return size


async def _on_error(request: Request, exc: Exception) -> Response:
    """Every failure as a JSON error body (see `offload.server.errors`)."""
    if isinstance(exc, RequestError):
        return request_error_response(exc)
    if isinstance(exc, OffloadError):
        return offload_error_response(exc)
    if isinstance(exc, HTTPException):
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = error_body(kind, f"{exc.detail}: {request.method} {request.url.path}")
        return ErrorResponse(body, status_code=exc.status_code, headers=exc.headers)
    return ErrorResponse(
        error_body("internal_error", f"unexpected {type(exc).__name__}"), status_code=500
    )


def build(
    app: App, body_limit: int, body_timeout: float, auth: bool, event_buffer: int
) -> Starlette:
    """The Starlette app of the API on `app`, checking bearer tokens if `auth`, holding
    at most `event_buffer` events for each event stream, with the dashboard at `/`
    (signing in with a token if `auth`)."""
    api = Api(app, body_limit, body_timeout, auth, event_buffer)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        """Stop the event broadcaster at shutdown (the first stream starts it)."""
        yield
        await api.streams.stop()

    def route(method: str, path: str, handler: Handler) -> Route:
        """A route whose handler checks the scope `SCOPES` gives it (a route missing from
        the table fails here, never serves unchecked)."""
        scope = SCOPES[(path.replace(":int}", "}"), method.lower())]
        return Route(path, api.guarded(handler, scope), methods=[method])

    routes = [
        route("POST", "/v1/jobs", api.enqueue),
        route("GET", "/v1/jobs", api.jobs),
        route("POST", "/v1/jobs:batch", api.enqueue_many),
        route("POST", "/v1/jobs:cancel", api.cancel_many),
        route("POST", "/v1/jobs:retry", api.retry_many),
        route("GET", "/v1/jobs/{job_id:int}", api.job),
        route("POST", "/v1/jobs/{job_id:int}/cancel", api.cancel),
        route("POST", "/v1/jobs/{job_id:int}/retry", api.retry),
        route("POST", "/v1/workflows", api.enqueue_workflow),
        route("GET", "/v1/workflows", api.workflows),
        route("GET", "/v1/workflows/{workflow_id:int}", api.workflow),
        route("POST", "/v1/workflows/{workflow_id:int}/cancel", api.cancel_workflow),
        route("GET", "/v1/queues", api.queues),
        route("GET", "/v1/workers", api.workers),
        route("GET", "/v1/schedules", api.schedules),
        route("GET", "/v1/jobs/{job_id:int}/events", api.job_events),
        route("GET", "/v1/events", api.events),
        route("GET", "/health", api.health),
        route("GET", "/ready", api.ready),
        route("GET", "/metrics", api.metrics_text),
        route("GET", "/openapi.json", api.openapi),
        *dashboard_routes(app, auth, api.streams),
    ]
    handlers = {cls: _on_error for cls in (RequestError, OffloadError, HTTPException, Exception)}
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)


def build_dashboard(app: App, event_buffer: int) -> Starlette:
    """The Starlette app of the dashboard alone, tokens not checked (the host guards it),
    its live parts holding at most `event_buffer` events each."""
    streams = Streams(app, event_buffer)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        """Stop the event broadcaster at shutdown (the first live part starts it)."""
        yield
        await streams.stop()

    return Starlette(routes=dashboard_routes(app, False, streams), lifespan=lifespan)
