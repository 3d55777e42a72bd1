"""Values no job can have: ids past 64 bits, lone surrogates, per-call options out of range.
Each is refused (or found to name nothing) alike on both backends, with one short error
that names the field (issue 12, item 6)."""

from __future__ import annotations

import pytest

import offload
from offload.core.errors import JobNotFound
from tests.conformance.helpers import insert

# -- ids outside 64 bits ----------------------------------------------------------------

FAR_IDS = [2**63, 2**70, -(2**63) - 1, -(2**70), -1, 0]


@pytest.mark.parametrize("job_id", FAR_IDS, ids=str)
@pytest.mark.usefixtures("stored")
def test_an_id_no_job_can_have_is_not_found(app: offload.App, job_id: int) -> None:
    """SQLite cannot bind an int past 64 bits (OverflowError); PostgreSQL compares it."""
    for operation in (app.job, app.cancel, app.retry):
        with pytest.raises(JobNotFound) as info:
            operation(job_id)
        assert info.value.job_id == job_id
        assert str(info.value) == f"no job with id {job_id}"


def test_a_listing_cursor_or_limit_past_64_bits_means_what_it_says(app: offload.App) -> None:
    ids = sorted(insert(app.backend, 3), reverse=True)
    for huge in (2**63, 2**70):
        assert [job.id for job in app.jobs(before_id=huge)] == ids
        assert [job.id for job in app.jobs(limit=huge)] == ids
    for tiny in (-(2**63), -(2**63) - 1, -(2**70)):
        assert app.jobs(before_id=tiny) == []
