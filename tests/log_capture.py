"""Every log record of every logger, kept for inspection: the root logger and the database
libraries' loggers at DEBUG, with wxdata's guard on the libraries' loggers installed."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from wxdata.safelog import guard_library_loggers

#: The loggers set to DEBUG besides the root one.
LIBRARY_LOGGERS = ("psycopg", "psycopg.pool", "psycopg_pool", "wxdata")


class Capture(logging.Handler):
    """Keeps every record it is handed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def capture_all() -> Iterator[Capture]:
    """Root and the libraries' loggers at DEBUG, every record kept; levels restored after."""
    handler = Capture()
    root = logging.getLogger()
    names = LIBRARY_LOGGERS
    levels = [root.level, *(logging.getLogger(n).level for n in names)]
    root.setLevel(logging.DEBUG)
    for n in names:
        logging.getLogger(n).setLevel(logging.DEBUG)
    root.addHandler(handler)
    guard_library_loggers()
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        for n, level in zip(names, levels[1:], strict=True):
            logging.getLogger(n).setLevel(level)


def texts(record: logging.LogRecord) -> list[str]:
    """Every text a log pipeline could ship for ``record``: message, arguments, ``exc_text``,
    the formatted record, stack and traceback."""
    out = [record.getMessage(), repr(record.args), record.exc_text or "",
           logging.Formatter().format(record), record.stack_info or ""]
    if record.exc_info and record.exc_info[1] is not None:
        out.append("".join(traceback.format_exception(*record.exc_info)))
    return out
