"""The migration files without a server: ordered and named ``NNNN_snake_case``, shipped inside the
package; the supported PostgreSQL majors (15 to 18, newer ones a note). Applying them is checked
against the server in ``tests/integration/test_migrations.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from wxdata.migrate import MigrationError, check_server_version, load


def test_files_are_ordered_and_named() -> None:
    names = [m.name for m in load()]
    assert names == sorted(names)
    assert names[0].startswith("0001_")


def test_bad_names_refused(tmp_path) -> None:
    folder = tmp_path / "sql"
    folder.mkdir()
    (folder / "one.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_snake_case"):
        load(folder)


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


def test_migrations_ship_inside_the_package() -> None:
    """The wheel carries the migrations (``wxdata/sql`` links to the one source, ``sql/``)."""
    import wxdata

    packaged = sorted(p.name for p in (Path(wxdata.__file__).parent / "sql").glob("*.sql"))
    source = sorted(p.name for p in (Path(wxdata.__file__).parent.parent / "sql").glob("*.sql"))
    assert packaged and packaged == source
