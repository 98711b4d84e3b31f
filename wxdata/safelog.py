"""The one PHI-safe way to log an exception: its type, SQLSTATE, constraint and where it was raised.

An exception's text is never logged: PostgreSQL's messages carry row values (``DETAIL: Key
(student_number)=(...) already exists``, ``Failing row contains (...)``), and an exception raised
by application code may quote whatever it was handed. So wxdata never calls ``log.exception``,
never passes ``exc_info`` and never formats ``str(exc)``/``repr(exc)`` into a log record; it calls
:func:`log_error` (or :func:`describe` for a reason inside a message), which keeps only:

- the exception's class name (and the class names of its cause/context chain);
- for a database error, the SQLSTATE and the constraint name (schema names, never values);
- the module, function and line where it was raised (code locations, never values).

:func:`guard_library_loggers` puts a filter on psycopg's own loggers, which do format exception
text into some warnings (``error ignored exiting <pipeline>: ...``): exception arguments of
their records are replaced by their description and ``exc_info`` is dropped.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

import psycopg

#: Loggers of libraries wxdata drives whose records may quote an exception's text.
LIBRARY_LOGGERS = ("psycopg", "psycopg.pool", "psycopg_pool")


def _where(exc: BaseException) -> str:
    tb = exc.__traceback__
    if tb is None:
        return ""
    frame = traceback.extract_tb(tb)[-1]
    module = frame.filename.rsplit("/", 1)[-1]
    return f" at {module}:{frame.lineno} in {frame.name}"


def _one(exc: BaseException) -> str:
    parts = [type(exc).__name__]
    if isinstance(exc, psycopg.Error):
        if exc.sqlstate:
            parts.append(f"sqlstate={exc.sqlstate}")
        constraint = exc.diag.constraint_name
        if constraint:
            parts.append(f"constraint={constraint}")
    return " ".join(parts)


def describe(exc: BaseException) -> str:
    """``UniqueViolation sqlstate=23505 constraint=students_student_number_key at crud.py:12 in f``.

    The cause chain is named by class only (``caused by OSError``); no message is ever read.
    """
    out = _one(exc) + _where(exc)
    seen = {id(exc)}
    link = exc.__cause__ or exc.__context__
    while link is not None and id(link) not in seen and len(seen) < 5:
        seen.add(id(link))
        out += f"; caused by {_one(link)}"
        link = link.__cause__ or link.__context__
    return out


def log_error(
    logger: logging.Logger, message: str, exc: BaseException, *args: object,
    level: int = logging.ERROR,
) -> None:
    """Log ``message % args`` followed by ``describe(exc)``; never the exception's text.

    ``args`` must themselves be PHI-free (entity names, action names, counts).
    """
    if logger.isEnabledFor(level):
        logger.log(level, message + " [%s]", *args, describe(exc))


class ExceptionTextFilter(logging.Filter):
    """Rewrite a record so no exception text can reach a handler (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace exception arguments by their description; drop ``exc_info``/``exc_text``."""
        args: Any = record.args
        if isinstance(args, tuple):
            record.args = tuple(describe(a) if isinstance(a, BaseException) else a for a in args)
        elif isinstance(args, dict):
            record.args = {k: describe(v) if isinstance(v, BaseException) else v
                           for k, v in args.items()}
        if isinstance(record.msg, BaseException):
            record.msg = describe(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.msg} [{describe(record.exc_info[1])}]"
        record.exc_info = None
        record.exc_text = None
        return True


_FILTER = ExceptionTextFilter()


def guard_library_loggers() -> None:
    """Install :class:`ExceptionTextFilter` on psycopg's loggers (idempotent)."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
