"""The docs example runner itself: a broken example fails, naming its block."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.markdown import examples
from tests.docs.runner import Run

PAGE = """# A page

## Good

```python title="jobs.py"
VALUE = 42
```

```python
from jobs import VALUE

print(VALUE)
```

```text title="output"
42
```

<!-- docs-test: background -->
```sh
python -c 'import signal, time; signal.signal(signal.SIGTERM, lambda *_: exit(0)); time.sleep(30)'
```

```sh
sleep 1  # the process above has installed its handler by now
```

## Broken script

```python
raise SystemExit(3)
```

## Wrong output

```sh
echo 41
```

```text title="output"
42
```

## Background process that dies

<!-- docs-test: background -->
```sh
false
```

```sh
sleep 0.5
```

## Not run

<!-- docs-test: not run: it would fail -->
```sh
false
```
"""


@pytest.fixture
def page(tmp_path: Path) -> dict[str, Run]:
    path = tmp_path / "page.md"
    path.write_text(PAGE)
    runs = {}
    for number, example in enumerate(examples(path)):
        workdir = tmp_path / f"example{number}"
        workdir.mkdir()
        runs[example.section] = Run(example, workdir, None)
    return runs


def test_sections_blocks_and_directives(page: dict[str, Run]) -> None:
    assert list(page) == [
        "Good",
        "Broken script",
        "Wrong output",
        "Background process that dies",
        "Not run",
    ]
    good = page["Good"].example
    assert good.id == "page.md::good"
    first, second, third, fourth = good.blocks
    assert (first.writes, first.runs) == ("jobs.py", True)
    assert second.expected == "42\n" and second.line == 9
    assert third.background and not fourth.background
    assert not page["Not run"].example.runs


def test_a_good_example_passes(page: dict[str, Run]) -> None:
    page["Good"].run()
    assert (page["Good"].workdir / "jobs.py").read_text() == "VALUE = 42\n"


def test_a_failing_block_fails_naming_its_line(page: dict[str, Run]) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"page\.md:\d+: exit code 3"):
        page["Broken script"].run()


def test_other_output_fails(page: dict[str, Run]) -> None:
    with pytest.raises(pytest.fail.Exception, match="printed something else"):
        page["Wrong output"].run()


def test_a_background_process_that_ended_early_fails(page: dict[str, Run]) -> None:
    with pytest.raises(pytest.fail.Exception, match="`false` exited early, code 1"):
        page["Background process that dies"].run()


def test_a_block_not_run_is_not_run(page: dict[str, Run]) -> None:
    page["Not run"].run()
