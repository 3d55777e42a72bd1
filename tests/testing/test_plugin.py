"""The pytest plugin, as a user's suite meets it: suites run with pytester in a subprocess."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

JOBS = """
import offload

app = offload.App("sqlite:///never-used.db")

@app.task(name="welcome", queue="mail")
def send_welcome(user_id: int, lang: str = "en") -> str:
    follow_up.enqueue(user_id)
    return f"welcome {user_id} ({lang})"

@app.task(name="follow_up")
def follow_up(user_id: int) -> int:
    return user_id
"""

PASSING = """
import pytest
from jobs import follow_up, send_welcome

def test_manual(offload_testing):
    send_welcome.enqueue(42, lang="fr")
    offload_testing.assert_enqueued(send_welcome, args=[42], kwargs={"lang": "fr"}, queue="mail")
    offload_testing.refute_enqueued(follow_up)
    assert offload_testing.drain().succeeded == 2
    assert offload_testing.all_enqueued() == []

def test_perform(offload_testing):
    assert offload_testing.perform_job(send_welcome, 7) == "welcome 7 (en)"

@pytest.mark.offload(mode="inline")
def test_inline(offload_testing):
    assert send_welcome.enqueue(1).result() == "welcome 1 (en)"
    assert follow_up.enqueue(5).result() == 5

def test_the_app_is_the_one_named(offload_app):
    import jobs
    assert offload_app is jobs.app
"""

FAILING = """
import datetime
import pytest
from jobs import send_welcome

def test_not_json(offload_testing):
    send_welcome.enqueue(datetime.date(2026, 1, 1))

def test_wrong_args(offload_testing):
    send_welcome.enqueue(42)
    offload_testing.assert_enqueued(send_welcome, args=[43])

@pytest.mark.offload(mod="inline")
def test_bad_marker(offload_testing):
    pass
"""


def run(pytester: pytest.Pytester, tests: str) -> pytest.RunResult:
    pytester.makepyfile(jobs=JOBS, test_jobs=tests)
    pytester.makeini("[pytest]\noffload_app = jobs:app\n")
    return pytester.runpytest_subprocess("-p", "offload.testing.plugin", "-p", "no:cacheprovider")


def test_a_suite_using_the_fixtures_passes(pytester: pytest.Pytester) -> None:
    result = run(pytester, PASSING)
    result.assert_outcomes(passed=4)
    assert not list(pytester.path.glob("never-used.db*"))  # the app's own storage untouched


def test_a_suite_fails_for_the_right_reasons(pytester: pytest.Pytester) -> None:
    result = run(pytester, FAILING)
    result.assert_outcomes(failed=2, errors=1)
    result.stdout.fnmatch_lines(
        [  # errors (at set-up) are reported before failures; "[[]" is fnmatch for "["
            "*ConfigurationError: @pytest.mark.offload has no option 'mod'; did you mean 'mode'?",
            "*SerializationError: argument 0 is a datetime.date, which is not JSON*",
            "*AssertionError: no enqueued job of task 'welcome' with args [[]43]; "
            "enqueued jobs of task 'welcome':",
            "*job 1 (available): args [[]42], kwargs {}, queue 'mail', priority 0",
        ],
        consecutive=False,
    )


def test_without_the_ini_option_offload_app_is_a_fresh_app(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_fresh="""
def test_fresh(offload_app, offload_testing):
    @offload_app.task(name="double")
    def double(x: int) -> int:
        return 2 * x

    handle = double.enqueue(21)
    offload_testing.drain()
    assert handle.result() == 42
"""
    )
    result = pytester.runpytest_subprocess("-p", "offload.testing.plugin")
    result.assert_outcomes(passed=1)


def test_the_package_registers_the_plugin() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    points = project["project"]["entry-points"]["pytest11"]
    assert points == {"offload.testing.plugin": "offload.testing.plugin"}


def installed_entry_point(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the package's pytest11 entry point visible to the runs of `pytester`, as an
    installed offload's would be (the tree under test may not be installed)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    points = project["project"]["entry-points"]["pytest11"]
    dist = pytester.path / "site" / "offload_under_test-0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: offload-under-test\nVersion: 0.0\n"
    )
    lines = "".join(f"{name} = {target}\n" for name, target in points.items())
    (dist / "entry_points.txt").write_text(f"[pytest11]\n{lines}")
    site = str(pytester.path / "site")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH")]))
    )


@pytest.mark.parametrize("also_named", [False, True])
def test_the_entry_point_loads_the_plugin_once(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, also_named: bool
) -> None:
    installed_entry_point(pytester, monkeypatch)
    pytester.makepyfile(jobs=JOBS, test_jobs=PASSING)
    pytester.makeini("[pytest]\noffload_app = jobs:app\n")
    named = ["-p", "offload.testing.plugin"] if also_named else []
    result = pytester.runpytest_subprocess(*named, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
