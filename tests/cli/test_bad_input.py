"""Bad input on the command line: one `error:` line naming it, nothing stored, never a
traceback; and one bad row never breaks a listing (issue 12, item 6)."""

from __future__ import annotations

import offload
from tests.cli.helpers import assert_one_line_error, offload_cli, run_json

HUGE_ID = str(2**70)


def test_ids_past_64_bits_name_no_job(store: offload.App, env: dict[str, str]) -> None:
    job_id = store.enqueue("noop").id
    for command in ("status", "cancel", "retry"):
        result = offload_cli(command, HUGE_ID, env=env)
        assert_one_line_error(result, 1, f"no job with id {HUGE_ID}")
    page = run_json("jobs", "--before", HUGE_ID, env=env)
    assert [job["id"] for job in page["jobs"]] == [job_id]


def test_an_error_quotes_a_readable_part_of_a_huge_argument(
    store: offload.App, env: dict[str, str]
) -> None:
    deep = "[" * 65_000 + "]" * 65_000  # 130 KB, nested past any JSON parser's limit
    result = offload_cli("enqueue", "add", "--args", deep, env=env)
    assert_one_line_error(result, 2, "Invalid value for '--args'", "(130002 characters)")
    assert len(result.stderr) < 600, result.stderr[:1000]
    assert store.jobs() == []
