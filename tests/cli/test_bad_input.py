"""Bad input on the command line: one `error:` line naming it, nothing stored, never a
traceback; and one bad row never breaks a listing (issue 12, item 6)."""

from __future__ import annotations

import offload
from tests.cli.helpers import assert_one_line_error, offload_cli, run_json
from tests.conformance.helpers import RawDB, is_sqlite

HUGE_ID = str(2**70)


def test_ids_past_64_bits_name_no_job(store: offload.App, env: dict[str, str]) -> None:
    job_id = store.enqueue("noop").id
    for command in ("status", "cancel", "retry"):
        result = offload_cli(command, HUGE_ID, env=env)
        assert_one_line_error(result, 1, f"no job with id {HUGE_ID}")
    page = run_json("jobs", "--cursor", HUGE_ID, env=env)
    assert [job["id"] for job in page["jobs"]] == [job_id]


def test_an_error_quotes_a_readable_part_of_a_huge_argument(
    store: offload.App, env: dict[str, str]
) -> None:
    deep = "[" * 65_000 + "]" * 65_000  # 130 KB, nested past any JSON parser's limit
    result = offload_cli("enqueue", "add", "--args", deep, env=env)
    assert_one_line_error(result, 2, "Invalid value for '--args'", "(130002 characters)")
    assert len(result.stderr) < 600, result.stderr[:1000]
    assert store.jobs() == []


def test_integers_are_read_exactly_and_refused_past_64_bits(
    store: offload.App, env: dict[str, str]
) -> None:
    """orjson reads an integer past 64 bits as a float: 2**64 + 1 was stored as
    1.8446744073709552e+19. The CLI must refuse what the API refuses."""
    for args in (
        "[18446744073709551617]",
        "[-9223372036854775809]",
        "[1, [2, 36893488147419103232]]",
    ):
        result = offload_cli("enqueue", "add", "--args", args, env=env)
        assert_one_line_error(result, 1, "is an integer outside the 64-bit range")
    result = offload_cli("enqueue", "add", "--kwargs", '{"b": 1e400}', env=env)
    assert_one_line_error(result, 1, "argument 'b' is inf")
    for constant in ("NaN", "Infinity", "-Infinity"):
        result = offload_cli("enqueue", "add", "--args", f"[{constant}]", env=env)
        assert_one_line_error(result, 2, "Invalid value for '--args'", "is not JSON")
    assert store.jobs() == []
    edges = [18446744073709551615, -9223372036854775808, 0.1]
    job_id = run_json("enqueue", "echo", "--args", str([edges]), env=env)["id"]
    assert store.job(job_id).job().args == [edges]


def test_a_stored_time_out_of_range_does_not_break_listing(
    store: offload.App, env: dict[str, str], db_url: str
) -> None:
    """`offload jobs` and `status` failed for every job with OverflowError once one row had
    a run time past year 9999 (written before `delay` had a limit, or by hand)."""
    bad, good = store.enqueue("noop").id, store.enqueue("noop").id
    far = "1e30" if is_sqlite(db_url) else "'infinity'"
    RawDB(db_url).execute(f"UPDATE offload_jobs SET run_at = {far} WHERE id = ?", [bad])
    listed = offload_cli("jobs", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [job["id"] for job in run_json("jobs", env=env)["jobs"]] == [good, bad]
    shown = offload_cli("status", str(bad), env=env)
    assert shown.returncode == 0, shown.stderr
    assert "9999-12-31 23:59:59.999Z" in shown.stdout
    assert run_json("status", str(bad), env=env)["run_at"].startswith("9999-12-31T23:59:59")


def test_a_delay_past_the_documented_range_is_refused(
    store: offload.App, env: dict[str, str]
) -> None:
    result = offload_cli("enqueue", "add", "--args", "[1, 2]", "--delay", "1e30", env=env)
    assert_one_line_error(result, 1, "delay must be at most 3155760000 seconds (100 years)")
    assert store.jobs() == []
    listed = offload_cli("jobs", env=env)
    assert listed.returncode == 0, listed.stderr


def test_arguments_that_are_not_utf8_are_one_line_errors(
    store: offload.App, env: dict[str, str]
) -> None:
    """An argument of invalid UTF-8 reaches Python as a lone surrogate: a 40-60 line
    UnicodeEncodeError traceback before."""
    name = "mail\udcff"  # sent as the bytes b"mail\xff"
    commands = [
        (["jobs", "--queue", name], "queue 'mail\\udcff' contains a lone surrogate"),
        (["jobs", "--task", name], "task 'mail\\udcff' contains a lone surrogate"),
        (["enqueue", "noop", "--queue", name], "queue name 'mail\\udcff' contains a lone"),
        (["cron", "pause", name], "schedule name 'mail\\udcff' contains a lone surrogate"),
        (["worker", "--burst", "-q", name], "queue name 'mail\\udcff' contains a lone"),
    ]
    for args, message in commands:
        assert_one_line_error(offload_cli(*args, env=env), 1, message)
    assert store.jobs() == []


def test_a_leader_lease_out_of_range_is_refused_by_name(
    store: offload.App, env: dict[str, str]
) -> None:
    for command in (("worker", "--executor", "thread"), ("scheduler",)):
        result = offload_cli(*command, "--leader-lease", "0.1", env=env)
        assert_one_line_error(result, 1, "leader_lease must be between 0.5 and 3600 seconds")
        result = offload_cli(*command, "--leader-lease", "nan", env=env)
        assert_one_line_error(result, 1, "leader_lease must be between", "got nan")
