"""Migrations against the server: recorded with checksums, idempotent, all or nothing, refusing
edited files, serialised between concurrent runners; the server under test is a supported one.
The files themselves and the version rule are checked in ``tests/unit/test_migration_files.py``."""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from wxdata.migrate import MigrationError, check_server_version, load, migrate, sql_dir, status


def _copy_sql(tmp_path: Path) -> Path:
    target = tmp_path / "sql"
    shutil.copytree(sql_dir(), target)
    return target


def test_rerun_is_a_noop(fresh_database) -> None:
    with psycopg.connect(fresh_database(), autocommit=True) as conn:
        assert migrate(conn) == []
        assert all(state == "applied" for _, state in status(conn))


def test_edited_applied_file_is_refused(fresh_database, tmp_path) -> None:
    folder = _copy_sql(tmp_path)
    victim = sorted(folder.glob("*.sql"))[1]
    victim.write_text(victim.read_text() + "\n-- edited\n")
    with psycopg.connect(fresh_database(), autocommit=True) as conn:
        with pytest.raises(MigrationError, match=re.escape(f"{victim.name} was edited after it was")):
            migrate(conn, folder)
        assert (victim.name, "EDITED") in status(conn, folder)


def test_new_file_applies_once_and_failure_applies_nothing(fresh_database, tmp_path) -> None:
    folder = _copy_sql(tmp_path)
    (folder / "9000_extra.sql").write_text("CREATE TABLE extra_one (id int);")
    (folder / "9001_broken.sql").write_text("CREATE TABLE extra_two (id int); SELECT 1/0;")
    with psycopg.connect(fresh_database(), autocommit=True) as conn:
        with pytest.raises(MigrationError, match=r"9001_broken\.sql failed"):
            migrate(conn, folder)
        exists = conn.execute("SELECT to_regclass('extra_one'), to_regclass('extra_two')").fetchone()
        assert exists == (None, None)  # all or nothing
        (folder / "9001_broken.sql").unlink()
        assert migrate(conn, folder) == ["9000_extra.sql"]
        assert migrate(conn, folder) == []


def test_concurrent_runners_apply_each_file_once(server_url, tmp_path) -> None:
    import uuid

    name = f"wxdata_mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(server_url, dbname=name)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                results.append(migrate(conn))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=run) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        applied = [r for r in results if r]
        assert len(applied) == 1
        assert applied[0] == [m.name for m in load()]
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_server_under_test_is_supported(conn: psycopg.Connection[Any]) -> None:
    assert check_server_version(conn.info.server_version) is None
