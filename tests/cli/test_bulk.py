"""`offload retry`, `cancel` and `purge` over many jobs: by ids, by filters, and bad input."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import orjson
import pytest

import offload
from offload.backends.params import ClaimParams
from offload.core.states import JobState
from tests.cli.helpers import ROOT, assert_one_line_error, offload_cli, run_json
from tests.conformance.helpers import RawDB


def states(store: offload.App) -> dict[int, str]:
    return {job.id: str(job.state) for job in store.jobs(limit=1000)}


def test_cancel_and_retry_by_filter_print_how_many_changed(
    store: offload.App, env: dict[str, str]
) -> None:
    mail = [store.enqueue("noop", queue="mail").id for _ in range(4)]
    other = [store.enqueue("add", [1, 2]).id for _ in range(2)]
    running = store.backend.claims.claim(ClaimParams("w1", "mail", 1, 30.0))[0].id

    cancelled = offload_cli("cancel", "--queue", "mail", env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == "cancelled 3 jobs; 1 job running, asked to stop\n"
    job = store.job(running).job()
    assert (job.state, job.cancel_requested) == (JobState.RUNNING, True)
    assert {states(store)[i] for i in mail if i != running} == {"cancelled"}
    assert {states(store)[i] for i in other} == {"available"}

    retried = offload_cli("retry", "--queue", "mail", "--task", "noop", env=env)
    assert (retried.returncode, retried.stdout) == (0, "retried 3 jobs\n")
    assert {states(store)[i] for i in mail if i != running} == {"available"}
    nothing = offload_cli("retry", "--state", "dead", env=env)
    assert (nothing.returncode, nothing.stdout) == (0, "retried 0 jobs\n")


def test_several_ids_and_ids_with_filters(store: offload.App, env: dict[str, str]) -> None:
    a, b, c = (store.enqueue("noop", queue=q).id for q in ("x", "y", "x"))
    assert run_json("cancel", str(a), str(b), "--queue", "x", env=env) == {
        "cancelled": 1,
        "stop_requested": 0,
        "ids": [a],
    }  # ids and filters: all must hold
    assert states(store) == {a: "cancelled", b: "available", c: "available"}
    assert run_json("cancel", str(b), str(c), "999999", env=env)["ids"] == [b, c]
    assert run_json("retry", str(a), str(b), env=env) == {"retried": 2, "ids": [a, b]}
    # One id alone keeps the single-job form, which explains a refusal.
    assert_one_line_error(offload_cli("retry", str(a), env=env), 1, f"cannot retry job {a}")


def test_a_bulk_command_without_ids_or_filters_is_refused(
    store: offload.App, env: dict[str, str], db_url: str
) -> None:
    store.cancel(store.enqueue("noop").id)
    store.enqueue("noop")
    before = RawDB(db_url).all_rows()
    for command in ("retry", "cancel"):
        result = offload_cli(command, env=env)
        assert_one_line_error(result, 1, "needs job ids or at least one filter", "--all")
    assert_one_line_error(offload_cli("purge", "--yes", env=env), 1, "needs job ids")
    assert RawDB(db_url).all_rows() == before
    # Neither --all nor --yes can come from the environment.
    sneaky = {**env, "OFFLOAD_CANCEL_ALL_JOBS": "1", "OFFLOAD_PURGE_YES": "1"}
    assert_one_line_error(offload_cli("cancel", env=sneaky), 1, "needs job ids")
    assert_one_line_error(offload_cli("purge", "--all", env=sneaky), 2, "pass --yes")
    assert RawDB(db_url).all_rows() == before
    assert offload_cli("cancel", "--all", env=env).stdout == "cancelled 1 job\n"
    assert offload_cli("purge", "--all", "--yes", env=env).stdout == "purged 2 jobs\n"
    assert store.jobs() == []


@pytest.mark.parametrize("value", ["yesterday", "1y", "-5m", "2026-13-01", ""])
def test_a_time_filter_that_is_not_a_time_names_the_option_and_the_forms(
    store: offload.App, env: dict[str, str], value: str
) -> None:
    result = offload_cli("cancel", "--before", value, env=env)
    assert_one_line_error(
        result, 2, "Invalid value for '--before'", f"{value!r} is not a time", "ISO 8601", "30m"
    )


def test_time_filters_take_iso_times_and_ages(store: offload.App, env: dict[str, str]) -> None:
    job_id = store.enqueue("noop").id
    assert offload_cli("cancel", "--before", "1h", env=env).stdout == "cancelled 0 jobs\n"
    assert offload_cli("cancel", "--before", "2000-01-01", env=env).stdout == "cancelled 0 jobs\n"
    after = offload_cli("cancel", "--after", "2000-01-01T00:00:00+02:00", "--before", "2h", env=env)
    assert after.stdout == "cancelled 0 jobs\n"
    assert offload_cli("cancel", "--after", "1d", env=env).stdout == "cancelled 1 job\n"
    assert store.job(job_id).status() is JobState.CANCELLED


def test_a_state_the_command_never_changes_is_refused(
    store: offload.App, env: dict[str, str]
) -> None:
    result = offload_cli("retry", "--state", "running", env=env)
    assert_one_line_error(result, 2, "'running' is not one of", "cancelled", "dead", "shed")


def test_purge_deletes_finished_jobs_after_confirmation(
    store: offload.App, env: dict[str, str]
) -> None:
    done = store.enqueue("noop", queue="mail").id
    store.cancel(done)
    kept = store.enqueue("noop", queue="mail").id
    refused = offload_cli("purge", "--queue", "mail", env=env)  # stdin is not a terminal
    assert_one_line_error(refused, 2, "pass --yes to confirm")
    assert sorted(states(store)) == sorted([done, kept])
    result = offload_cli("purge", "--queue", "mail", "--yes", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == {"purged": 1}
    assert states(store) == {kept: "available"}


@pytest.mark.parametrize(("answer", "deleted"), [("n", False), ("y", True)])
def test_purge_asks_on_a_terminal(
    store: offload.App, env: dict[str, str], answer: str, deleted: bool
) -> None:
    job_id = store.enqueue("noop", queue="mail").id
    store.cancel(job_id)
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "offload", "purge", "--queue", "mail", "--after", "1h"],
            cwd=ROOT,
            env=env,
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(leader, f"{answer}\n".encode())
        out, err = process.communicate(timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    assert "Delete every finished job with queue mail, enqueued after 1:00:00 ago" in err
    if deleted:
        assert (process.returncode, out) == (0, "purged 1 job\n")
        assert store.jobs() == []
    else:
        assert process.returncode == 1
        assert err.rstrip().endswith("error: not confirmed: nothing deleted")
        assert [job.id for job in store.jobs()] == [job_id]
