"""Two PostgreSQL clusters for the shard tests (the session's and `pg_server_two`), and an
App over a fresh database on each."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

import offload
from tests.pgserver import PostgresServer, drop_database, fresh_database

_numbers = itertools.count()


@pytest.fixture
def shard_urls(
    pg_server: PostgresServer, pg_server_two: PostgresServer
) -> Iterator[dict[str, str]]:
    """Shard name -> URL of a fresh database, shard one on the session's cluster and shard
    two on the second, exported as the tests.apps.shards app reads them."""
    name = f"offload_shard{os.getpid()}_{next(_numbers)}"
    urls = {
        "one": fresh_database(pg_server.url, name),
        "two": fresh_database(pg_server_two.url, name),
    }
    saved = {key: os.environ.get(key) for key in ("OFFLOAD_SHARD_ONE", "OFFLOAD_SHARD_TWO")}
    os.environ["OFFLOAD_SHARD_ONE"], os.environ["OFFLOAD_SHARD_TWO"] = urls["one"], urls["two"]
    yield urls
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    drop_database(pg_server.url, name)
    drop_database(pg_server_two.url, name)


@pytest.fixture
def sharded(shard_urls: dict[str, str]) -> Iterator[offload.App]:
    """tests.apps.shards' tasks on an App over both shards, migrated."""
    from tests.apps import shards

    application = offload.App(shards=shard_urls, shard_map={"two": ["reports"]})
    for name in shards.app.registry.names():
        application.registry.add(shards.app.registry.get(name))
    application.migrate()
    yield application
    application.close()
