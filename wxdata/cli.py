"""The ``wxdata`` command: migrate, demo, seed, audit and cache tools.

Each area adds its own subcommands through a ``register(subparsers)`` function in its package
(``wxdata.audit.cli``, ``wxdata.cache.cli``, ...), so this module stays a thin dispatcher.
Exit codes: 0 success, 1 a check failed, 2 bad usage or configuration, 3 unavailable.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from wxdata.config import ConfigError, load_settings

Handler = Callable[[argparse.Namespace], int]

#: Modules that contribute subcommands, each with ``register(subparsers) -> None``.
AREAS: tuple[str, ...] = (
    "wxdata.audit.cli",
    "wxdata.audit.safeguards",
    "wxdata.cache.cli",
    "wxdata.demo",
    "wxdata.seed",
    "wxdata.health",
)


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
        return 0
    with connect(args.database_url, owner=True) as conn:
        if args.status:
            for name, state in status(conn):
                print(f"{state:8} {name}")
            return 0
        key = scope_key()
        if key is None:
            print("migration refused: WXDATA_SCOPE_KEY (or WXDATA_MASTER_KEY) is required: "
                  "row-level security verifies a school scope signed with it", file=sys.stderr)
            return 2
        try:
            applied = migrate(conn)
            role = provision(conn, config, key)
        except MigrationError as exc:
            print(f"migration refused: {exc}", file=sys.stderr)
            return 1
    print("\n".join(f"applied {n}" for n in applied) if applied else "up to date")
    print(f"scope key installed; application role: {role or '(DATABASE_URL names the owner)'}")
    return 0


def _cmd_embedded(args: argparse.Namespace) -> int:
    """``wxdata embedded status|stop|reset``: the local server used when no database is configured."""
    import json

    from wxdata import embedded

    try:
        if args.action == "status":
            state = embedded.status()
            if args.json:
                print(json.dumps(state.to_dict(), sort_keys=True))
            else:
                print(f"directory  {state.directory}")
                print(f"postgres   {state.postgres_version or '(not initialised)'}")
                print(f"running    {f'yes (pid {state.pid})' if state.running else 'no'}")
                print(f"size       {state.size_bytes / 1e6:.1f} MB")
                print(f"schema     {state.schema}")
            return 0
        if args.action == "stop":
            print("stopped" if embedded.stop() else "not running")
            return 0
        print(f"deleted {embedded.pgdata_dir()}" if embedded.reset() else "nothing to delete")
        return 0
    except embedded.EmbeddedUnavailable as exc:
        print(f"embedded: {exc}", file=sys.stderr)
        return 3
    except TimeoutError as exc:
        print(f"embedded: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"embedded: {exc.strerror or exc}", file=sys.stderr)
        return 3


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available area registered."""
    parser = argparse.ArgumentParser(prog="wxdata", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    migrate = sub.add_parser("migrate", help="apply pending migrations from sql/")
    migrate.add_argument("--database-url", default=None,
                         help="owner URL (default: WXDATA_MIGRATION_URL, else DATABASE_URL)")
    migrate.add_argument("--status", action="store_true", help="list migrations and their state")
    migrate.set_defaults(handler=_cmd_migrate)
    embedded = sub.add_parser("embedded", help="the local PostgreSQL used when no database is set")
    embedded.add_argument("action", choices=("status", "stop", "reset"))
    embedded.add_argument("--json", action="store_true", help="status as one JSON object")
    embedded.set_defaults(handler=_cmd_embedded)
    for area in AREAS:
        try:
            module: Any = importlib.import_module(area)
        except ModuleNotFoundError as exc:
            if exc.name != area:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wxdata`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:  # e.g. the embedded server refused under WXDATA_ENV=production
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
