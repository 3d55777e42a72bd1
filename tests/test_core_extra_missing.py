"""`ExtraMissing`: the one error, and message, for a feature whose extra is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import offload
from offload.core.errors import ExtraMissing


def test_names_the_feature_the_extra_and_the_missing_module() -> None:
    error = ExtraMissing("the HTTP API", "server", "starlette")
    assert (error.feature, error.extra, error.missing) == ("the HTTP API", "server", "starlette")
    assert str(error) == (
        "the HTTP API needs the server extra (starlette is missing): pip install 'offload[server]'"
    )
    assert isinstance(error, offload.ConfigurationError)


def test_of_an_import_error_names_its_top_level_package() -> None:
    error = ExtraMissing.of("offload.client", "client", ModuleNotFoundError(name="httpx._api"))
    assert error.missing == "httpx"
    assert "(httpx is missing): pip install 'offload[client]'" in str(error)


@pytest.mark.parametrize(
    ("hidden", "call", "message"),
    [
        (
            "a2wsgi",
            "from flask import Flask\n"
            "from offload.contrib.flask import Offload\n"
            "Offload(app, Flask('x'), api_options={'auth': False})\n",
            "mounting the HTTP API in Flask needs the flask extra (a2wsgi is missing): "
            "pip install 'offload[flask]'",
        ),
        (
            "psycopg",
            "offload.App('postgresql://nobody@localhost/none').check()\n",
            "the PostgreSQL backend needs the postgres extra (psycopg is missing): "
            "pip install 'offload[postgres]'",
        ),
        (
            "starlette",
            "from offload.server import dashboard\ndashboard(app)\n",
            "the dashboard needs the server extra (starlette is missing): "
            "pip install 'offload[server]'",
        ),
        (
            "prometheus_client",
            "from offload.cli.workers import _worker_metrics\n_worker_metrics()\n",
            "--metrics-port needs the metrics extra (prometheus_client is missing): "
            "pip install 'offload[metrics]'",
        ),
        (
            "httpx",
            "import offload.client\n",
            "offload.client needs the client extra (httpx is missing): "
            "pip install 'offload[client]'",
        ),
        (
            "starlette",
            "offload.asgi(app)\n",
            "the HTTP API needs the server extra (starlette is missing): "
            "pip install 'offload[server]'",
        ),
    ],
)
def test_each_feature_raises_it(hidden: str, call: str, message: str, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        f"sys.modules[{hidden!r}] = None  # as if not installed\n"
        "import offload\n"
        f"app = offload.App('sqlite:///{tmp_path / 'x.db'}')\n"
        "try:\n"
        + "".join(f"    {line}\n" for line in call.splitlines())
        + "except offload.ExtraMissing as exc:\n"
        "    print(exc.extra, exc.missing)\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert message in done.stdout, done.stdout
