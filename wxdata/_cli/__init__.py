"""Shared plumbing of the ``wxdata`` command line: exit codes, error lines, output, progress."""

from wxdata._cli.args import at_least, seconds
from wxdata._cli.exits import EPILOG, CliError, Exit
from wxdata._cli.explain import (
    config_error,
    data_error,
    file_error,
    os_error,
    postgres_error,
    postgres_target,
    redis_error,
)
from wxdata._cli.files import private_output, read_text
from wxdata._cli.output import (
    GuardedOutput,
    Progress,
    progress_wanted,
    table,
    ticking,
    to_json,
    to_json_line,
)

__all__ = [
    "EPILOG", "CliError", "Exit", "GuardedOutput", "Progress", "at_least", "config_error",
    "data_error", "file_error", "os_error", "postgres_error", "postgres_target", "private_output",
    "progress_wanted", "read_text", "redis_error", "seconds", "table", "ticking", "to_json",
    "to_json_line",
]
