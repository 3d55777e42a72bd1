"""Parts of offload.contrib.django that need no Django settings: the status of every
offload state, and the checks of `with_dashboard`'s arguments."""

from __future__ import annotations

import pytest

from offload.core.errors import ConfigurationError
from offload.core.states import FINISHED, JobState


def test_every_state_has_its_django_status() -> None:
    from django_tasks import TaskResultStatus

    from offload.contrib.django.backend import STATUS

    assert set(STATUS) == set(JobState), "a state without a Django status"
    assert {state for state, status in STATUS.items() if status == TaskResultStatus.READY} == {
        JobState.WAITING,
        JobState.SCHEDULED,
        JobState.AVAILABLE,
        JobState.RETRYING,
        JobState.SHED,  # shed by flow control: a retry or the sweep runs it again
    }
    assert STATUS[JobState.RUNNING] == TaskResultStatus.RUNNING
    assert STATUS[JobState.SUCCEEDED] == TaskResultStatus.SUCCESSFUL
    finished_badly = {s for s, status in STATUS.items() if status == TaskResultStatus.FAILED}
    assert finished_badly == FINISHED - {JobState.SUCCEEDED}


def test_with_dashboard_refuses_a_bad_prefix_or_app_naming_it() -> None:
    from offload.contrib.django.asgi import with_dashboard

    async def django_app(scope: object, receive: object, send: object) -> None:
        """Stands for Django's ASGI application (never called here)."""

    for prefix in ("offload", "/offload/", ""):
        with pytest.raises(
            ConfigurationError, match=f"prefix must be a path like '/offload', got '{prefix}'"
        ):
            with_dashboard(django_app, prefix)
    with pytest.raises(ConfigurationError, match="with_dashboard takes an ASGI app, got 'nope'"):
        with_dashboard("nope", "/offload")  # type: ignore[arg-type]
