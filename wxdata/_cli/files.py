"""Files named on the command line: read them, or write them atomically and privately."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TextIO

from wxdata._cli.explain import file_error


def read_text(path: str, what: str) -> str:
    """The file's text (stripped); an unreadable file is a usage error (exit 2) naming it."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError as exc:
        raise file_error(exc, f"{what} {path}", writing=False) from None
    except UnicodeDecodeError:
        from wxdata._cli.exits import CliError, Exit

        raise CliError(Exit.USAGE, f"cannot read {what} {path} (not UTF-8 text)",
                       "check the path") from None


@contextmanager
def private_output(path: str, what: str) -> Iterator[TextIO]:
    """Write ``path`` through a temporary file in its directory, mode 0600, renamed into place
    only when the block succeeds (a failed or interrupted run leaves no partial file behind).

    The temporary file is created on entry, so an unwritable path fails (exit 2, naming it)
    before any other work.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(21, "Is a directory", path)
        fd, temp = tempfile.mkstemp(prefix=".wxdata-", suffix=".part", dir=directory)
    except OSError as exc:
        raise file_error(exc, f"{what} {path}", writing=True) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
        os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise


__all__ = ["private_output", "read_text"]
