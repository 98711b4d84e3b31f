"""The exit codes every ``wxdata`` command uses, and the error that carries one to ``main``."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    """Exit status of a ``wxdata`` command."""

    OK = 0
    #: a check failed (broken chain, failed compliance check, unhealthy replica), the subject
    #: asked about has no records (student, entity or user), or the data refused the change
    CHECK_FAILED = 1
    #: bad arguments or configuration: unreadable/unwritable file, missing or bad key, wrong
    #: credentials or database name, schema not migrated
    USAGE = 2
    #: PostgreSQL or Redis could not be reached
    UNAVAILABLE = 3
    #: Ctrl-C (SIGINT)
    INTERRUPTED = 130


EPILOG = """\
exit codes (every command):
  0    success (also when the reader of a pipe closes it early, e.g. | head)
  1    a check failed (broken audit chain, failed compliance check, unhealthy
       replica), the subject asked about has no records (e.g. an unknown
       student), or the data refused the change (e.g. a conflict while seeding)
  2    usage or configuration error: bad arguments, unreadable or unwritable
       file, missing or bad key, wrong credentials or database name, schema not
       migrated
  3    unavailable: PostgreSQL or Redis could not be reached
  130  interrupted (Ctrl-C)

Errors are one line on stderr naming the cause and the fix; --debug shows the
traceback instead. Data goes to stdout (tables for people, --json for machines);
progress goes to stderr when it is a terminal or with -v."""


class CliError(Exception):
    """A command ends with ``code`` and one line ``error: <message> — <hint>`` on stderr.

    ``message`` and ``hint`` must be free of PHI: they name causes, settings and paths the
    operator typed, never a value read from the database.
    """

    def __init__(self, code: Exit, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def line(self) -> str:
        """The one-line report printed on stderr."""
        return f"error: {self.message}" + (f" — {self.hint}" if self.hint else "")


__all__ = ["EPILOG", "CliError", "Exit"]
