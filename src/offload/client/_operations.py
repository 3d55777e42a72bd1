"""What each client call does, once for the sync and the async client: an operation is a
generator that yields the requests to send (`Send`) and the pauses to take (`Pause`), and
is resumed with each answer (or has the transport error thrown in). The clients only run
it with their own I/O, so retries, polling and error mapping exist once.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict, TypeVar

import httpx
import orjson

from offload.core.errors import (
    ApiError,
    BackendUnavailable,
    BackPressure,
    Forbidden,
    OffloadError,
    OutcomeUnknown,
    RequestRejected,
    ResultTimeout,
    Unauthorized,
    ValidationError,
)
from offload.core.job import Job
from offload.core.records import JobChange
from offload.core.serialization import dumps_args
from offload.core.states import JobState
from offload.core.wire import BODY_OPTIONS, ERRORS
from offload.task import Call

log = logging.getLogger("offload.client")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Send:
    """Send this request (`path` under the client's URL); resume with its answer."""

    method: str
    path: str
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pause:
    """Sleep this many seconds; resume with None."""

    seconds: float


Step = Send | Pause
#: An operation: yields steps, is sent each step's answer, returns the call's value.
Operation = Generator[Step, "httpx.Response | None", T]


class EnqueueOptions(TypedDict, total=False):
    """The options of `Client.enqueue` and `enqueue_many` (None or absent: the task's own).

    The job's: `queue`, `priority`, `delay` (seconds) or `run_at` (an aware datetime),
    `max_attempts`, `unique` (True, or a key), `replace` (a key), `idempotency_key` (the
    same key answers with the same job; `enqueue` only), `channel` (its event channel),
    `depends_on` (ids of jobs it waits for) and `on_parent_failure` (fail, cancel, run).
    The client's: `retry` (True: on back pressure or a transient failure, try again after
    the server's Retry-After, with jittered backoff) for up to `retry_for` seconds.
    """

    queue: str | None
    priority: int | None
    delay: float | None
    run_at: datetime | None
    max_attempts: int | None
    unique: bool | str | None
    replace: str | None
    idempotency_key: str | None
    channel: str | None
    depends_on: Sequence[int] | None
    on_parent_failure: str | None
    retry: bool
    retry_for: float


_OPTIONS = (*BODY_OPTIONS, "run_at", "idempotency_key", "retry", "retry_for")
#: How long `retry=True` keeps trying when `retry_for` is not given, in seconds.
DEFAULT_RETRY_FOR = 30.0
#: Backoff between tries: from BACKOFF_BASE doubling up to BACKOFF_MAX, never shorter
#: than the server's Retry-After, and stretched by up to JITTER so that clients turned
#: away together do not come back together.
BACKOFF_BASE, BACKOFF_MAX, JITTER = 0.1, 10.0, 0.25
#: Polls of `wait`: from WAIT_FIRST growing by half up to WAIT_MAX, in seconds.
WAIT_FIRST, WAIT_MAX = 0.02, 1.0
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Enqueued:
    """An enqueue's outcome: the job's `id`; `duplicate` when nothing was stored because a
    job holding the call's unique or idempotency key answered (that job's id). `job` is
    the stored job as the server answered, for `enqueue` (None from `enqueue_many`, whose
    answer carries ids only)."""

    id: int
    duplicate: bool
    job: Job | None = None


@dataclass(frozen=True, slots=True)
class WorkflowEnqueued:
    """A stored workflow's `id` and each node's job id, by node name (`nodes`)."""

    id: int
    nodes: dict[str, int]


# -- steps ---------------------------------------------------------------------------------


def send(request: Send) -> Operation[httpx.Response]:
    """Send `request` once: its answer, or the offload error it is."""
    try:
        answer = yield request
    except httpx.TransportError as exc:
        raise transport_error(exc, request) from exc
    assert answer is not None
    if answer.is_error:
        raise error_from(answer)
    return answer


def transport_error(exc: httpx.TransportError, request: Send) -> BackendUnavailable:
    """The offload error of a request that got no answer: nothing was sent (unreachable),
    or a write was sent and may or may not have taken effect (`OutcomeUnknown`)."""
    what = f"{request.method} {request.path}"
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return BackendUnavailable(f"cannot reach the HTTP API for {what}: {exc!r}")
    if request.method == "GET":
        return BackendUnavailable(f"no answer from the HTTP API to {what}: {exc!r}")
    return OutcomeUnknown(
        f"no answer from the HTTP API to {what} ({exc!r}): it may or may not have taken effect",
        operation=what,
    )


#: Each error type the server answers with, and the class it is raised as.
_CLASSES = {type_: cls for cls, (_, type_) in ERRORS.items()}
#: Refusals of the API itself (no App class): by status.
_REFUSALS: dict[int, type[ApiError]] = {
    400: RequestRejected,
    401: Unauthorized,
    403: Forbidden,
    408: RequestRejected,
    413: RequestRejected,
    422: RequestRejected,
}


def error_from(answer: httpx.Response) -> OffloadError:
    """The offload exception an error answer stands for, with the fields the server sent:
    the App's own class by the body's `type` (QueueFull, JobNotFound, ...), else by the
    status (Unauthorized, Forbidden, RequestRejected), else ApiError."""
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        text = answer.text[:200] or answer.reason_phrase
        return ApiError(answer.status_code, "http_error", f"HTTP {answer.status_code}: {text}")
    type_, message = body["type"], str(body.get("message", ""))
    fields = {k: v for k, v in body.items() if k not in ("type", "message")}
    cls = _CLASSES.get(type_)
    if cls is None or "field" in fields or cls is ValidationError:
        refusal = _REFUSALS.get(answer.status_code, ApiError)
        return refusal(answer.status_code, type_, message, fields.get("field"))
    # The server sent the exception's fields, not its constructor's arguments: build it
    # as it was raised there, with the server's message.
    error = cls.__new__(cls)
    OffloadError.__init__(error, message)
    vars(error).update(fields)
    return error


# -- operations ----------------------------------------------------------------------------


def job(job_id: int) -> Operation[Job]:
    """GET /v1/jobs/{id}."""
    answer = yield from send(Send("GET", f"/v1/jobs/{_an_id(job_id, 'job')}"))
    return Job.from_dict(answer.json())


def change(job_id: int, action: str) -> Operation[Job]:
    """POST /v1/jobs/{id}/cancel or /retry: the job after."""
    answer = yield from send(Send("POST", f"/v1/jobs/{_an_id(job_id, 'job')}/{action}"))
    return Job.from_dict(answer.json())


def wait(job_id: int, timeout: float | None) -> Operation[Job]:
    """Poll the job, pausing longer each time, until it is finished; ResultTimeout after
    `timeout` seconds (None: no limit)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = WAIT_FIRST
    while True:
        found = yield from job(job_id)
        if found.state.finished:
            return found
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise ResultTimeout(job_id, timeout or 0.0, str(found.state))
        yield Pause(pause if left is None else min(pause, left))
        pause = min(pause * 1.5, WAIT_MAX)


def enqueue(
    task: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    options: EnqueueOptions,
) -> Operation[Enqueued]:
    """POST /v1/jobs. With `retry`, the request carries an idempotency key (the caller's,
    else a new random one) from its first try: a try whose answer was lost may have stored
    the job, and resending the same key answers with that job instead of storing another."""
    body, retrying = _body(task, options)
    body["args"], body["kwargs"] = _arguments(args, kwargs)
    headers = dict(_JSON)
    own_key = options.get("idempotency_key")
    key = own_key if own_key is not None or retrying is None else f"client-{uuid.uuid4().hex}"
    if key is not None:
        headers["Idempotency-Key"] = key
    request = Send("POST", "/v1/jobs", orjson.dumps(body), headers)
    answer = yield from _with_retries(request, retrying, resend_safe=True)
    stored = Job.from_dict(answer.json())
    # Under our own random key, a job holding it is this call's, from a try whose answer
    # was lost: not a duplicate of anyone else's.
    ours = own_key is None and key is not None and stored.idempotency_key == key
    return Enqueued(stored.id, answer.status_code == 200 and not ours, stored)


def enqueue_many(
    task: str, calls: Sequence[Call], options: EnqueueOptions
) -> Operation[list[Enqueued]]:
    """POST /v1/jobs:batch: every job stored, or none. With `retry`, only a try known to
    have stored nothing is resent (back pressure, an unreachable server): a batch carries
    no idempotency key, so a resend after a lost answer could store it twice."""
    if "idempotency_key" in options:
        raise ValidationError("enqueue_many takes no idempotency_key: one key names one job")
    body, retrying = _body(task, options)
    jobs = []
    for index, one in enumerate(calls):
        if not isinstance(one, Call):
            raise ValidationError(f"call {index} is a {type(one).__name__}, not offload.call(...)")
        args, kwargs = _arguments(one.args, one.kwargs, f"call {index}: ")
        jobs.append({"args": args, "kwargs": kwargs})
    body["jobs"] = jobs
    request = Send("POST", "/v1/jobs:batch", orjson.dumps(body), _JSON)
    answer = yield from _with_retries(request, retrying, resend_safe=False)
    return [Enqueued(j["id"], j["duplicate"]) for j in answer.json()["jobs"]]


def enqueue_workflow(
    nodes: Sequence[Mapping[str, Any]], name: str | None
) -> Operation[WorkflowEnqueued]:
    """POST /v1/workflows: every node stored, or none. Sent once: a workflow carries no
    idempotency key, so a resend after a lost answer could store it twice."""
    if isinstance(nodes, str | bytes | Mapping) or not isinstance(nodes, Sequence):
        raise ValidationError(f"nodes must be a list of nodes, got {type(nodes).__name__}")
    body: dict[str, Any] = {"nodes": [_node(index, node) for index, node in enumerate(nodes)]}
    if name is not None:
        body["name"] = name
    answer = yield from send(Send("POST", "/v1/workflows", orjson.dumps(body), _JSON))
    stored = answer.json()
    return WorkflowEnqueued(stored["id"], stored["nodes"])


def workflow(workflow_id: int) -> Operation[dict[str, Any]]:
    """GET /v1/workflows/{id}: the workflow and its nodes as the API answers."""
    path = f"/v1/workflows/{_an_id(workflow_id, 'workflow')}"
    answer = yield from send(Send("GET", path))
    found: dict[str, Any] = answer.json()
    return found


def workflows(cursor: int | None, limit: int) -> Operation[dict[str, Any]]:
    """GET /v1/workflows: a page, newest first, and the `next` page's cursor."""
    query = f"limit={_an_id(limit, 'page size')}"
    if cursor is not None:
        query += f"&cursor={_an_id(cursor, 'workflow')}"
    answer = yield from send(Send("GET", f"/v1/workflows?{query}"))
    page: dict[str, Any] = answer.json()
    return page


def cancel_workflow(workflow_id: int) -> Operation[list[JobChange]]:
    """POST /v1/workflows/{id}/cancel: the jobs changed."""
    path = f"/v1/workflows/{_an_id(workflow_id, 'workflow')}/cancel"
    answer = yield from send(Send("POST", path))
    changed = answer.json()["changed"]
    return [JobChange(c["id"], c["queue"], JobState(c["state"])) for c in changed]


# -- retries -------------------------------------------------------------------------------


def _with_retries(
    request: Send, retry_for: float | None, resend_safe: bool
) -> Operation[httpx.Response]:
    """Send `request`; with `retry_for` (seconds), try again while the failure is one a
    later try may overcome and the next try would start before the deadline, else raise
    the last failure."""
    deadline = None if retry_for is None else time.monotonic() + retry_for
    tries = 0
    while True:
        tries += 1
        at_least = 0.0
        try:
            answer = yield request
        except httpx.TransportError as exc:
            error: OffloadError = transport_error(exc, request)
            error.__cause__ = exc
        else:
            assert answer is not None
            if not answer.is_error:
                return answer
            error = error_from(answer)
            at_least = _retry_after(answer, error)
        if deadline is None or not _worth_retrying(error, resend_safe):
            raise error
        pause = max(at_least, min(BACKOFF_BASE * 2.0 ** (tries - 1), BACKOFF_MAX))
        pause *= random.uniform(1.0, 1.0 + JITTER)
        if time.monotonic() + pause > deadline:
            raise error
        log.info("%s %s: %s; trying again in %.2f s", request.method, request.path, error, pause)
        yield Pause(pause)


def _worth_retrying(error: OffloadError, resend_safe: bool) -> bool:
    """Back pressure and a transient outage stored nothing; a lost answer (OutcomeUnknown)
    may have, so is resent only when the request can be told apart from its first try."""
    if isinstance(error, BackPressure):
        return True
    if isinstance(error, OutcomeUnknown):
        return resend_safe
    return isinstance(error, BackendUnavailable) and error.transient is True


def _retry_after(answer: httpx.Response, error: OffloadError) -> float:
    """The seconds the server asked to wait: its Retry-After header (whole seconds), else
    the error's `retry_after`, else 0."""
    header = answer.headers.get("retry-after", "")
    if header.isdigit():
        return float(header)
    if isinstance(error, BackPressure) and isinstance(error.retry_after, int | float):
        return float(error.retry_after)
    return 0.0


# -- request bodies ------------------------------------------------------------------------


def _body(task: str, options: EnqueueOptions) -> tuple[dict[str, Any], float | None]:
    """The request body's task and job options, and how long to retry (None: no retries);
    an unknown option is refused by name before anything is sent."""
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], _OPTIONS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(_OPTIONS)}"
        raise ValidationError(f"unknown enqueue option {unknown[0]!r}{hint}")
    body: dict[str, Any] = {"task": task}
    for name in BODY_OPTIONS:
        value = options.get(name)
        if value is not None:
            body[name] = value
    at = options.get("run_at")
    if at is not None:
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise ValidationError(f"run_at must be an aware datetime, got {at!r}")
        body["run_at"] = at.isoformat()
    retry_for = options.get("retry_for", DEFAULT_RETRY_FOR)
    if isinstance(retry_for, bool) or not isinstance(retry_for, int | float) or retry_for < 0:
        raise ValidationError(f"retry_for must be a number of seconds >= 0, got {retry_for!r}")
    return body, float(retry_for) if options.get("retry", False) else None


def _node(index: int, node: Mapping[str, Any]) -> dict[str, Any]:
    """A workflow node's body: its arguments checked as `_arguments` checks them, and a
    `run_at` datetime sent as RFC 3339 text."""
    if not isinstance(node, Mapping):
        raise ValidationError(f"node {index} is a {type(node).__name__}, not a mapping")
    out = dict(node)
    if "args" in out or "kwargs" in out:
        where = f"node {index}: "
        out["args"], out["kwargs"] = _arguments(out.get("args", ()), out.get("kwargs"), where)
    at = out.get("run_at")
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValidationError(f"node {index}: run_at must be an aware datetime, got {at!r}")
        out["run_at"] = at.isoformat()
    return out


def _arguments(
    args: Sequence[Any], kwargs: Mapping[str, Any] | None, where: str = ""
) -> tuple[orjson.Fragment, orjson.Fragment]:
    """The arguments as JSON, checked as `App.enqueue` checks them (a value that is not
    JSON is refused by name here, before anything is sent)."""
    if isinstance(args, str | bytes | Mapping):
        raise ValidationError(f"{where}args must be a list of arguments, got {type(args).__name__}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise ValidationError(f"{where}kwargs must be a mapping, got {type(kwargs).__name__}")
    args_text, kwargs_text = dumps_args(list(args), dict(kwargs or {}), limit=None)
    return orjson.Fragment(args_text), orjson.Fragment(kwargs_text)


def _an_id(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"a {what} id is an int, got {value!r}")
    return value
