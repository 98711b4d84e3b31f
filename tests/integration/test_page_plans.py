"""Pages keep one plan: the first pages carry their window as literals, deeper pages bind it
(and a keyset page its limit).

With the OFFSET a parameter, PostgreSQL re-plans a prepared page on every execution (its generic
plan never looks cheaper than one made for the values at hand); the audited page, whose record
rides in the statement, then spends more time planning than running (whether it does depends on
the table's statistics: on the benchmark's 100,000 students it always did, on the few rows of a
test it may not, so the tests check the statement text as well as the plans). Checked on the server
(``pg_prepared_statements``: generic against custom plans of the session's own statements), and
that pages read in turn, on both sides of the window, still cover the ordered rows exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import POOLED, student_values
from wxdata import ExecutionContext
from wxdata.core.reads import LITERAL_WINDOW_PAGES
from wxdata.db import connect
from wxdata.domains import students
from wxdata.query import compiler
from wxdata.schema import STUDENTS
from wxdata.seed import system_context

Conn = psycopg.Connection[Any]

pytestmark = pytest.mark.skipif(POOLED, reason="named statements exist only on direct connections")


@pytest.fixture
def direct(direct_db_url: str) -> Iterator[Conn]:
    """A connection wxdata opened itself, straight to PostgreSQL (statements prepared)."""
    with connect(direct_db_url) as conn:
        yield conn


def _plans(conn: Conn, marker: str) -> list[tuple[int, int]]:
    rows = conn.execute(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
        (f"%{marker}%",)).fetchall()
    return [(int(g), int(c)) for g, c in rows]


def test_an_audited_page_keeps_its_generic_plan(
    direct: Conn, ctx: ExecutionContext, make_student: Callable[..., Any],
    school: dict[str, uuid.UUID],
) -> None:
    for _ in range(7):
        make_student()
    for page in (1, 2):
        for _ in range(12):
            got = students.find_many(direct, ctx, {"school_id": school["school_id"]},
                                     order_by=["last_name", "id"], page=page, limit=3).unwrap()
            assert got.total == 7
    plans = _plans(direct, "INSERT INTO audit_log")
    assert len(plans) == 2  # one statement per page number, each prepared once
    assert len(_plans(direct, "LIMIT 3 OFFSET 0")) == len(_plans(direct, "LIMIT 3 OFFSET 3")) == 1
    for generic, custom in plans:
        assert generic >= 6 and custom <= 5  # after its five trial custom plans, generic only


def test_a_keyset_first_page_keeps_its_generic_plan(
    direct: Conn, ctx: ExecutionContext, make_student: Callable[..., Any],
    school: dict[str, uuid.UUID],
) -> None:
    for _ in range(3):
        make_student()
    for _ in range(12):
        got = students.find_after(direct, ctx, {"school_id": school["school_id"]},
                                  order_by=["last_name"], limit=2).unwrap()
        assert len(got.data) == 2 and got.next_cursor is not None
    (generic, custom), = _plans(direct, "LIMIT 2")  # the limit is in the statement's text
    assert generic >= 6 and custom <= 5


def test_a_page_past_the_window_binds_it(
    direct: Conn, ctx: ExecutionContext, make_student: Callable[..., Any],
    school: dict[str, uuid.UUID],
) -> None:
    make_student()
    deep = LITERAL_WINDOW_PAGES + 1
    for page in (deep, deep + 1, deep + 2):
        got = students.find_many(direct, ctx, {"school_id": school["school_id"]}, page=page,
                                 limit=1).unwrap()
        assert got.total == 1 and got.data == ()
    assert len(_plans(direct, "OFFSET $")) == 1  # one statement for every deep page


def test_pages_in_turn_cover_the_ordered_rows_once_across_the_window(
    direct: Conn, conn: Conn, ctx: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    made = [students.create(conn, system_context("tests"), student_values(
        school, last_name=f"Page{i % 4}")).unwrap() for i in range(17)]
    expected = [s.id for s in sorted(made, key=lambda s: (s.last_name, s.id))]
    seen: list[uuid.UUID] = []
    for page in range(1, 2 * LITERAL_WINDOW_PAGES + 1):
        got = students.find_many(direct, ctx, {"school_id": school["school_id"]},
                                 order_by=["last_name", "id"], page=page, limit=2).unwrap()
        assert got.total == 17 and got.page == page
        seen.extend(s.id for s in got.data)
    assert seen == expected


@given(st.integers(1, 100), st.integers(0, 10**6))
def test_the_window_is_written_as_integers_only(limit: int, offset: int) -> None:
    sql = compiler.select_rows(STUDENTS, None, (), ("id",), "live", True)
    written = compiler.with_window(sql, limit, offset)
    assert written.endswith(f"LIMIT {limit} OFFSET {offset}") and "%(" not in written


@pytest.mark.parametrize(("limit", "offset"), [(True, 0), (1, -1), (0, 0), ("1", 0), (1, 1.0)])
def test_a_window_that_is_not_two_checked_integers_is_refused(limit: Any, offset: Any) -> None:
    sql = compiler.select_rows(STUDENTS, None, (), ("id",), "live", True)
    with pytest.raises(ValueError):
        compiler.with_window(sql, limit, offset)
    with pytest.raises(ValueError):
        compiler.with_window("SELECT 1", 1, 0)
