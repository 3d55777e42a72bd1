"""Named SQL statements, parsed once from a backend's `.sql` file of one area.

Each statement starts with `-- name: NAME` and a comment saying what it is for. `{macros}`
(the clock expression, column lists) are expanded at load time, and so is `{NAME}` of a
statement of the same file, a shared fragment (a condition several statements use);
`:param` placeholders stay as they are for sqlite3, or become `%(param)s` for psycopg.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_PARAM = re.compile(r"(?<![:\w]):(\w+)")
#: What a statement that writes its jobs' events itself contains (see `Queries.events`).
_WRITES_EVENTS = "INSERT INTO offload_events"


@dataclass(frozen=True, slots=True)
class Queries:
    """The named statements of one area of one backend."""

    area: str
    text: dict[str, str]
    #: The statements that write the events of the jobs they change themselves (a
    #: PostgreSQL claim's WITH): their callers leave `SqlEvents.written` out.
    events: frozenset[str] = frozenset()

    def __getitem__(self, name: str) -> str:
        try:
            return self.text[name]
        except KeyError:
            raise KeyError(f"no query {name!r} in {self.area}.sql") from None

    @classmethod
    def load(cls, package: str, area: str, macros: Mapping[str, str], pyformat: bool) -> Queries:
        """Parse `{area}.sql` of `package`, expand `{macros}`, convert `:param` if pyformat."""
        source = resources.files(package).joinpath(f"{area}.sql").read_text()
        parts = _NAME.split(source)
        raw = {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}
        for key, value in macros.items():  # macros win over a statement of the same name
            raw = {name: sql.replace("{" + key + "}", value) for name, sql in raw.items()}
        fragments = {name: _without_comments(sql) for name, sql in raw.items()}
        text: dict[str, str] = {}
        for name, body in raw.items():
            sql = body
            for key, value in fragments.items():
                sql = sql.replace("{" + key + "}", value)
            if pyformat:  # psycopg: %(name)s placeholders, literal % doubled
                sql = _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))
            text[name] = sql
        events = frozenset(name for name, sql in text.items() if _WRITES_EVENTS in sql)
        return cls(area, text, events)


def _without_comments(sql: str) -> str:
    """A fragment's SQL without its whole-line comments, to be spliced into a statement."""
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


def migration_files(package: str) -> list[tuple[int, str]]:
    """(version, SQL text) of every migration of a backend, in order."""
    folder = resources.files(package).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)
