"""A database part-way through the migrations, for tests of an upgrade in place."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from wxdata.migrate import migrate, sql_dir


@contextmanager
def migrated_before(server_url: str, folder: Path, first_later: str
                    ) -> Iterator[tuple[psycopg.Connection[Any], Callable[[], list[str]]]]:
    """A throw-away database on ``server_url`` migrated with the files of ``sql/`` whose names
    sort before ``first_later`` (copied into ``folder``, which must not exist): an autocommit
    superuser connection to it and a function applying the rest (the names it applied). The
    database is dropped afterwards, whatever happens."""
    folder.mkdir()
    later = []
    for f in sorted(sql_dir().glob("*.sql")):
        if f.name < first_later:
            shutil.copy(f, folder / f.name)
        else:
            later.append(f)
    name = f"wxdata_upgrade_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = psycopg.conninfo.make_conninfo(server_url, dbname=name)
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, folder)

            def upgrade() -> list[str]:
                for f in later:
                    shutil.copy(f, folder / f.name)
                return migrate(conn, folder)

            yield conn, upgrade
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
