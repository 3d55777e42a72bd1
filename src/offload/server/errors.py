"""How the HTTP API answers a failure: one table from offload's exception classes to a
status code and a stable `type`, and the JSON error body every failure gets.

An error body is `{"type": ..., "message": ..., <the exception's fields>}`; a class not in
the table answers as its nearest listed base class.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse

from offload.core.errors import (
    ArgumentsMismatch,
    BackendError,
    BackendUnavailable,
    BackPressure,
    BadEventId,
    ConfigurationError,
    DuplicateJob,
    IdempotencyConflict,
    InvalidTransition,
    JobNotFound,
    OffloadError,
    OutcomeUnknown,
    Overloaded,
    PayloadTooLarge,
    QueueFull,
    QueueNotFound,
    ScheduleNotFound,
    SchemaMismatch,
    SerializationError,
    StorageFull,
    UnknownTask,
    ValidationError,
)

#: Each exception class the App raises, with its status code and stable type.
ERRORS: dict[type[OffloadError], tuple[int, str]] = {
    QueueFull: (503, "queue_full"),
    Overloaded: (503, "overloaded"),
    BackPressure: (503, "back_pressure"),
    PayloadTooLarge: (413, "payload_too_large"),
    UnknownTask: (422, "unknown_task"),
    ArgumentsMismatch: (422, "arguments_mismatch"),
    SerializationError: (422, "serialization_error"),
    IdempotencyConflict: (409, "idempotency_conflict"),
    BadEventId: (400, "bad_event_id"),
    ValidationError: (422, "validation_error"),
    JobNotFound: (404, "job_not_found"),
    QueueNotFound: (404, "queue_not_found"),
    ScheduleNotFound: (404, "schedule_not_found"),
    DuplicateJob: (409, "duplicate_job"),
    InvalidTransition: (409, "invalid_transition"),
    SchemaMismatch: (503, "schema_mismatch"),
    StorageFull: (503, "storage_full"),
    OutcomeUnknown: (503, "outcome_unknown"),
    BackendUnavailable: (503, "backend_unavailable"),
    BackendError: (500, "backend_error"),
    ConfigurationError: (500, "configuration_error"),
    OffloadError: (500, "error"),
}

#: The scalar JSON types an exception field is shown with.
_SCALARS = (str, int, float, bool, type(None))


class RequestError(Exception):
    """A request refused before the App is called: `status`, a stable `type`, the `field`
    at fault (None: the request as a whole) and `headers` of the answer."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        field: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status, self.type, self.field = status, type_, field
        self.headers = dict(headers or {})
        super().__init__(message)


def error_body(type_: str, message: str, **fields: Any) -> dict[str, Any]:
    """The JSON body of every error answer."""
    return {"type": type_, "message": message, **fields}


def request_error_response(exc: RequestError) -> JSONResponse:
    """The answer to a request refused by the API itself."""
    fields = {} if exc.field is None else {"field": exc.field}
    body = error_body(exc.type, str(exc), **fields)
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def offload_error_response(exc: OffloadError) -> JSONResponse:
    """The answer to an exception the App raised: its status and type from `ERRORS`, its
    public fields, and `Retry-After` (whole seconds, at least 1) on back pressure."""
    status, type_ = next(ERRORS[cls] for cls in type(exc).__mro__ if cls in ERRORS)
    headers = {}
    if isinstance(exc, BackPressure):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    body = error_body(type_, str(exc), **_fields(exc))
    return JSONResponse(body, status_code=status, headers=headers)


def _fields(exc: OffloadError) -> dict[str, Any]:
    """The exception's public attributes that are JSON scalars or lists of them."""
    out = {}
    for name, value in vars(exc).items():
        shown = isinstance(value, _SCALARS) or (
            isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value)
        )
        if shown and not name.startswith("_") and name not in ("type", "message"):
            out[name] = value
    return out
