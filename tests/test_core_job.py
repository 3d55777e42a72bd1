"""JobBatch: many new jobs of one template, seen as an ordinary sequence of NewJob."""

from __future__ import annotations

import pytest

from offload.core.job import JobBatch, NewJob

TEMPLATE = NewJob(task="t", queue="q", args="[]", kwargs="{}", priority=3, delay=1.5)


def test_a_batch_reads_as_one_new_job_per_payload() -> None:
    batch = JobBatch(TEMPLATE, ["[1]", "[2]", "[3]"], ["{}", '{"a":1}', "{}"])
    assert len(batch) == 3
    assert batch[1] == NewJob(
        task="t", queue="q", args="[2]", kwargs='{"a":1}', priority=3, delay=1.5
    )
    assert [job.args for job in batch] == ["[1]", "[2]", "[3]"]
    assert [job.args for job in batch[1:]] == ["[2]", "[3]"]
    assert batch[-1].args == "[3]"


def test_payload_lists_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="2 args payloads for 1 kwargs"):
        JobBatch(TEMPLATE, ["[1]", "[2]"], ["{}"])
