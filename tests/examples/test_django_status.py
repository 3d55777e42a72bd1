"""The Django status of every offload state (imported without Django's settings: the
mapping is plain data)."""

from __future__ import annotations

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
