"""The database fixtures of tests/conftest.py: a test taking `migrated_db_url` gets `db_url`
built once as a copy of the migrated database (tests/conformance/test_schema.py checks that
`db_url` alone is empty)."""

from __future__ import annotations

import offload


def test_migrated_db_url_is_db_url_at_the_current_schema(db_url: str, migrated_db_url: str) -> None:
    assert migrated_db_url == db_url
    application = offload.App(db_url)
    try:
        assert application.backend.schema.version() == application.backend.schema.target
    finally:
        application.close()
