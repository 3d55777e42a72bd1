"""The pytest plugin of offload, registered by the package (entry point `pytest11`).

Fixtures:

- `offload_app`: the App under test: the one the ini option `offload_app` names
  (`module:attr`, as `offload --app` takes), else a fresh `offload.App` on a SQLite file
  of the test's temporary directory. Override the fixture to hand over another.
- `offload_testing`: an `offload.testing.Harness` on `offload_app`, in manual mode unless
  the test is marked `@pytest.mark.offload(mode="inline")`; the marker's `url` runs it on
  that (fresh) database instead of a temporary SQLite file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offload.app import App
from offload.core.errors import ConfigurationError, _did_you_mean, shorten
from offload.runtime.loader import load_app
from offload.testing._harness import Harness, check_mode, harness

#: What `@pytest.mark.offload(...)` takes.
MARKER_OPTIONS = ("mode", "url")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "offload_app", "the offload App the offload_app fixture returns (module:attr)", "string"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "offload(mode='manual'|'inline', url=None): how offload_testing runs this test's jobs",
    )


def marker_options(node: pytest.Item) -> dict[str, Any]:
    """The options of the test's `offload` marker (the closest one), checked."""
    marker = node.get_closest_marker("offload")
    if marker is None:
        return {}
    if marker.args:
        raise ConfigurationError(
            f"@pytest.mark.offload takes keywords ({', '.join(MARKER_OPTIONS)}), "
            f"got {shorten(marker.args)}"
        )
    for key in marker.kwargs:
        if key not in MARKER_OPTIONS:
            hint = _did_you_mean(key, list(MARKER_OPTIONS), "options")
            raise ConfigurationError(f"@pytest.mark.offload has no option {key!r}{hint}")
    options = dict(marker.kwargs)
    if "mode" in options:
        options["mode"] = check_mode(options["mode"])
    return options


@pytest.fixture
def offload_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    """The App under test (see the module docstring)."""
    path = request.config.getini("offload_app")
    if path:
        yield load_app(path)
        return
    app = App(f"sqlite:///{tmp_path / 'offload.db'}")
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def offload_testing(request: pytest.FixtureRequest, offload_app: App) -> Iterator[Harness]:
    """A harness on `offload_app` for this test, manual unless marked otherwise."""
    options = marker_options(request.node)
    with harness(offload_app, **options) as under_test:
        yield under_test
