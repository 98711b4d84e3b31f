"""Command-line pieces the stand-alone benchmarks share."""

from __future__ import annotations

import argparse
import os


def parse_with_database_url(parser: argparse.ArgumentParser, argv: list[str] | None, *,
                            who: str = "a superuser") -> argparse.Namespace:
    """Add ``--database-url`` (default ``DATABASE_URL``) to ``parser``, parse ``argv``, and stop
    with a usage error naming ``who`` the URL must connect as when neither gives one."""
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error(f"--database-url or DATABASE_URL is required ({who})")
    return args
