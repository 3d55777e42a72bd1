"""The types of the Python API, checked by running mypy: `usage_ok.py` must pass, and
`usage_wrong.py` must give exactly the errors its `# E:` markers name."""

from __future__ import annotations

import re
import tokenize
from pathlib import Path

import pytest
from mypy import api

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
_MARKER = re.compile(r"^#\s*E:\s*(?P<text>.+?)\s*$")
_ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: (?P<message>.*)$")


def expected_errors(path: Path) -> dict[int, str]:
    """Line number -> the text its `# E:` comment says the error contains."""
    found = {}
    with path.open("rb") as source:
        for token in tokenize.tokenize(source.readline):
            marker = _MARKER.match(token.string) if token.type == tokenize.COMMENT else None
            if marker:
                found[token.start[0]] = marker["text"]
    return found


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[int, list[str]]]:
    """Errors mypy reports per file name and line, over both files in one run."""
    cache = tmp_path_factory.mktemp("mypy-cache")
    stdout, stderr, _status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(cache),
            "--no-error-summary",
            "--show-error-codes",
            str(HERE / "usage_ok.py"),
            str(HERE / "usage_wrong.py"),
        ]
    )
    assert not stderr, stderr
    errors: dict[str, dict[int, list[str]]] = {}
    for line in stdout.splitlines():
        match = _ERROR.match(line)
        if match:
            name = Path(match["file"]).name
            errors.setdefault(name, {}).setdefault(int(match["line"]), []).append(match["message"])
    return errors


#: One mypy run per session: both tests in one xdist group (`--dist loadgroup`).
pytestmark = pytest.mark.xdist_group("mypy")


@pytest.mark.timeout(600)
def test_typed_usages_pass(mypy_output: dict[str, dict[int, list[str]]]) -> None:
    assert mypy_output.get("usage_ok.py", {}) == {}


@pytest.mark.timeout(600)
def test_each_wrong_usage_is_reported(mypy_output: dict[str, dict[int, list[str]]]) -> None:
    expected = expected_errors(HERE / "usage_wrong.py")
    assert len(expected) >= 15
    reported = mypy_output.get("usage_wrong.py", {})
    missing = {
        line: text
        for line, text in expected.items()
        if not any(text in message for message in reported.get(line, []))
    }
    assert not missing, f"errors mypy no longer reports (line: text): {missing}\n{reported}"
    unexpected = {line: messages for line, messages in reported.items() if line not in expected}
    assert not unexpected, f"errors on lines without a marker: {unexpected}"
