"""Turn what went wrong into one PHI-free line with its cause, its fix and its exit code.

Only fixed wording, error classes, SQLSTATEs, host names, ports and paths the operator gave are
used: never an exception's text that could quote a value (PostgreSQL's DETAIL, a row), never a
password (URLs are parsed and only their host and port are shown).
"""

from __future__ import annotations

import errno
import re
import socket

import psycopg
from psycopg.conninfo import conninfo_to_dict

from wxdata._cli.exits import CliError, Exit
from wxdata.config import ConfigError, settings
from wxdata.errors import DataError

#: libpq / psycopg connection messages -> (reason shown, exit code, fix); first match wins.
_PG_REASONS: tuple[tuple[re.Pattern[str], str, Exit, str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), reason, code, fix)
    for pattern, reason, code, fix in (
        (r"connection refused", "connection refused", Exit.UNAVAILABLE,
         "{verb} {var} or start the server"),
        (r"timeout expired|timed out", "timed out", Exit.UNAVAILABLE,
         "check the host, port and network in {var}"),
        (r"failed to resolve host|could not translate host name|name or service not known",
         "unknown host", Exit.UNAVAILABLE, "check the host name in {var}"),
        (r"no such file or directory", "no server on that socket", Exit.UNAVAILABLE,
         "{verb} {var} or start the server"),
        (r"starting up|shutting down|in recovery mode|not yet accepting",
         "the server is starting or stopping", Exit.UNAVAILABLE, "retry in a moment"),
        (r"too many clients|remaining connection slots|too many connections",
         "no connection slots left", Exit.UNAVAILABLE,
         "retry later or lower DB_POOL_MAX / WXDATA_PROCESSES (see `wxdata health`)"),
        (r"password authentication failed|no password supplied|authentication failed"
         r"|pg_hba\.conf", "authentication failed", Exit.USAGE,
         "check the user and password in {var}"),
        (r"role \".*\" does not exist", "no such role", Exit.USAGE,
         "check the user in {var}"),
        (r"database \".*\" does not exist", "no such database", Exit.USAGE,
         "check the database name in {var} (or create it)"),
        (r"permission denied for database|not permitted to log in", "login refused",
         Exit.USAGE, "grant the role CONNECT and LOGIN, or use another role in {var}"),
        (r"ssl|certificate|tls", "TLS negotiation failed", Exit.USAGE,
         "check sslmode / sslrootcert (DB_SSLMODE, DB_SSLROOTCERT) and the server's TLS set-up"),
        (r"server closed the connection|terminating connection|connection is closed"
         r"|consuming input failed|server conn crashed|lost synchronization",
         "the server closed the connection", Exit.UNAVAILABLE, "retry once the server is back"),
    )
)


def postgres_target(url: str | None, *, owner: bool = False) -> tuple[str, str]:
    """Where a command connects (``host:port``, never credentials) and the setting naming it."""
    config = settings()
    chosen: str | None
    if url:
        chosen, var = url, "--database-url"
    elif owner:
        chosen, var = config.owner_url, "WXDATA_MIGRATION_URL (or DATABASE_URL)"
    else:
        chosen, var = config.database_url, "DATABASE_URL"
    if chosen is None:
        return "the embedded server", "DATABASE_URL"
    try:
        params = conninfo_to_dict(chosen)
    except psycopg.Error:
        return "an unparsable URL", var
    host = str(params.get("host") or params.get("hostaddr") or "")
    port = str(params.get("port") or "5432")
    if not host or host.startswith("/"):
        return f"the local socket {host or '(default)'} port {port}", var
    return f"{host}:{port}", var


def postgres_error(exc: psycopg.Error, url: str | None, *, owner: bool = False) -> CliError:
    """A psycopg error as one line: unreachable (3), misconfigured (2) or failed (1)."""
    where, var = postgres_target(url, owner=owner)
    text = str(exc)
    if isinstance(exc, psycopg.ProgrammingError) and exc.sqlstate is None and (
            "connection info" in text or "URI" in text or "conninfo" in text
            or "invalid dsn" in text.lower() or "invalid connection option" in text):
        return CliError(Exit.USAGE, f"{var} is not a valid PostgreSQL URL",
                        "use postgresql://user:password@host:port/dbname")
    if exc.sqlstate in ("42P01", "42883", "42703", "3F000"):  # undefined table/function/column
        return CliError(Exit.USAGE, "the database schema is missing or out of date",
                        "run `wxdata migrate`")
    if exc.sqlstate == "42501":
        return CliError(Exit.USAGE, f"permission denied (sqlstate {exc.sqlstate})",
                        f"connect as a role with the needed rights ({var})")
    if isinstance(exc, psycopg.OperationalError) or exc.sqlstate is None:
        for pattern, reason, code, fix in _PG_REASONS:
            if pattern.search(text):
                return CliError(code, f"cannot connect to PostgreSQL at {where} ({reason})",
                                fix.format(var=var, verb="check" if var.startswith("--") else "set"))
        if isinstance(exc, psycopg.OperationalError):
            return CliError(Exit.UNAVAILABLE,
                            f"cannot use PostgreSQL at {where} ({type(exc).__name__})",
                            "check the server and " + var + "; --debug shows the details")
    return CliError(Exit.CHECK_FAILED,
                    f"database error {type(exc).__name__} (sqlstate {exc.sqlstate or '-'})",
                    "--debug shows the details")


def redis_target(url: str | None) -> str:
    """``host:port`` of a Redis URL (never its credentials)."""
    if not url:
        return "(REDIS_URL not set)"
    from wxdata.redis_url import RedisUrlError, parse_redis_url

    try:
        target = parse_redis_url(url)
    except RedisUrlError:
        return "an unparsable URL"
    if target.nodes:
        return ",".join(f"{h}:{p}" for h, p in target.nodes)
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return f"socket {parts.path}"
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    except ValueError:
        return "an unparsable URL"


def redis_error(exc: BaseException, url: str | None) -> CliError:
    """A Redis client fault as one line (exit 3, or 2 for refused credentials)."""
    where = redis_target(url)
    name = type(exc).__name__
    text = str(exc).lower()
    if "auth" in name.lower() or "authentication" in text or "noauth" in text or "wrongpass" in text:
        return CliError(Exit.USAGE, f"Redis at {where} refused the credentials",
                        "check the user and password in REDIS_URL")
    reason = ("connection refused" if "refused" in text else "timed out" if "timeout" in text
              or "timed out" in text else "unknown host" if "name or service" in text
              or "nodename nor servname" in text else name)
    return CliError(Exit.UNAVAILABLE, f"cannot connect to Redis at {where} ({reason})",
                    "set REDIS_URL or start the server")


_OS_REASONS = {
    errno.ENOENT: "no such file or directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EISDIR: "is a directory",
    errno.ENOTDIR: "a parent is not a directory",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
}


def file_error(exc: OSError, what: str, *, writing: bool | None) -> CliError:
    """An unreadable or unwritable file named by an option (exit 2); ``writing=None`` when the
    direction is not known."""
    reason = _OS_REASONS.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    verb = "open" if writing is None else "write" if writing else "read"
    fix = ("choose a path in an existing, writable directory" if writing
           else "check the path")
    return CliError(Exit.USAGE, f"cannot {verb} {what} ({reason})", fix)


def os_error(exc: OSError) -> CliError:
    """An operating-system error a command did not handle: a file (exit 2) or the network (3)."""
    if exc.filename is not None:
        return file_error(exc, str(exc.filename), writing=None)
    reason = _OS_REASONS.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return CliError(Exit.UNAVAILABLE, f"network error ({reason})",
                        "check that the service is up and reachable")
    return CliError(Exit.CHECK_FAILED, f"system error ({reason})",
                    "rerun with --debug for the traceback")


#: DataError codes that mean "unreachable" or "bad input", for :func:`data_error`.
_UNAVAILABLE = frozenset({"UNAVAILABLE", "TIMEOUT", "RETRYABLE"})
_USAGE = frozenset({"VALIDATION_FAILED", "INVALID_QUERY", "FORBIDDEN", "CONTEXT_EXPIRED",
                    "AUDIT_KEY_MISSING"})


def data_error(error: DataError, fix: str | None = None) -> CliError:
    """A library ``Failure`` value as a CLI error (its message is PHI-free by contract)."""
    code = (Exit.UNAVAILABLE if error.code in _UNAVAILABLE
            else Exit.USAGE if error.code in _USAGE else Exit.CHECK_FAILED)
    return CliError(code, error.message, fix)


def config_error(exc: ConfigError) -> CliError:
    """A configuration error (its message names the setting, never its value)."""
    return CliError(Exit.USAGE, f"configuration: {exc}")


__all__ = ["config_error", "data_error", "file_error", "os_error", "postgres_error",
           "postgres_target", "redis_error", "redis_target"]
