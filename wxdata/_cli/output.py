"""What commands print: tables for people, JSON for machines, progress on stderr.

Data goes to stdout; progress and errors go to stderr, so ``wxdata ... --json | jq`` and
``wxdata ... > file`` carry only data. Progress shows when stderr is a terminal, or with ``-v``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TextIO


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple | list | frozenset | set):
        return ",".join(_cell(v) for v in value)
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, boxed: bool = True) -> str:
    """A plain-text table: boxed (``+---+``) or, with ``boxed=False``, aligned columns.

    Numbers are right-aligned; everything else left-aligned; ``None`` prints empty.
    """
    body = [[_cell(v) for v in r] for r in rows]
    cells = [[str(h) for h in headers], *body]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [bool(body) and all(isinstance(r[i], int | float) and not isinstance(r[i], bool)
                                  for r in rows if r[i] is not None) for i in range(len(headers))]

    def fmt(row: Sequence[str], header: bool = False) -> list[str]:
        return [c.rjust(w) if numeric[i] and not header else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))]

    if not boxed:
        lines = ["  ".join(fmt(cells[0], True)).rstrip(),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(fmt(r)).rstrip() for r in cells[1:]]
        return "\n".join(lines)
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [line, "| " + " | ".join(fmt(cells[0], True)) + " |", line]
    out += ["| " + " | ".join(fmt(r)) + " |" for r in cells[1:]]
    out.append(line)
    return "\n".join(out)


def to_json(value: Any, *, indent: int | None = 2) -> str:
    """One JSON document (dates, UUIDs and decimals as strings; keys sorted)."""
    return json.dumps(value, indent=indent, sort_keys=True, default=_default, ensure_ascii=False)


def to_json_line(value: Any) -> str:
    """One NDJSON line (no newline inside)."""
    return json.dumps(value, separators=(",", ":"), default=_default, ensure_ascii=False)


def _default(value: Any) -> Any:
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def progress_wanted(verbose: bool, stream: TextIO | None = None) -> bool:
    """Progress shows when stderr is a terminal, or with ``-v``."""
    target = stream or sys.stderr
    try:
        tty = target.isatty()
    except (AttributeError, ValueError):
        tty = False
    return verbose or tty


class Progress:
    """Progress lines on stderr: rewritten in place on a terminal, one per update otherwise
    (at most one every ``interval`` seconds, plus the final one)."""

    def __init__(self, enabled: bool, *, interval: float = 1.0, stream: TextIO | None = None
                 ) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.interval = interval
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self._last = 0.0
        self._open = False

    def update(self, text: str, *, force: bool = False) -> None:
        """Show ``text`` (throttled unless ``force``)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self._open = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self, text: str | None = None) -> None:
        """End the progress line (with a last ``text``)."""
        if not self.enabled:
            return
        if text is not None:
            self.update(text, force=True)
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


@contextmanager
def ticking(progress: Progress, what: str) -> Iterator[None]:
    """Show ``what… N s`` every second while the block runs (for work without a counter)."""
    if not progress.enabled:
        yield
        return
    stop = threading.Event()
    started = time.monotonic()

    def tick() -> None:
        while not stop.wait(1.0):
            progress.update(f"{what}… {time.monotonic() - started:.0f} s", force=True)

    progress.update(f"{what}…", force=True)
    thread = threading.Thread(target=tick, name="wxdata-cli-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        progress.done()


class GuardedOutput:
    """A text sink that counts what goes through it and remembers a closed pipe.

    Wraps stdout (or a file) for streaming commands: ``broken`` tells the command that the reader
    went away (``| head``), so it ends quietly instead of reporting a write failure.
    """

    def __init__(self, target: TextIO, progress: Progress | None = None, what: str = "") -> None:
        self.target = target
        self.progress = progress
        self.what = what
        self.chars = 0
        self.lines = 0
        self.broken = False

    def write(self, text: str) -> int:
        """Write ``text`` through; a closed pipe is remembered, then re-raised."""
        try:
            written = self.target.write(text)
        except BrokenPipeError:
            self.broken = True
            raise
        self.chars += len(text)
        self.lines += text.count("\n")
        if self.progress is not None:
            self.progress.update(f"{self.what}: {self.lines:,} lines, {self.chars / 1e6:.1f} MB")
        return written

    def flush(self) -> None:
        """Flush the target (a closed pipe is remembered, then re-raised)."""
        try:
            self.target.flush()
        except BrokenPipeError:
            self.broken = True
            raise


__all__ = ["GuardedOutput", "Progress", "progress_wanted", "table", "ticking", "to_json",
           "to_json_line"]
