"""Migrations: ordered, recorded with checksums, idempotent, refusing edited files, serialised."""

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


def test_files_are_ordered_and_named() -> None:
    names = [m.name for m in load()]
    assert names == sorted(names)
    assert names[0].startswith("0001_")


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


def test_bad_names_refused(tmp_path) -> None:
    folder = tmp_path / "sql"
    folder.mkdir()
    (folder / "one.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_snake_case"):
        load(folder)


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


@pytest.mark.parametrize(("version_num", "refused"), [
    (140011, True), (130000, True), (150000, False), (160004, False), (170002, False), (180001, False),
])
def test_supported_postgresql_majors_are_15_to_18(version_num: int, refused: bool) -> None:
    if refused:
        with pytest.raises(MigrationError, match="not supported"):
            check_server_version(version_num)
    else:
        assert check_server_version(version_num) is None


def test_newer_major_than_tested_is_a_note_not_an_error() -> None:
    note = check_server_version(190000)
    assert note is not None and "newer than the newest tested" in note


def test_the_server_under_test_is_supported(conn: psycopg.Connection[Any]) -> None:
    assert check_server_version(conn.info.server_version) is None


def test_migrations_ship_inside_the_package() -> None:
    """The wheel carries the migrations (``wxdata/sql`` links to the one source, ``sql/``)."""
    import wxdata

    packaged = sorted(p.name for p in (Path(wxdata.__file__).parent / "sql").glob("*.sql"))
    source = sorted(p.name for p in (Path(wxdata.__file__).parent.parent / "sql").glob("*.sql"))
    assert packaged and packaged == source
