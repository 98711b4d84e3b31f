"""PHI-safe query logging: shapes without values, timings, errors by SQLSTATE only.

The central test seeds PHI (names, date of birth, diagnosis, record and student numbers), runs a
workload through traced pool connections with every record emitted (DEBUG, slow threshold 0 ms),
including failing statements whose PostgreSQL messages echo the values, and checks that no seeded
value reaches any log record: message, args, formatted text (with exception info) or attribute.
The shape function alone (properties over literals, numbers and comments) is checked in
``tests/unit/test_phi_safe_logging.py``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg
import pytest
from psycopg import sql
from returns.result import Failure

from tests.conftest import student_values
from wxdata import ExecutionContext
from wxdata.config import load_settings
from wxdata.db import create_pool
from wxdata.domains import health_records, students
from wxdata.errors import Conflict
from wxdata.observability import (
    QueryLog,
    TracedConnection,
    TracedCursor,
    attach,
    detach,
    policy_of,
)
from wxdata.tx import unit_of_work


class Collect(logging.Handler):
    """Keeps every record it sees."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Collect]:
    """Every record of every logger, at DEBUG, for the duration of a test."""
    handler = Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _texts(handler: Collect, record: logging.LogRecord) -> list[str]:
    """Every rendering of a record a log pipeline could ship."""
    out = [str(record.msg), record.getMessage(), handler.format(record)]
    args = record.args if isinstance(record.args, tuple) else (record.args,)
    out.extend(repr(a) for a in args)
    out.extend(f"{k}={v!r}" for k, v in vars(record).items())
    if record.exc_info:
        out.append(logging.Formatter().formatException(record.exc_info))
    if record.exc_text:
        out.append(record.exc_text)
    return out


def test_no_phi_value_reaches_any_log_record(db_url: str, ctx: ExecutionContext, school: Any,
                                             captured: Collect) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    first, last = f"Quenbydale{tag}", f"Marrowvent{tag}"
    dob = date(2013, 11, 29)
    number, mrn = f"PHI-{tag}-7731", f"MRN{tag}99"
    diagnosis = f"Xylocardic murmur {tag}"
    phi = [first, last, dob.isoformat(), "11/29/2013", "20131129", number, mrn, diagnosis]

    with create_pool(db_url, min_size=1, max_size=2, query_log=QueryLog(slow_ms=0)) as pool, \
            pool.connection() as conn:
        assert isinstance(conn, TracedConnection) and policy_of(conn) is not None
        s = students.create(conn, ctx, student_values(
            school, first_name=first, last_name=last, date_of_birth=dob, student_number=number,
            medical_record_num=mrn)).unwrap()
        record = health_records.create(conn, ctx, {
            "student_id": s.id, "record_type": "ILLNESS", "title": "Visit",
            "description": diagnosis, "diagnosis": diagnosis, "record_date": date(2024, 3, 1),
        }).unwrap()
        assert students.find_by_id(conn, ctx, s.id).unwrap().first_name == first
        page = students.find_many(conn, ctx, {"last_name": last, "date_of_birth": dob})
        assert page.unwrap().total == 1
        with unit_of_work(conn, ctx):
            students.update(conn, ctx, s.id, {"first_name": first + "x"}).unwrap()
            health_records.update(conn, ctx, record.id, {"treatment": diagnosis}).unwrap()
        dup = students.create(conn, ctx, student_values(school, student_number=number,
                                                        first_name=first))
        assert isinstance(dup, Failure) and isinstance(dup.failure(), Conflict)
        # callers that break the rules: values in the SQL text, and errors that echo them
        conn.execute(f"SELECT '{first}' AS n, DATE '{dob.isoformat()}', 20131129")
        conn.execute(sql.SQL("SELECT {}, {}").format(sql.Literal(last), sql.Literal(diagnosis)))
        conn.execute("SELECT %s, %s", (first, dob))
        for bad in (f"SELECT '{first}'::int", f"SELECT * FROM students WHERE id = '{last}'",
                    f"SELECT $x${diagnosis}$x$::date"):
            with pytest.raises(psycopg.Error):
                conn.execute(bad)
        with pytest.raises(psycopg.errors.UniqueViolation), unit_of_work(conn, ctx):
            conn.execute("INSERT INTO students (student_number, first_name, last_name, "
                         "date_of_birth, grade, gender, enrollment_date, school_id, district_id) "
                         "VALUES (%s, %s, %s, %s, '5', 'FEMALE', '2020-09-01', %s, %s)",
                         (number, first, last, dob, school["school_id"], school["district_id"]))

        def failing_pipeline() -> None:
            with conn.pipeline():
                conn.execute("SELECT %s::text", (first,))
                conn.execute("SELECT %s::int", (last,))

        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            failing_pipeline()
        with unit_of_work(conn, ctx), conn.cursor(name="wx_export") as cur:
            cur.execute("SELECT first_name FROM students WHERE last_name = %s", (last,))
            assert cur.fetchall()
        logging.getLogger("wxdata.tx").exception("deliberate, no PHI in it")

    ours = [r for r in captured.records if r.name == "wxdata.sql"]
    assert len(ours) >= 15
    assert any(r.getMessage().startswith("slow query") for r in ours)
    failed = [r for r in ours if r.getMessage().startswith("query failed")]
    assert {getattr(r, "wx_sqlstate", None) for r in failed} >= {"22P02", "23505"}
    assert all(r.exc_info is None for r in ours)
    leaks = [(value, text) for r in captured.records for text in _texts(captured, r)
             for value in phi if value in text]
    assert leaks == []


def test_error_records_name_the_sqlstate_and_level_not_the_message(
    conn: psycopg.Connection[Any], captured: Collect
) -> None:
    attach(conn, QueryLog(slow_ms=None))
    with pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("SELECT * FROM no_such_table_here WHERE name = 'Zed'")
    with pytest.raises(psycopg.errors.DivisionByZero):
        conn.execute("SELECT 1 / %s", (0,))
    records = [r for r in captured.records if r.name == "wxdata.sql"]
    assert [(r.levelno, getattr(r, "wx_sqlstate", None)) for r in records] == [
        (logging.ERROR, "42P01"), (logging.ERROR, "22012")]
    assert "no_such_table_here WHERE name = ?" in records[0].getMessage()
    assert "Zed" not in records[0].getMessage() and "does not exist" not in records[0].getMessage()
    assert records[1].wx_sql == "SELECT ? / %s"  # type: ignore[attr-defined]


def test_threshold_and_level_decide_what_is_logged(
    conn: psycopg.Connection[Any], captured: Collect
) -> None:
    attach(conn, QueryLog(slow_ms=60_000))
    logging.getLogger("wxdata.sql").setLevel(logging.INFO)
    try:
        conn.execute("SELECT 1")
        assert [r for r in captured.records if r.name == "wxdata.sql"] == []
    finally:
        logging.getLogger("wxdata.sql").setLevel(logging.NOTSET)
    conn.execute("SELECT 2")  # root at DEBUG: a DEBUG record, not a slow one
    (record,) = [r for r in captured.records if r.name == "wxdata.sql"]
    assert record.levelno == logging.DEBUG and record.getMessage().startswith("query:")
    assert record.wx_rows == 1 and record.wx_sql == "SELECT ?"  # type: ignore[attr-defined]
    attach(conn, QueryLog(slow_ms=0))
    conn.execute("SELECT pg_sleep(0.01)")
    assert captured.records[-1].levelno == logging.WARNING
    assert captured.records[-1].wx_ms >= 10  # type: ignore[attr-defined]


def test_pipelines_are_timed_as_one_unit(db_url: str, captured: Collect) -> None:
    with TracedConnection.connect(db_url, autocommit=True) as conn:
        attach(conn, QueryLog(slow_ms=0))
        with conn.pipeline():
            conn.execute("SELECT set_config('app.x', %s, true)", ("v",))
            cur = conn.execute("SELECT generate_series(1, %s)", (3,))
        assert len(cur.fetchall()) == 3
    (record,) = [r for r in captured.records if r.name == "wxdata.sql"]
    assert record.wx_sql == (  # type: ignore[attr-defined]
        "SELECT set_config(?, %s, true) ; SELECT generate_series(?, %s)")
    assert record.wx_rows == 3  # type: ignore[attr-defined]


def test_off_means_plain_psycopg(db_url: str, conn: psycopg.Connection[Any]) -> None:
    assert conn.cursor_factory is psycopg.Cursor and policy_of(conn) is None
    attach(conn, QueryLog())
    assert conn.cursor_factory is TracedCursor
    detach(conn)
    assert conn.cursor_factory is psycopg.Cursor and policy_of(conn) is None
    quiet = load_settings({"DATABASE_URL": db_url})
    with create_pool(db_url, min_size=1, max_size=1, config=quiet) as pool, pool.connection() as c:
        assert type(c) is psycopg.Connection and c.cursor_factory is psycopg.Cursor
    traced = load_settings({"DATABASE_URL": db_url, "DB_SLOW_QUERY_MS": "250"})
    with create_pool(db_url, min_size=1, max_size=1, config=traced) as pool, pool.connection() as c:
        assert isinstance(c, TracedConnection) and policy_of(c) == QueryLog(slow_ms=250.0)
