"""The tests that run apart under pytest-xdist (tests/scheduling.py): every entry still names
a test, since a stale one would quietly let its tests run beside each other again."""

from __future__ import annotations

from pathlib import Path

from tests.scheduling import APART, GROUP, group_of

ROOT = Path(__file__).resolve().parent.parent


def test_every_entry_names_a_test_module_or_a_test_in_one() -> None:
    for entry in APART:
        path, _, name = entry.partition("::")
        module = ROOT / path
        assert module.is_file() and module.name.startswith("test_"), entry
        if name:
            assert f"\ndef {name}(" in module.read_text(), entry


def test_their_tests_form_the_group_and_the_others_none() -> None:
    assert group_of("tests/runtime/test_torture.py::test_jobs[sqlite]") == GROUP
    batch = "tests/batch/test_batch_workers.py::"
    assert group_of(f"{batch}test_max_wait_is_honoured_within_the_tolerance[postgres]") == GROUP
    assert group_of(f"{batch}test_a_thousand_jobs_over_ten_groups[postgres]") is None
    assert group_of("tests/test_core_job.py::test_a_spec_takes_the_task_defaults") is None
