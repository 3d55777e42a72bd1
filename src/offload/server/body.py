"""Reading a request: its body, capped in size, as JSON checked against the API's own
schema; its query string, by name. Each refusal names what is wrong (`RequestError`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.requests import Request

from offload.core.errors import clip
from offload.core.wire import BODY_TIMEOUT
from offload.server.errors import RequestError
from offload.server.openapi import document

#: The base URI of the OpenAPI document: `validator` resolves `DOCUMENT_URI#/pointer`.
DOCUMENT_URI = "urn:offload:openapi"
_SCHEMAS = "#/components/schemas/"


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of `schema`, whose references point into the OpenAPI document."""
    resource = Resource.from_contents(document(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
    return Draft202012Validator(schema, registry=registry)


def validators() -> dict[str, Draft202012Validator]:
    """A validator for each schema of the document's components, by name, its references
    inlined: resolving a reference on each request cost about as much as the check."""
    schemas = document()["components"]["schemas"]
    return {name: Draft202012Validator(_inline(s, schemas)) for name, s in schemas.items()}


def _inline(value: Any, schemas: dict[str, Any]) -> Any:
    """`value` with each `#/components/schemas/` reference replaced by that schema (the
    document's schemas refer to each other without cycles)."""
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith(_SCHEMAS):
            return _inline(schemas[ref.removeprefix(_SCHEMAS)], schemas)
        return {key: _inline(item, schemas) for key, item in value.items()}
    if isinstance(value, list):
        return [_inline(item, schemas) for item in value]
    return value


async def read_json(
    request: Request, limit: int, timeout: float, validator: Draft202012Validator
) -> Any:
    """The body as JSON fitting `validator`'s schema: 413 past `limit` bytes (read no
    further), 408 when it has not all arrived within `timeout` seconds (a body that never
    ends, or drips), 400 when it is not JSON, 422 naming the field that does not fit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(timeout):
            await _read(request, limit, chunks)
    except TimeoutError:
        raise RequestError(
            408,
            BODY_TIMEOUT,
            f"the body did not arrive within {timeout:g} s",
            headers={"Connection": "close"},  # the rest of it may still be on its way
        ) from None
    try:
        value = json.loads(b"".join(chunks), parse_constant=_not_json)
    except RecursionError:
        raise RequestError(
            400, "malformed_json", "the body is not JSON: nested too deeply"
        ) from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, an integer of 4,300+ digits
        raise RequestError(
            400, "malformed_json", f"the body is not JSON: {clip(str(exc))}"
        ) from None
    error = best_match(validator.iter_errors(value))
    if error is not None:
        field = _field_of(error)
        where = f"{field}: " if field else ""
        raise RequestError(422, "validation_error", clip(where + error.message), field)
    return value


async def _read(request: Request, limit: int, chunks: list[bytes]) -> None:
    """Append the body's chunks to `chunks`, refusing it (413) once over `limit` bytes."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)


def _too_large(limit: int) -> RequestError:
    return RequestError(413, "body_too_large", f"the body is over the limit of {limit} bytes")


def _not_json(constant: str) -> Any:
    """Refuse NaN and Infinity, which Python's json module reads but JSON does not have."""
    raise ValueError(f"{constant} is not a JSON value")


def _field_of(error: SchemaError) -> str | None:
    """The dotted path of the field at fault: the value that does not fit, the property
    missing, or the one not allowed."""
    path = [str(part) for part in error.absolute_path]
    instance = error.instance
    required = error.validator_value
    if error.validator == "required" and isinstance(instance, dict) and isinstance(required, list):
        missing = [name for name in required if name not in instance]
        path += missing[:1]
    elif error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = sorted(name for name in instance if name not in allowed)
        path += extra[:1]
    return ".".join(path) or None


def query(request: Request, allowed: dict[str, Callable[[str], Any]]) -> dict[str, Any]:
    """The query parameters, each read by its converter (ValueError: 422 naming it); an
    unknown or repeated one is refused, as a mistyped filter must never widen a listing."""
    out: dict[str, Any] = {}
    for name, text in request.query_params.multi_items():
        convert = allowed.get(name)
        if convert is None:
            known = ", ".join(sorted(allowed))
            raise RequestError(
                422,
                "validation_error",
                f"unknown query parameter {clip(repr(name))}; known: {known}",
                name,
            )
        if name in out:
            raise RequestError(422, "validation_error", f"{name} is given twice", name)
        try:
            out[name] = convert(text)
        except ValueError as exc:
            raise RequestError(422, "validation_error", f"{name}: {clip(str(exc))}", name) from None
    return out
