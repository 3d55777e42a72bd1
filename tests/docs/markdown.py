"""The code examples of a Markdown page, as the docs tests run them.

The convention (docs/contributing.md says it for authors):

- Each `##` section of a page is one example: its blocks run in order, in one fresh
  directory, and a test id names the page and the section.
- ```` ```python title="jobs.py" ```` (any relative file name as title) writes that file;
  later blocks, workers and callers of the section import it.
- ```` ```python ```` without a title runs as a script in a fresh interpreter.
- ```` ```sh ```` runs as one bash script (`set -e`); `offload` and `python` there are the
  interpreter under test.
- ```` ```text title="output" ```` right after a block is what that block must print
  (stdout); `...` matches anything, within a line or across lines.
- An HTML comment right before a block steers it:
  `<!-- docs-test: background -->` starts each line of the next `sh` block as a process that
  runs until the section ends (a worker), then gets SIGTERM and must exit 0;
  `<!-- docs-test: not run: REASON -->` shows the block without running it (rare: the test
  pins the list).
- `<!-- docs-test: postgres -->` anywhere in a section runs it against a fresh PostgreSQL
  database, whose URL is in `$OFFLOAD_URL` (and `offload.App()` reads it);
  `<!-- docs-test: postgres shards -->` also gives a fresh database on a second cluster,
  its URL in `$REPORTS_URL` (the sharding page's second shard).
- Blocks of other languages (`text`, `mermaid`, `ini`, ...) are not code and are not run;
  every block must name its language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

#: Languages that run, and languages that are shown only (diagrams, output, config files).
PYTHON = frozenset({"python", "py"})
SHELL = frozenset({"sh", "bash", "shell"})
SHOWN = frozenset({"text", "mermaid", "ini", "toml", "yaml", "json", "markdown", "javascript"})

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>.*)$")
_TITLE = re.compile(r'title="(?P<title>[^"]*)"')
_DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<what>.*?)\s*-->\s*$")
_HEADING = re.compile(r"^##\s+(?P<title>.+?)\s*#*\s*$")
_FILE_NAME = re.compile(r"^[\w.-]+(/[\w.-]+)*\.\w+$")


@dataclass
class Block:
    """One fenced block: where it is, what it says, and how the docs tests treat it."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    title: str | None
    code: str
    directive: str | None = None
    #: The output the block must print, from the `output` block after it.
    expected: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in PYTHON | SHELL and not self.not_run

    @property
    def writes(self) -> str | None:
        """The file this block writes, if its title names one."""
        if self.title and _FILE_NAME.match(self.title) and not self.title.startswith("/"):
            return self.title
        return None

    @property
    def not_run(self) -> str | None:
        """The reason this block is shown without running, if it is."""
        if self.directive and self.directive.startswith("not run:"):
            return self.directive.removeprefix("not run:").strip()
        return None

    @property
    def background(self) -> bool:
        return self.directive == "background"


@dataclass
class Example:
    """The blocks of one `##` section, run together in one directory."""

    path: Path
    section: str
    line: int
    blocks: list[Block] = field(default_factory=list)
    postgres: bool = False
    #: A second PostgreSQL cluster too (`postgres shards`).
    shards: bool = False

    @property
    def id(self) -> str:
        return f"{self.path.name}::{slug(self.section)}"

    @property
    def runs(self) -> bool:
        return any(block.runs and not block.writes for block in self.blocks)


def slug(text: str) -> str:
    """A heading as a test-id fragment: `Retries and backoff` -> `retries-and-backoff`."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def blocks(path: Path) -> list[tuple[str, int, Block]]:
    """Every fenced block of a page, with the `##` section it is in (and that section's
    line); directives and expected outputs attached."""
    lines = path.read_text().splitlines()
    found: list[tuple[str, int, Block]] = []
    section, section_line = "(top)", 1
    directive: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = _HEADING.match(line)
        if heading:
            section, section_line = heading["title"], i + 1
        if m := _DIRECTIVE.match(line):
            directive = m["what"]
            if directive in ("postgres", "postgres shards"):
                found.append(
                    (section, section_line, Block(path, i + 1, "directive", None, directive))
                )
                directive = None
            i += 1
            continue
        fence = _FENCE.match(line)
        if not fence:
            if line.strip():
                directive = None
            i += 1
            continue
        indent, marker, info = fence["indent"], fence["fence"], fence["info"]
        lang = info.split()[0] if info.split() else ""
        title = m["title"] if (m := _TITLE.search(info)) else None
        body: list[str] = []
        i += 1
        while i < len(lines) and not re.match(rf"^\s*{re.escape(marker)}\s*$", lines[i]):
            body.append(lines[i].removeprefix(indent))
            i += 1
        code = "\n".join(body) + "\n"
        block = Block(path, i - len(body), lang, title, code, directive)
        directive = None
        if lang == "text" and (title or "").lower() == "output" and found:
            previous = found[-1][2]
            if previous.lang in PYTHON | SHELL and previous.expected is None:
                previous.expected = code
                i += 1
                continue
        found.append((section, section_line, block))
        i += 1
    return found


def examples(path: Path) -> list[Example]:
    """The page's examples, one per `##` section that holds code."""
    by_section: dict[tuple[str, int], Example] = {}
    for section, line, block in blocks(path):
        example = by_section.setdefault((section, line), Example(path, section, line))
        if block.lang == "directive":
            example.postgres = True
            example.shards = example.shards or block.code == "postgres shards"
        else:
            example.blocks.append(block)
    return [example for example in by_section.values() if example.blocks]


def output_matches(expected: str, actual: str) -> bool:
    """Whether `actual` is `expected`, where `...` matches any text (lines compared without
    trailing blanks, and without leading or trailing empty lines)."""

    def tidy(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()).strip("\n")

    pattern = re.escape(tidy(expected)).replace(re.escape("..."), r"[\s\S]*?")
    return re.fullmatch(pattern, tidy(actual)) is not None
