"""Every code example of the docs and of README.md runs, as written (see
`tests/docs/markdown.py` for the convention), so that an example that rots fails the suite.

A test per `##` section that holds code: its id names the page and the section, and a
failure names the block's line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.markdown import PYTHON, SHELL, SHOWN, Example, examples, output_matches
from tests.docs.runner import Run

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
EXAMPLES = [example for page in PAGES for example in examples(page)]

#: Blocks shown but not run, by page and first line: each needs a reason in its marker, and
#: the list is pinned here so that adding one is a visible change.
NOT_RUN = {
    ("README.md", "python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/offload demo"),
    ("README.md", "scripts/test"),
    ("operations.md", "offload --app jobs:app scheduler --keep-succeeded 1d --keep-dead never"),
    ("operations.md", "sudo systemctl enable --now offload-worker"),
    ("contributing.md", "pip install -e '.[docs]'"),
    ("quickstart.md", "python3 -m venv .venv && . .venv/bin/activate"),
    ("events.md", "export OFFLOAD_URL=sqlite:///report.db"),  # tests/browser opens the page
    ("scaling.md", "sudo .venv/bin/python benchmarks/multihost.py --hosts 1,2,4,8 --jobs 20000"),
}


@pytest.mark.parametrize(
    "example", [e for e in EXAMPLES if e.runs], ids=lambda e: getattr(e, "id", None)
)
def test_example(example: Example, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("pg_url") if example.postgres else None
    second = request.getfixturevalue("pg_url_two") if example.shards else None
    Run(example, tmp_path, url, second).run()


def test_the_readme_example_is_one_that_runs() -> None:
    """README's example (item 7 of issue 13): its jobs.py, a worker and a caller, checked."""
    (example,) = [e for e in EXAMPLES if e.id == "README.md::example"]
    kinds = [(b.lang, b.writes, b.background, b.expected is not None) for b in example.blocks]
    assert kinds[:4] == [
        ("python", "jobs.py", False, False),
        ("sh", None, True, False),
        ("python", "enqueue.py", False, False),
        ("sh", None, False, True),
    ]
    assert "offload --app jobs:app worker -q mail" in example.blocks[1].code


def test_every_block_names_a_known_language() -> None:
    unknown = [
        f"{block.where}: {block.lang or '(none)'}"
        for example in EXAMPLES
        for block in example.blocks
        if block.lang not in PYTHON | SHELL | SHOWN
    ]
    assert not unknown, "blocks must name one of the known languages"


def test_blocks_not_run_are_few_and_pinned() -> None:
    shown_only = {
        (block.path.name, block.code.strip().splitlines()[0])
        for example in EXAMPLES
        for block in example.blocks
        if block.not_run is not None
    }
    assert shown_only == NOT_RUN
    for example in EXAMPLES:
        for block in example.blocks:
            if block.directive and block.directive.startswith("not run"):
                assert block.not_run, f"{block.where}: `not run` needs a reason"


def test_directives_are_known() -> None:
    for example in EXAMPLES:
        for block in example.blocks:
            directive = block.directive
            assert directive is None or directive == "background" or block.not_run, (
                f"{block.where}: unknown directive {directive!r}"
            )


@pytest.mark.parametrize(
    ("expected", "actual", "matches"),
    [
        ("42\n", "42\n", True),
        ("job ... succeeded", "job 17 is succeeded", True),
        ("a\n...\nz", "a\nb\nc\nz\n", True),
        ("a\nb", "a\nc", False),
        ("a", "a\nb", False),
    ],
)
def test_output_matching(expected: str, actual: str, matches: bool) -> None:
    assert output_matches(expected, actual) is matches
