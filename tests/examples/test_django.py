"""The Django example project (examples/django_project) on both backends, each run in a
process of its own: see django_scenario.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import offload

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "examples" / "django_project"
SRC = Path(offload.__file__).resolve().parents[1]


def django_env(database: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env["EXAMPLE_DATABASE"] = database
    env["DJANGO_SETTINGS_MODULE"] = "project.settings"
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(PROJECT)])
    return env


def run(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT,
        env=django_env(database),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_transactions_decide_and_results_come_back(db_url: str, tmp_path: Path) -> None:
    database = db_url if db_url.startswith("postgresql") else str(tmp_path / "django.db")
    done = run(database, str(Path(__file__).with_name("django_scenario.py")))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scenario ok" in done.stdout


def test_the_dashboard_is_for_staff_only(db_url: str, tmp_path: Path) -> None:
    database = db_url if db_url.startswith("postgresql") else str(tmp_path / "django.db")
    done = run(database, str(Path(__file__).with_name("django_dashboard_scenario.py")))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dashboard ok" in done.stdout


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            "offload-key",
            "settings.OFFLOAD has no key 'AUTO_MIGRTE'; did you mean 'AUTO_MIGRATE'?",
        ),
        (
            "tasks-option",
            "TASKS['default']['OPTIONS'] has no key 'max_attempt'; did you mean 'max_attempts'?",
        ),
        ("database-alias", "settings.OFFLOAD['DATABASE'] 'replica'; known databases: default"),
    ],
)
def test_a_wrong_setting_stops_the_project_naming_it(
    bad: str, message: str, tmp_path: Path
) -> None:
    env = django_env(str(tmp_path / "django.db"))
    env["DJANGO_SETTINGS_MODULE"] = "tests.examples.django_bad_settings"
    env["PYTHONPATH"] += os.pathsep + str(ROOT)
    env["BAD_SETTING"] = bad
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
