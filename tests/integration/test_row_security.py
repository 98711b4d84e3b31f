"""Row-level school scoping: a nurse of school A cannot read, list, count, update or delete school
B's records through wxdata or through a hand-written query composed with the decorators; only the
SYSTEM context and a break-glass context (reason required, audited CRITICAL) get past it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg
import pytest
from returns.result import Failure, Result, Success

from tests.conftest import student_values
from tests.shells import parametrise
from wxdata import ExecutionContext, Purpose, Role, transactional
from wxdata.db import bypasses_row_security_role, connect_kwargs
from wxdata.domains import health_records, students
from wxdata.errors import DataError, Forbidden, NotFound

parametrise(globals())


def _school(conn: psycopg.Connection[Any], tag: str) -> dict[str, uuid.UUID]:
    d = conn.execute("INSERT INTO districts (name, code) VALUES ('D', %s) RETURNING id",
                     (f"RD-{tag}",)).fetchone()
    s = conn.execute("INSERT INTO schools (name, code, district_id) VALUES ('S', %s, %s) RETURNING id",
                     (f"RS-{tag}", d[0])).fetchone()
    return {"district_id": d[0], "school_id": s[0]}


@pytest.fixture
def world(conn, sys_ctx) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    a, b = _school(conn, tag + "a"), _school(conn, tag + "b")
    sa = students.create(conn, sys_ctx, student_values(a)).unwrap()
    sb = students.create(conn, sys_ctx, student_values(b)).unwrap()
    rb = health_records.create(conn, sys_ctx, {
        "student_id": sb.id, "record_type": "ILLNESS", "title": "Flu", "description": "fever",
        "record_date": date(2024, 2, 1)}).unwrap()
    return {"a": a, "b": b, "sa": sa, "sb": sb, "rb": rb}


@pytest.fixture
def app_conn(db_url) -> Iterator[psycopg.Connection[Any]]:
    """A login connection as the non-superuser application role (RLS applies)."""
    with psycopg.connect(db_url, autocommit=True, **connect_kwargs()) as c:
        assert not bypasses_row_security_role(c)
        yield c


def nurse(world: dict[str, Any]) -> ExecutionContext:
    return ExecutionContext(user_id="u-nurse-a", role=Role.NURSE, purpose=Purpose.TREATMENT,
                            school_ids={world["a"]["school_id"]}, request_id="req-rls")


def test_nurse_reads_own_school_only(app_conn, world) -> None:
    ctx = nurse(world)
    assert students.find_by_id(app_conn, ctx, world["sa"].id).unwrap().id == world["sa"].id
    assert students.find_by_id(app_conn, ctx, world["sb"].id) == Failure(NotFound("Student"))
    scope = {"school_id": {"in": [world["a"]["school_id"], world["b"]["school_id"]]}}
    page = students.find_many(app_conn, ctx, scope).unwrap()
    assert [r.id for r in page.data] == [world["sa"].id]
    assert page.total == 1
    assert students.count(app_conn, ctx, scope) == Success(1)
    assert students.exists(app_conn, ctx, {"id": world["sb"].id}) == Success(False)
    assert health_records.find_by_id(app_conn, ctx, world["rb"].id) == Failure(
        NotFound("HealthRecord"))
    hr = health_records.find_many(app_conn, ctx, {"student_id": world["sb"].id}).unwrap()
    assert hr.total == 0


def test_nurse_cannot_write_other_school(app_conn, admin_conn, world) -> None:
    ctx = nurse(world)
    assert students.update(app_conn, ctx, world["sb"].id, {"grade": "9"}) == Failure(
        NotFound("Student"))
    assert students.delete(app_conn, ctx, world["sb"].id) == Failure(NotFound("Student"))
    moved = students.update(app_conn, ctx, world["sa"].id, {"school_id": world["b"]["school_id"]})
    assert isinstance(moved.failure(), Forbidden)
    created = students.create(app_conn, ctx, student_values(world["b"]))
    assert isinstance(created.failure(), Forbidden)
    still = admin_conn.execute("SELECT grade, deleted_at, school_id FROM students WHERE id = %s",
                               (world["sb"].id,)).fetchone()
    assert still == (world["sb"].grade, None, world["b"]["school_id"])
    denied = admin_conn.execute(
        "SELECT count(*) FROM audit_log WHERE action = 'ACCESS_DENIED' AND request_id = 'req-rls'"
        " AND NOT success").fetchone()
    assert denied[0] >= 2  # both refused writes recorded on lane 2


def test_hand_written_query_composed_with_decorators_is_scoped(app_conn, world) -> None:
    @transactional()
    def list_school_b(conn: psycopg.Connection[Any], ctx: ExecutionContext,
                      school_id: uuid.UUID) -> Result[list[Any], DataError]:
        rows = conn.execute("SELECT id FROM students WHERE school_id = %s", (school_id,)).fetchall()
        return Success(rows)

    assert list_school_b(app_conn, nurse(world), world["b"]["school_id"]) == Success([])
    own = list_school_b(app_conn, nurse(world), world["a"]["school_id"]).unwrap()
    assert [r[0] for r in own] == [world["sa"].id]


def test_raw_statement_outside_a_transaction_sees_nothing(app_conn, world) -> None:
    rows = app_conn.execute("SELECT count(*) FROM students WHERE id = ANY(%s)",
                            ([world["sa"].id, world["sb"].id],)).fetchone()
    assert rows == (0,)  # no context applied: fail closed


def test_system_and_break_glass_pass(app_conn, conn, world, sys_ctx) -> None:
    assert students.find_by_id(app_conn, sys_ctx, world["sb"].id).unwrap().id == world["sb"].id
    glass = nurse(world).break_glass("anaphylaxis during field trip, need allergy chart")
    found = students.find_by_id(app_conn, glass, world["sb"].id)
    assert found.unwrap().id == world["sb"].id
    record = conn.execute(
        "SELECT severity, break_glass_reason, purpose FROM audit_log WHERE entity_id = %s "
        "AND action = 'READ' AND user_id = 'u-nurse-a' ORDER BY seq DESC LIMIT 1",
        (world["sb"].id,)).fetchone()
    assert record == ("CRITICAL", "anaphylaxis during field trip, need allergy chart", "EMERGENCY")


def test_every_scoped_table_forces_row_security(conn) -> None:
    rows = conn.execute(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' "
        "WHERE c.relkind = 'r' AND c.relname NOT IN ('schools', 'users') "
        "AND c.relname NOT LIKE 'audit%%' AND EXISTS (SELECT 1 FROM pg_attribute a WHERE "
        "a.attrelid = c.oid AND a.attname IN ('student_id', 'school_id') AND NOT a.attisdropped)"
    ).fetchall()
    assert rows
    assert [r for r in rows if not (r[1] and r[2])] == []


def test_app_role_is_not_privileged(conn) -> None:
    row = conn.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'wxdata_app'"
                       ).fetchone()
    assert row == (False, False)
    assert conn.execute("SELECT has_table_privilege('wxdata_app', 'audit_log', 'UPDATE'),"
                        " has_table_privilege('wxdata_app', 'audit_log', 'DELETE')").fetchone() == (
        False, False)
