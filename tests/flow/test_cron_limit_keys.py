"""Cron ticks carry their task's limit key, computed once when the scheduler starts."""

from __future__ import annotations

import pytest

import offload
from offload.core.errors import ValidationError


def test_a_tick_carries_the_limit_key_of_its_arguments(app: offload.App) -> None:
    @app.periodic("* * * * *", name="acme-report", args=["acme"])
    @app.task(name="report", concurrency=1, limit_key=lambda customer: customer.upper())
    def report(customer: str) -> None: ...

    @app.periodic("0 * * * *", name="hourly")
    @app.task(name="plain")
    def plain() -> None: ...

    scheduler = app.scheduler(install_signals=False)
    assert scheduler._jobs["acme-report"][1].limit_key == "ACME"
    assert scheduler._jobs["hourly"][1].limit_key is None


def test_a_schedule_whose_limit_key_fails_stops_the_scheduler_at_start(
    app: offload.App,
) -> None:
    @app.periodic("* * * * *", name="broken", args=[7])
    @app.task(name="report", rate_limit="1/s", limit_key=lambda customer: customer)
    def report(customer: int) -> None: ...

    with pytest.raises(ValidationError, match="task 'report': limit_key returned 7, not a str"):
        app.scheduler(install_signals=False)
