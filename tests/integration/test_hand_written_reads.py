"""Hand-written reads (``crud.fetch``) record the PHI they return, as the generic reads do.

Every column a hand-written statement returns from the table of an entity whose reads are recorded
is a disclosure of that entity: its record (the rows and students the result names, the columns
returned) is written before the rows are returned, and when it cannot be written the caller gets a
Failure and no rows. Values computed in SQL carry no table; under ``audited`` the decorator
records instead. Run through both shells.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result

from tests.cache_support import records_refused
from tests.shells import parametrise
from wxdata import ExecutionContext, audited, crud, unit_of_work
from wxdata.audit import AuditAction
from wxdata.config import configure
from wxdata.config import settings as current_settings
from wxdata.core.raw import Sources, disclosed
from wxdata.domains import health_records
from wxdata.errors import DataError
from wxdata.schema import HEALTH_RECORDS, SCHOOLS, STUDENTS
from wxdata.tx import RollbackScope

Conn = psycopg.Connection[Any]

parametrise(globals())


@pytest.fixture
def record(conn: Conn, ctx: ExecutionContext, make_student: Callable[..., Any]) -> Any:
    """A student and one health record of theirs (made through the generic functions)."""
    s = make_student()
    return health_records.create(conn, ctx, {
        "student_id": s.id, "record_type": "CHECKUP", "title": "Annual check",
        "description": "routine", "record_date": date(2024, 1, 1)}).unwrap()


def reads(admin_conn: Conn, ctx: ExecutionContext) -> list[tuple[Any, ...]]:
    """(entity, ids, subjects, fields, metadata) of the request's READ records, in order."""
    return admin_conn.execute(
        "SELECT entity_type, entity_ids, subject_ids, fields_disclosed, metadata FROM audit_log"
        " WHERE request_id = %s AND action = 'READ' ORDER BY seq", (ctx.request_id,)).fetchall()


def test_phi_columns_read_by_hand_record_their_disclosure_first(
        conn: Conn, admin_conn: Conn, ctx: ExecutionContext, record: Any) -> None:
    rows = crud.fetch(conn, ctx, "SELECT h.id, h.student_id, h.title, h.diagnosis"
                      " FROM health_records h WHERE h.student_id = %(s)s",
                      {"s": record.student_id}).unwrap()
    assert rows == [(record.id, record.student_id, "Annual check", None)]
    assert reads(admin_conn, ctx) == [
        ("HealthRecord", [record.id], [record.student_id],
         ["id", "student_id", "title", "diagnosis"], {"operation": "fetch"})]


def test_a_join_records_each_entity_it_discloses(
        conn: Conn, admin_conn: Conn, ctx: ExecutionContext, record: Any) -> None:
    rows = crud.fetch(conn, ctx, "SELECT s.id, s.first_name, h.title, sc.name"
                      " FROM students s JOIN health_records h ON h.student_id = s.id"
                      " JOIN schools sc ON sc.id = s.school_id WHERE h.id = %(h)s",
                      {"h": record.id}).unwrap()
    assert len(rows) == 1
    recorded = {r[0]: r[1:] for r in reads(admin_conn, ctx)}
    # schools' reads are not recorded; the health record's row id was not returned, its student's was
    assert recorded == {
        "Student": ([record.student_id], [record.student_id], ["id", "first_name"],
                    {"operation": "fetch"}),
        "HealthRecord": ([], [], ["title"], {"operation": "fetch"})}


def test_values_computed_in_sql_and_empty_results_record_nothing(
        conn: Conn, admin_conn: Conn, ctx: ExecutionContext, record: Any) -> None:
    count = crud.fetch(conn, ctx, "SELECT count(*), upper(min(h.title)) FROM health_records h"
                       " WHERE h.student_id = %(s)s", {"s": record.student_id}).unwrap()
    assert count == [(1, "ANNUAL CHECK")]
    none = crud.fetch(conn, ctx, "SELECT h.title FROM health_records h WHERE h.id = %(h)s",
                      {"h": uuid.uuid4()}).unwrap()
    assert none == []
    schools = crud.fetch(conn, ctx, "SELECT name FROM schools WHERE id = ANY(%(ids)s)",
                         {"ids": list(ctx.school_ids)}).unwrap()
    assert len(schools) == 1
    assert reads(admin_conn, ctx) == []


def test_under_audited_the_decorator_records_once(
        conn: Conn, admin_conn: Conn, ctx: ExecutionContext, record: Any) -> None:
    @audited(HEALTH_RECORDS, AuditAction.READ, ids=lambda rows: [r[0] for r in rows],
             subjects=lambda rows: [r[1] for r in rows])
    def titles(conn: Conn, ctx: ExecutionContext, sid: Any) -> Result[Any, DataError]:
        return crud.fetch(conn, ctx, "SELECT id, student_id, title FROM health_records"
                          " WHERE student_id = %(s)s", {"s": sid})

    assert titles(conn, ctx, record.student_id).unwrap() == [
        (record.id, record.student_id, "Annual check")]
    (only,) = reads(admin_conn, ctx)
    assert only[:3] == ("HealthRecord", [record.id], [record.student_id])
    assert only[4]["operation"].endswith("titles")


def test_under_audited_the_record_names_what_the_columns_disclosed(
        conn: Conn, admin_conn: Conn, ctx: ExecutionContext, record: Any) -> None:
    """Without ``ids=`` or ``subjects=`` the decorator finds nothing in rows of plain tuples; the
    columns' description names them: its one record carries the rows, students and columns."""
    @audited(HEALTH_RECORDS, AuditAction.READ)
    def titles(conn: Conn, ctx: ExecutionContext, sid: Any) -> Result[Any, DataError]:
        return crud.fetch(conn, ctx, "SELECT h.id, h.student_id, h.title, s.first_name"
                          " FROM health_records h JOIN students s ON s.id = h.student_id"
                          " WHERE h.student_id = %(s)s", {"s": sid})

    assert len(titles(conn, ctx, record.student_id).unwrap()) == 1
    (only,) = reads(admin_conn, ctx)
    assert only[:4] == ("HealthRecord", [record.id], [record.student_id],
                        ["id", "student_id", "title"])


def test_a_caller_that_records_itself_says_so(
        conn: Conn, admin_conn: Conn, ctx: ExecutionContext, record: Any) -> None:
    rows = crud.fetch(conn, ctx, "SELECT title FROM health_records WHERE id = %(h)s",
                      {"h": record.id}, recorded=True).unwrap()
    assert rows == [("Annual check",)]
    assert reads(admin_conn, ctx) == []
    summary = health_records.student_health_summary(conn, ctx, record.student_id).unwrap()
    assert summary.total == 1
    assert [r[0] for r in reads(admin_conn, ctx)] == ["HealthRecord"]  # the summary's own, once


@pytest.mark.parametrize("where", ["single", "unit", "read-only unit"])
def test_a_read_whose_record_is_refused_returns_no_rows(
        conn: Conn, admin_conn: Conn, ctx: ExecutionContext, record: Any, where: str) -> None:
    refused = attrs.evolve(ctx, request_id=f"req-refused-{uuid.uuid4().hex[:8]}")
    statement = "SELECT title FROM health_records WHERE id = %(h)s"
    got: list[Any] = []
    with records_refused(admin_conn, refused.request_id):
        if where == "single":
            got.append(crud.fetch(conn, refused, statement, {"h": record.id}))
        else:
            with contextlib.suppress(RollbackScope), unit_of_work(
                    conn, refused, read_only=where == "read-only unit"):
                got.append(crud.fetch(conn, refused, statement, {"h": record.id}))
                raise RollbackScope
    assert len(got) == 1 and isinstance(got[0], Failure)  # no record, no rows
    assert got[0].failure().code in ("UNAVAILABLE", "INTERNAL")
    assert reads(admin_conn, refused) == []


def test_a_rolled_back_unit_of_work_keeps_the_record(
        conn: Conn, admin_conn: Conn, ctx: ExecutionContext, record: Any) -> None:
    with unit_of_work(conn, ctx):
        rows = crud.fetch(conn, ctx, "SELECT id, title FROM health_records WHERE id = %(h)s",
                          {"h": record.id}).unwrap()
        assert rows == [(record.id, "Annual check")]
        raise RollbackScope
    assert [r[:2] for r in reads(admin_conn, ctx)] == [("HealthRecord", [record.id])]


# --- the pure decision: what a described result discloses --------------------------------------

_STUDENT_OID, _RECORD_OID, _SCHOOL_OID = 101, 102, 103
_SOURCES = Sources(0, {
    _STUDENT_OID: (STUDENTS, {1: "id", 2: "first_name", 3: "school_id"}),
    _RECORD_OID: (HEALTH_RECORDS, {1: "id", 2: "student_id", 3: "title"}),
    _SCHOOL_OID: (SCHOOLS, {1: "id", 2: "name"}),
    104: None,  # a table of no entity
})
_COLUMNS = [(0, 0), (104, 1), (_STUDENT_OID, 1), (_STUDENT_OID, 2), (_STUDENT_OID, 9),
            (_RECORD_OID, 1), (_RECORD_OID, 2), (_RECORD_OID, 3), (_SCHOOL_OID, 2)]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picked=st.lists(st.sampled_from(_COLUMNS), max_size=6),
       values=st.lists(st.lists(st.one_of(st.uuids(), st.none(), st.text(max_size=3)),
                                min_size=6, max_size=6), max_size=4))
def test_every_column_of_a_recorded_entity_is_disclosed_and_nothing_else(
        ctx: ExecutionContext, picked: list[tuple[int, int]], values: list[list[Any]]) -> None:
    rows = [tuple(v[: len(picked)]) for v in values]
    found = {d.entity.name: d for d in disclosed(ctx, picked, rows, _SOURCES)}
    named = {(oid, n) for oid, n in picked if _SOURCES.tables.get(oid) is not None
             and n in _SOURCES.tables[oid][1]}  # type: ignore[index]
    expected = {spec.name for oid, _ in named
                if (spec := _SOURCES.tables[oid][0]).audit_reads}  # type: ignore[index]
    assert set(found) == expected  # schools (not recorded) and unknown columns never count
    for d in found.values():
        spec_oid = _STUDENT_OID if d.entity is STUDENTS else _RECORD_OID
        columns = [i for i, c in enumerate(picked) if c[0] == spec_oid
                   and c[1] in _SOURCES.tables[spec_oid][1]]  # type: ignore[index]
        names = _SOURCES.tables[spec_oid][1]  # type: ignore[index]
        assert d.fields == tuple(dict.fromkeys(names[picked[i][1]] for i in columns))
        keys = [i for i in columns if names[picked[i][1]] == d.entity.pk]
        subjects = [i for i in columns if names[picked[i][1]] == d.entity.subject]
        assert set(d.ids) == {r[i] for r in rows for i in keys if isinstance(r[i], uuid.UUID)}
        assert set(d.subjects) == {r[i] for r in rows for i in subjects
                                   if isinstance(r[i], uuid.UUID)}


def test_nothing_is_recorded_with_the_audit_off(
        conn: Conn, admin_conn: Conn, ctx: ExecutionContext, record: Any) -> None:
    before = current_settings()
    configure(attrs.evolve(before, audit_enabled=False))
    try:
        assert crud.fetch(conn, ctx, "SELECT title FROM health_records WHERE id = %(h)s",
                          {"h": record.id}).unwrap() == [("Annual check",)]
    finally:
        configure(before)
    assert reads(admin_conn, ctx) == []


@given(before=st.text(alphabet="αβγδεζηθ", min_size=3, max_size=12),
       surrogate=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF))
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_parameter_postgresql_cannot_store_is_a_typed_failure_naming_it(
        conn: psycopg.Connection[Any], ctx: ExecutionContext, before: str,
        surrogate: str) -> None:
    """A text with a lone surrogate cannot be encoded for PostgreSQL: the call answers
    ValidationFailed naming the parameter, never the value (psycopg's UnicodeEncodeError holds
    the whole text), and the connection serves the next call."""
    value = before + surrogate + before
    out = crud.fetch(conn, ctx, "SELECT count(*) FROM students WHERE first_name = %(name)s",
                     {"name": value, "other": "fine"})
    assert isinstance(out, Failure)
    error = out.failure()
    assert error.code == "VALIDATION_FAILED"
    assert [(e.field, e.rule) for e in error.errors] == [
        ("name", "must be valid Unicode (no lone surrogates)")]
    assert before not in repr(error) and before not in error.message
    assert crud.fetch(conn, ctx, "SELECT 1 AS one").unwrap() == [(1,)]
