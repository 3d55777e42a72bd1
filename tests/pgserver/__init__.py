"""A throwaway PostgreSQL cluster for the test session.

Usage from a conftest::

    from tests.pgserver import fresh_database, start_postgres

    server = start_postgres()          # or reuse OFFLOAD_TEST_POSTGRES_URL
    url = fresh_database(server.url, "offload_test_x")
    ...
    server.stop()

If the environment variable ``OFFLOAD_TEST_POSTGRES_URL`` is set, that URL is used as is and
no server is started.  Otherwise a private cluster is created with ``initdb`` in a temporary
directory and started on a free loopback TCP port (never the system server on 5432).  When
running as root the cluster runs as an unprivileged user (``postgres`` if it exists, else a
system user ``offload-test`` that is created on demand), because PostgreSQL refuses to run as
root.  Any failure raises ``RuntimeError``: callers must let tests fail, never skip.

Modules, by concern: ``binaries`` finds ``initdb``/``pg_ctl``/``postgres``; ``processes``
runs them (as which user, in which directory, with which environment); ``server`` starts and
stops a cluster; ``databases`` makes fresh databases on it; ``smoke`` is the self-check.

Smoke check: ``python -m tests.pgserver``.
"""

from tests.pgserver.binaries import ENV_URL, find_pg_bindir
from tests.pgserver.databases import database_url, drop_database, fresh_database
from tests.pgserver.server import PostgresServer, start_postgres
from tests.pgserver.smoke import main

__all__ = [
    "ENV_URL",
    "PostgresServer",
    "database_url",
    "drop_database",
    "find_pg_bindir",
    "fresh_database",
    "main",
    "start_postgres",
]
