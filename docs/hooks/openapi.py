"""mkdocs hook: renders the HTTP API's OpenAPI document (the one `/openapi.json` serves, of
a server checking tokens) into the page holding the `<!-- openapi -->` marker, and writes
the document itself beside the site as `reference/openapi.json`. The page cannot drift from
the routes: both come from `offload.server.openapi`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from offload.server.openapi import document

MARKER = "<!-- openapi -->"
METHODS = ("get", "post", "put", "patch", "delete")


def _cell(text: object) -> str:
    """Text fit for one cell of a Markdown table."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _schema_name(schema: dict[str, Any]) -> str:
    """A schema's name if it is a reference, else its JSON in short."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[`{name}`](#{name.lower()})"
    return f"`{json.dumps(schema, separators=(',', ':'))}`"


def _response(doc: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """A response, its `$ref` to the shared responses followed."""
    if "$ref" in answer:
        found: dict[str, Any] = doc["components"]["responses"][answer["$ref"].rsplit("/", 1)[-1]]
        return found
    return answer


def _operation(doc: dict[str, Any], method: str, path: str, op: dict[str, Any]) -> list[str]:
    """The Markdown of one operation: summary, scope, parameters, body and answers."""
    lines = [f"### `{method.upper()} {path}`", "", op.get("summary", ""), ""]
    scopes = [scope for need in op.get("security", []) for scope in need.get("bearer", [])]
    lines += [f"Scope: `{scopes[0]}`." if scopes else "Open: no token needed.", ""]
    if op.get("parameters"):
        lines += ["| parameter | in | schema | description |", "|---|---|---|---|"]
        for p in op["parameters"]:
            lines.append(
                f"| `{p['name']}` | {p['in']} | {_cell(_schema_name(p.get('schema', {})))} | "
                f"{_cell(p.get('description', ''))} |"
            )
        lines.append("")
    body = op.get("requestBody")
    if body:
        for media, content in body["content"].items():
            lines += [f"Body ({media}): {_schema_name(content['schema'])}", ""]
    lines += ["| status | answer | body |", "|---|---|---|"]
    for status, given in op["responses"].items():
        answer = _response(doc, given)
        shapes = [
            f"{media}: {_schema_name(content['schema'])}" if "schema" in content else media
            for media, content in answer.get("content", {}).items()
        ]
        headers = ", ".join(f"`{h}`" for h in answer.get("headers", {}))
        text = answer["description"] + (f" Headers: {headers}." if headers else "")
        lines.append(f"| {status} | {_cell(text)} | {_cell('; '.join(shapes))} |")
    return [*lines, ""]


def render(doc: dict[str, Any]) -> str:
    """The document as Markdown: every operation, then every schema as JSON."""
    lines: list[str] = ["## Routes", ""]
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                lines += _operation(doc, method, path, item[method])
    lines += ["## Schemas", ""]
    for name, schema in doc["components"]["schemas"].items():
        lines += [f"### {name}", "", "```json", json.dumps(schema, indent=2), "```", ""]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the marker with the rendered document."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render(document()))


def on_post_build(config: Any) -> None:
    """Write the document beside the page, for download and for generators."""
    target = Path(config["site_dir"]) / "reference" / "openapi.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document(), indent=2) + "\n", encoding="utf-8")
