"""Migrations: the ordered files of ``sql/``, applied once each, in one transaction, under a lock.

Each applied file is recorded with its SHA-256; a file edited after it was applied is refused
(write a new migration instead). Re-running applies nothing. Concurrent runners queue on an
advisory lock, so two deploys cannot interleave.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Any

import attrs
import psycopg

LOCK_ID = 0x77786461  # "wxda"
OLDEST_SUPPORTED = 15  # PostgreSQL major versions the suite runs on: 15 (system server) to 18 (embedded)
NEWEST_TESTED = 18
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    """A migration could not be applied (edited after applying, bad name, or SQL error)."""


@attrs.frozen(slots=True)
class Migration:
    """One file of ``sql/``."""

    name: str
    checksum: str
    sql: str


def check_server_version(version_num: int) -> str | None:
    """Refuse servers older than PostgreSQL 15; a note (not an error) for majors newer than tested.

    ``version_num`` is ``server_version_num`` (e.g. 150004). Nothing in ``sql/`` depends on a
    feature newer than 15, so 15 to 18 are all first-class; older servers lack features the
    migrations use and are refused before anything is applied.
    """
    major = version_num // 10000
    if major < OLDEST_SUPPORTED:
        raise MigrationError(
            f"PostgreSQL {major} is not supported: wxdata needs PostgreSQL {OLDEST_SUPPORTED} "
            f"to {NEWEST_TESTED}"
        )
    if major > NEWEST_TESTED:
        return f"PostgreSQL {major} is newer than the newest tested major ({NEWEST_TESTED})"
    return None


def sql_dir() -> Path:
    """Where the migration files are: ``WXDATA_SQL_DIR`` or the ``sql/`` folder of the project."""
    env = os.environ.get("WXDATA_SQL_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "sql", here / "sql"):
        if candidate.is_dir():
            return candidate
    raise MigrationError("sql/ folder not found; set WXDATA_SQL_DIR")


def load(directory: Path | None = None) -> list[Migration]:
    """The migration files in order, with their checksums."""
    directory = directory or sql_dir()
    out: list[Migration] = []
    seen: set[str] = set()
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration names are NNNN_snake_case.sql")
        if match.group(1) in seen:
            raise MigrationError(f"{path.name}: number {match.group(1)} used twice")
        seen.add(match.group(1))
        text = path.read_text(encoding="utf-8")
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        out.append(Migration(path.name, digest, text))
    return out


def migrate(conn: psycopg.Connection[Any], directory: Path | None = None) -> list[str]:
    """Apply pending migrations atomically; returns the names applied (empty when up to date)."""
    migrations = load(directory)
    note = check_server_version(conn.info.server_version)
    if note is not None:
        logging.getLogger("wxdata.migrate").warning(note)
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS wxdata_migrations ("
            " name text PRIMARY KEY, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = dict(conn.execute("SELECT name, checksum FROM wxdata_migrations").fetchall())
        for m in migrations:
            recorded = done.get(m.name)
            if recorded is not None:
                if recorded != m.checksum:
                    raise MigrationError(
                        f"{m.name} was edited after it was applied (checksum {recorded[:12]} "
                        f"in the database, {m.checksum[:12]} on disk); add a new migration instead"
                    )
                continue
            try:
                conn.execute(m.sql.encode("utf-8"))
            except psycopg.Error as exc:
                raise MigrationError(
                    f"{m.name} failed (sqlstate {exc.sqlstate}): {exc.diag.message_primary}"
                ) from exc
            conn.execute(
                "INSERT INTO wxdata_migrations (name, checksum) VALUES (%s, %s)",
                (m.name, m.checksum),
            )
            applied_now.append(m.name)
        _audit_months_ahead(conn)
    return applied_now


def _audit_months_ahead(conn: psycopg.Connection[Any]) -> None:
    """Create audit_log's monthly partitions ahead (``sql/0212``) on every run, not only once."""
    row = conn.execute(
        "SELECT to_regprocedure('audit_log_ensure_partitions(integer,timestamptz)')").fetchone()
    if row is not None and row[0] is not None:
        conn.execute("SELECT count(*) FROM audit_log_ensure_partitions(3)")


def status(conn: psycopg.Connection[Any], directory: Path | None = None) -> list[tuple[str, str]]:
    """Each migration with 'applied', 'pending' or 'EDITED'."""
    migrations = load(directory)
    exists = conn.execute("SELECT to_regclass('wxdata_migrations') IS NOT NULL").fetchone()
    done: dict[str, str] = {}
    if exists and exists[0]:
        done = dict(conn.execute("SELECT name, checksum FROM wxdata_migrations").fetchall())
    out = []
    for m in migrations:
        if m.name not in done:
            out.append((m.name, "pending"))
        else:
            out.append((m.name, "applied" if done[m.name] == m.checksum else "EDITED"))
    return out
