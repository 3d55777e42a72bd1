"""PostgreSQL errors are classified by SQLSTATE: the server gone or refusing connections is
`BackendUnavailable` (a worker backs off and retries); anything else is an error of the
operation (`BackendError`)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from offload.backends.postgres.backend import PostgresBackend
from offload.core.errors import BackendError, BackendUnavailable
from offload.runtime.outage import fatal, passing

URL = "postgresql://user:secret@127.0.0.1:1/db"


@pytest.mark.parametrize(
    "exc",
    [
        errors.AdminShutdown("terminating connection due to administrator command"),  # 57P01
        errors.CrashShutdown("crash"),  # 57P02
        errors.CannotConnectNow("the database system is starting up"),  # 57P03
        errors.TooManyConnections("too many clients"),  # 53300
        errors.ConnectionFailure("connection failure"),  # 08006
        psycopg.OperationalError("server closed the connection unexpectedly"),  # no SQLSTATE
    ],
)
def test_the_server_gone_or_refusing_is_unavailability(exc: Exception) -> None:
    classified = PostgresBackend(URL)._error(exc)
    assert type(classified) is BackendUnavailable
    assert "secret" not in str(classified)


@pytest.mark.parametrize(
    "exc",
    [
        errors.UniqueViolation("duplicate key"),  # 23505
        errors.CheckViolation("violates check constraint"),  # 23514
        errors.RaiseException("row 8 refused"),  # P0001
        errors.UndefinedTable("relation does not exist"),  # 42P01
    ],
)
def test_an_error_of_the_operation_is_a_backend_error(exc: Exception) -> None:
    classified = PostgresBackend(URL)._error(exc)
    assert type(classified) is BackendError
    assert str(exc) in str(classified)


@pytest.mark.parametrize(
    "exc",
    [
        errors.DeadlockDetected("deadlock detected"),  # 40P01
        errors.SerializationFailure("could not serialize access"),  # 40001
    ],
)
@pytest.mark.parametrize("sent", [False, True])
def test_a_deadlock_or_serialization_failure_is_transient(exc: Exception, sent: bool) -> None:
    """The server rolled the transaction back whole: a worker retries (an outage it rides
    out), never stops, and, even once the statement was sent, the outcome is known."""
    classified = PostgresBackend(URL)._error(exc, sent=sent)
    assert type(classified) is BackendUnavailable
    assert classified.transient
    assert passing(classified) and not fatal(classified)
    assert "trying again is safe" in str(classified)
