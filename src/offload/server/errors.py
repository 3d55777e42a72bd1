"""How the HTTP API answers a failure: by the table of `offload.core.wire` from offload's
exception classes to a status code and a stable `type`, with the JSON error body every
failure gets.

An error body is `{"type": ..., "message": ..., <the exception's fields>}`; a class not in
the table answers as its nearest listed base class.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import orjson
from starlette import responses

from offload.core.errors import BackPressure, OffloadError
from offload.core.wire import ERRORS


class JSONResponse(responses.JSONResponse):
    """A JSON answer encoded by orjson, which encodes a job several times faster than the
    json module: each answer of the API is one. What orjson refuses (an integer past 64
    bits, as a job id in a path may be) goes to the json module."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:
            return super().render(content)


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


class ErrorResponse(JSONResponse):
    """An error answer, which may echo what the request said: text with a lone surrogate
    (valid in a JSON string, not in UTF-8) is sent as a `\\uXXXX` escape, never a 500."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


def error_body(type_: str, message: str, **fields: Any) -> dict[str, Any]:
    """The JSON body of every error answer."""
    return {"type": type_, "message": message, **fields}


def request_error_response(exc: RequestError) -> JSONResponse:
    """The answer to a request refused by the API itself."""
    fields = {} if exc.field is None else {"field": exc.field}
    body = error_body(exc.type, str(exc), **fields)
    return ErrorResponse(body, status_code=exc.status, headers=exc.headers)


def offload_error_response(exc: OffloadError) -> JSONResponse:
    """The answer to an exception the App raised: its status and type from `ERRORS`, its
    public fields, and `Retry-After` (whole seconds, at least 1) on back pressure."""
    status, type_ = next(ERRORS[cls] for cls in type(exc).__mro__ if cls in ERRORS)
    headers = {}
    if isinstance(exc, BackPressure):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    body = error_body(type_, str(exc), **_fields(exc))
    return ErrorResponse(body, status_code=status, headers=headers)


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
