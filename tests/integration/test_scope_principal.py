"""A unit of work belongs to the context that opened it, and the scope's functions trust nothing
the application role can create.

A unit of work's transaction carries the signed scope of the context that opened it, and row
security answers every statement in it from that scope. A call made with another user, role,
school set or bypass inside it (a nested call, a nested unit of work, another asyncio task on the
same connection) is refused with ``Forbidden``, so a narrow context never reads or writes under a
wider scope. The SECURITY DEFINER functions search the session's temporary schema last, so the
application role cannot shadow the catalogue they read with temporary tables.
Runs as the application role, subject to row-level security."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from returns.result import Failure, Result, Success

import wxdata.aio as aio
from tests.conftest import student_values
from wxdata import ExecutionContext, Purpose, Role
from wxdata.aio.domains import students as astudents
from wxdata.context import OTHER_PRINCIPAL, same_principal
from wxdata.domains import students
from wxdata.errors import DataError, Forbidden
from wxdata.tx import run_in_scope, unit_of_work

Conn = psycopg.Connection[Any]


def _school(conn: Conn) -> dict[str, uuid.UUID]:
    tag = uuid.uuid4().hex[:8]
    d = conn.execute("INSERT INTO districts (name, code) VALUES ('D', %s) RETURNING id",
                     (f"PD-{tag}",)).fetchone()
    assert d is not None
    s = conn.execute("INSERT INTO schools (name, code, district_id) VALUES ('S', %s, %s) "
                     "RETURNING id", (f"PS-{tag}", d[0])).fetchone()
    assert s is not None
    return {"district_id": d[0], "school_id": s[0]}


def _nurse(school: dict[str, uuid.UUID], user: str, **kw: Any) -> ExecutionContext:
    return ExecutionContext(user_id=user, role=Role.NURSE, purpose=Purpose.TREATMENT,
                            school_ids={school["school_id"]}, request_id=f"req-{user}", **kw)


@pytest.fixture
def world(conn: Conn, sys_ctx: ExecutionContext) -> dict[str, Any]:
    """Nurse A of school A, nurse B of school B, a student of school B."""
    a, b = _school(conn), _school(conn)
    sb = students.create(conn, sys_ctx, student_values(b)).unwrap()
    return {"a": a, "b": b, "nurse_a": _nurse(a, "u-nurse-a"), "nurse_b": _nurse(b, "u-nurse-b"),
            "sb": sb}


def _refused(result: Result[Any, DataError]) -> None:
    assert isinstance(result, Failure), result
    error = result.failure()
    assert isinstance(error, Forbidden) and error.reason == OTHER_PRINCIPAL


def test_a_call_inside_a_system_unit_of_work_keeps_its_own_narrow_scope(
        conn: Conn, sys_ctx: ExecutionContext, world: dict[str, Any]) -> None:
    nurse_a, sb = world["nurse_a"], world["sb"]
    with unit_of_work(conn, sys_ctx):
        _refused(students.find_by_id(conn, nurse_a, sb.id))
        _refused(students.find_many(conn, nurse_a, {"id": sb.id}))
        _refused(students.update(conn, nurse_a, sb.id, {"grade": "7"}))
    assert students.find_by_id(conn, sys_ctx, sb.id).unwrap().grade == sb.grade


def test_a_call_inside_another_nurses_unit_of_work_is_refused(
        conn: Conn, world: dict[str, Any]) -> None:
    nurse_a, nurse_b, sb = world["nurse_a"], world["nurse_b"], world["sb"]
    with unit_of_work(conn, nurse_b):
        _refused(students.find_by_id(conn, nurse_a, sb.id))
        _refused(students.update(conn, nurse_a, sb.id, {"grade": "7"}))
        # the unit's own context still works in it
        assert students.find_by_id(conn, nurse_b, sb.id).unwrap().id == sb.id


def test_a_nested_unit_of_work_of_another_context_is_refused(
        conn: Conn, world: dict[str, Any]) -> None:
    nurse_a, nurse_b, sb = world["nurse_a"], world["nurse_b"], world["sb"]
    result = run_in_scope(conn, nurse_b, lambda: run_in_scope(
        conn, nurse_a, lambda: students.find_by_id(conn, nurse_a, sb.id)))
    _refused(result)
    with (unit_of_work(conn, nurse_b), pytest.raises(psycopg.errors.InsufficientPrivilege),
          unit_of_work(conn, nurse_a)):
        pytest.fail("a unit of work nested in another principal's was opened")


def test_the_same_principal_may_act_under_another_request(
        conn: Conn, world: dict[str, Any]) -> None:
    """Request, session and correlation ids, address, agent and purpose may differ: each record
    carries the call's own."""
    nurse_b, sb = world["nurse_b"], world["sb"]
    other_request = _nurse(world["b"], "u-nurse-b", ip_address="10.9.8.7",
                           user_agent="another agent", session_id="s-2",
                           correlation_id="c-2").with_request("req-other")
    assert same_principal(nurse_b, other_request)
    outcome = run_in_scope(conn, nurse_b, lambda: run_in_scope(
        conn, other_request, lambda: students.find_by_id(conn, other_request, sb.id)))
    assert isinstance(outcome, Success) and outcome.unwrap().id == sb.id


def _variants(school: dict[str, uuid.UUID], other: dict[str, uuid.UUID]
              ) -> list[tuple[str, Callable[[ExecutionContext], ExecutionContext]]]:
    return [
        ("another user", lambda c: _nurse(school, "u-someone-else")),
        ("another role", lambda c: ExecutionContext(
            user_id=c.user_id, role=Role.ADMIN, school_ids=c.school_ids)),
        ("another school set", lambda c: _nurse(other, c.user_id)),
        ("more schools", lambda c: ExecutionContext(
            user_id=c.user_id, role=c.role, school_ids={*c.school_ids, other["school_id"]})),
        ("break-glass", lambda c: c.break_glass("patient collapsed in the gym, allergy check")),
    ]


def test_every_difference_in_what_the_token_signs_is_another_principal(
        world: dict[str, Any]) -> None:
    base = world["nurse_a"]
    for label, change in _variants(world["a"], world["b"]):
        other = change(base)
        assert not same_principal(base, other), label
        assert not same_principal(other, base), label


def test_an_async_task_cannot_borrow_another_tasks_unit_of_work(
        conn: Conn, db_url: str, world: dict[str, Any]) -> None:
    nurse_a, nurse_b, sb = world["nurse_a"], world["nurse_b"], world["sb"]

    async def main() -> Result[Any, DataError]:
        async with await aio.connect(db_url) as c:
            opened, done = asyncio.Event(), asyncio.Event()

            async def nurse_b_request() -> None:
                async with aio.unit_of_work(c, nurse_b):
                    opened.set()
                    await done.wait()

            async def nurse_a_request() -> Result[Any, DataError]:
                await opened.wait()
                try:
                    return await astudents.find_by_id(c, nurse_a, sb.id)
                finally:
                    done.set()

            _, seen = await asyncio.gather(nurse_b_request(), nurse_a_request())
            return seen

    _refused(asyncio.run(main()))


# --- the SECURITY DEFINER functions' search path ------------------------------------------------


def test_every_security_definer_function_searches_temporary_tables_last(admin_conn: Conn) -> None:
    rows = admin_conn.execute(
        "SELECT p.oid::regprocedure::text, p.proconfig FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE p.prosecdef AND n.nspname = 'public'").fetchall()
    assert len(rows) >= 5  # the scope's verifier, claims, denials and fingerprint
    for name, config in rows:
        assert "search_path=pg_catalog, public, pg_temp" in (config or []), name


def test_temporary_tables_cannot_shadow_the_catalogue_the_denial_check_reads(
        admin_conn: Conn, db_url: str, sys_ctx: ExecutionContext) -> None:
    """Raw SQL as the application role, with no scope at all, creates temporary tables named as
    the catalogue tables ``wxdata_outside_scope`` reads, pointing its comparison at a student's
    medication instead of the primary key: the answers must not change."""
    school = _school(admin_conn)
    student = students.create(admin_conn, sys_ctx, student_values(school)).unwrap()
    taken, other = (admin_conn.execute(
        "INSERT INTO medications (name, dosage_form, strength) VALUES (%s, 'tablet', '5 mg') "
        "RETURNING id", (f"Med-{uuid.uuid4().hex[:8]}",)).fetchone()[0] for _ in range(2))
    admin_conn.execute(
        "INSERT INTO student_medications (student_id, medication_id, dosage, frequency, route,"
        " start_date, prescribed_by) VALUES (%s, %s, '5 mg', 'daily', 'oral', current_date, 'Dr')",
        (student.id, taken))
    ask = "SELECT wxdata_outside_scope('student_medications'::regclass, ARRAY[%s]::uuid[])"
    with psycopg.connect(db_url, autocommit=True) as attacker:
        assert attacker.execute("SELECT count(*) FROM student_medications").fetchone() == (0,)
        before = [attacker.execute(ask, (m,)).fetchone() for m in (taken, other)]
        attacker.execute("CREATE TEMP TABLE pg_index (indrelid oid, indkey int2vector,"
                         " indisprimary bool, indnatts int2)")
        attacker.execute("CREATE TEMP TABLE pg_attribute (attrelid oid, attnum int2,"
                         " attname name, atttypid oid, attisdropped bool)")
        attacker.execute("CREATE TEMP TABLE pg_policy (polrelid oid, polname name)")
        attacker.execute("INSERT INTO pg_index VALUES ('student_medications'::regclass, '3',"
                         " true, 1)")
        attacker.execute("INSERT INTO pg_attribute VALUES ('student_medications'::regclass, 3,"
                         " 'medication_id', 'uuid'::regtype, false)")
        attacker.execute("INSERT INTO pg_policy VALUES ('student_medications'::regclass,"
                         " 'wxdata_school_scope')")
        after = [attacker.execute(ask, (m,)).fetchone() for m in (taken, other)]
        attacker.execute("CREATE TEMP TABLE wxdata_scope_key (ipad bytea, opad bytea)")
        fingerprint = attacker.execute("SELECT wxdata_scope_key_fingerprint()").fetchone()
    assert before == after == [(False,), (False,)]
    expected = admin_conn.execute("SELECT wxdata_scope_key_fingerprint()").fetchone()
    assert fingerprint == expected
