"""The job filters of the dashboard's forms, internal: query text read into the keyword
arguments of `App.jobs`, `App.count_jobs` and `App.bulk`, each bad field named."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from offload.core.containment import parse_pattern
from offload.core.states import JobState
from offload.core.times import TIME_FORMS, parse_time

#: The filter fields, in the order the form shows them.
FIELDS = ("state", "queue", "task", "error_type", "args", "after", "before")
#: Jobs on one page of a listing.
PAGE = 50


@dataclass
class Filters:
    """A job filter as given (`given`, text) and as the App takes it (`selection`), with
    a message per field that could not be read."""

    given: dict[str, str] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    cursor: int | None = None

    @property
    def query(self) -> str:
        """The filter as query text, for links that keep it."""
        return urlencode({k: v for k, v in self.given.items() if v})


def read_filters(values: Mapping[str, str], state: str | None = None) -> Filters:
    """The filters of a query or form (`state` fixed by the page, as on Dead jobs)."""
    out = Filters()
    for name in FIELDS:
        text = (values.get(name) or "").strip()
        if name == "state" and state is not None:
            text = state
        if not text:
            continue
        if len(text) > 2000:
            out.problems[name] = "too long (at most 2000 characters)"
            continue
        out.given[name] = text
        try:
            out.selection[_KEYS.get(name, name)] = _read(name, text)
        except ValueError as exc:
            out.problems[name] = str(exc)
    cursor = (values.get("before_id") or "").strip()
    if cursor:
        if not cursor.isdigit() or len(cursor) > 19:
            out.problems["before_id"] = f"{cursor[:40]!r} is not a job id"
        else:
            out.cursor = int(cursor)
    return out


_KEYS = {"args": "args_contains"}


def _read(name: str, text: str) -> Any:
    if name == "state":
        try:
            return JobState(text)
        except ValueError:
            names = ", ".join(s.value for s in JobState)
            raise ValueError(f"{text[:40]!r} is not a state; one of {names}") from None
    if name in ("after", "before"):
        try:
            return parse_time(text)
        except ValueError:
            raise ValueError(f"{text[:40]!r} is not {TIME_FORMS}") from None
    if name == "args":
        return parse_pattern(text)
    return text
