"""`offload migrate`: creating the schema the other commands need."""

from __future__ import annotations

import re

import offload
from tests.cli.helpers import assert_one_line_error, offload_cli


def test_migrate_creates_the_schema_the_other_commands_need(
    db_url: str, env: dict[str, str]
) -> None:
    before = offload_cli("jobs", env=env)
    if db_url.startswith("postgresql"):
        # A PostgreSQL App does not migrate by itself: commands name the fix.
        assert_one_line_error(before, 1, "schema is version 0", "offload migrate")
    else:
        # SQLite creates its schema on first use.
        assert before.returncode == 0, before.stderr
        assert before.stdout.strip() == "no jobs"

    first = offload_cli("migrate", env=env)
    again = offload_cli("migrate", env=env)
    assert first.returncode == again.returncode == 0, (first.stderr, again.stderr)
    match = re.search(r"schema version (\d+)$", first.stdout.strip())
    assert match, first.stdout
    assert again.stdout == first.stdout

    app = offload.App(db_url)
    try:
        app.backend.schema.check()  # raises SchemaMismatch unless fully migrated
        assert app.migrate() == int(match.group(1))
    finally:
        app.close()
    after = offload_cli("jobs", env=env)
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == "no jobs"
