"""Find the fenced code blocks of a Markdown page, in order.

A small collector rather than pytest-examples: the pages need three things it does not give
together — blocks of one page run *in order in one namespace* (a later block uses what an earlier
one defined), blocks with a ``title="path"`` are *files* (a module or a migration written to disk,
then imported or migrated, not executed), and an explicit, reasoned skip marker. Markdown fences
are simple enough that a line scanner is exact for what these pages use (``` fences, optionally
indented inside list items).

Rules (also stated in the docs' "About the examples" section):

- a block fenced ```` ```python ```` runs; ```` ```sh ````, ```` ```sql ````, ```` ```text ````
  and the rest never do;
- ```` ```python title="pkg/module.py" ```` is written to ``pkg/module.py`` in a temporary folder
  on ``sys.path`` before the page's runnable blocks execute; ```` ```sql title="sql/NNNN_x.sql" ````
  is a migration applied (with the project's own) to the page's database;
- a runnable block is skipped only when the line just before its fence is
  ``<!-- example: skip REASON -->`` with a non-empty reason.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)(?P<info>[^`]*)$")
_TITLE = re.compile(r'title="(?P<title>[^"]+)"')
_SKIP = re.compile(r"^\s*<!--\s*example:\s*skip\b(?P<reason>.*?)-->\s*$")


@attrs.frozen(slots=True)
class Block:
    """One fenced block: where it is, its language, its title (a file path) and its text."""

    page: str
    line: int
    lang: str
    title: str | None
    code: str
    skip_reason: str | None

    @property
    def runnable(self) -> bool:
        """A Python block that is executed (not a file, not skipped)."""
        return self.lang == "python" and self.title is None and self.skip_reason is None

    def label(self) -> str:
        """``page:line`` for messages."""
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """README.md and every page under docs/, in a stable order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def page_id(path: Path) -> str:
    """The page's path relative to the project root (as given, for a page outside it)."""
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.as_posix()


def blocks(path: Path) -> list[Block]:
    """Every fenced block of the page, in document order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent = opening.group("indent")
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        if i >= len(lines):
            raise ValueError(f"{page_id(path)}:{start + 1}: unclosed code fence")
        i += 1
        title = _TITLE.search(opening.group("info"))
        skip = _SKIP.match(lines[start - 1]) if start > 0 else None
        code = textwrap.dedent("\n".join(line.removeprefix(indent) for line in body)) + "\n"
        out.append(Block(
            page=page_id(path), line=start + 1, lang=opening.group("lang") or "text",
            title=title.group("title") if title else None, code=code,
            skip_reason=skip.group("reason").strip() if skip else None,
        ))
    return out
