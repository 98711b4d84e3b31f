"""A read in a transaction wxdata did not open keeps its record whatever the caller does next.

On a connection not in autocommit (psycopg's default), inside the caller's own
``conn.transaction()`` block, or after a ``BEGIN`` the caller left open, a record riding the read
would commit or roll back with the caller's transaction: a rollback after the rows were handed out
would leave a disclosure without its record. There wxdata commits the record on audit lane 2
before returning the rows (``test_audit_lane_pool.py`` checks the refusal when lane 2 is down),
and never relaxes the caller's commit (``AUDIT_READ_COMMIT=async`` applies only to a read that is
its own transaction). Runs as the application role, subject to row-level security."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import psycopg
import pytest

from wxdata import ExecutionContext, Purpose, Role, aio, crud
from wxdata.audit import log_read
from wxdata.audit.lanes import lane_health
from wxdata.config import configure, settings
from wxdata.db import connect_kwargs
from wxdata.domains import students
from wxdata.schema import STUDENTS

Conn = psycopg.Connection[Any]


class Boom(Exception):
    """The caller's own error, rolling its transaction back."""


def _ctx(school: dict[str, uuid.UUID]) -> ExecutionContext:
    return ExecutionContext(user_id="u-foreign-tx", role=Role.NURSE, purpose=Purpose.TREATMENT,
                            ip_address="10.9.9.9", request_id=f"req-ftx-{uuid.uuid4().hex[:10]}",
                            school_ids={school["school_id"]})


def _records(admin: Conn, ctx: ExecutionContext) -> list[tuple[Any, ...]]:
    return admin.execute("SELECT action::text, entity_ids, subject_ids FROM audit_log "
                         "WHERE request_id = %s ORDER BY seq", (ctx.request_id,)).fetchall()


def test_a_read_in_the_callers_transaction_block_keeps_its_record_after_a_rollback(
        conn: Conn, admin_conn: Conn, school: dict[str, uuid.UUID], make_student: Any) -> None:
    student = make_student()
    ctx = _ctx(school)
    seen: list[Any] = []

    def reads_then_fails() -> None:
        with conn.transaction():
            seen.append(students.find_by_id(conn, ctx, student.id).unwrap())
            seen.append(students.find_many(conn, ctx, {"id": student.id}).unwrap())
            seen.append(crud.fetch(
                conn, ctx, "SELECT id, first_name FROM students WHERE id = %(id)s",
                {"id": student.id}).unwrap())
            seen.append(log_read(conn, ctx, students.ENTITY, [student.id]).unwrap())
            raise Boom

    with pytest.raises(Boom):
        reads_then_fails()
    assert seen[0].id == student.id and [r.id for r in seen[1].data] == [student.id]
    assert [r[0] for r in seen[2]] == [student.id]
    records = _records(admin_conn, ctx)
    assert [r[0] for r in records] == ["READ"] * 4
    assert all(r[1] == [student.id] and r[2] == [student.id] for r in records)


def test_a_read_on_a_connection_not_in_autocommit_keeps_its_record_after_a_rollback(
        db_url: str, admin_conn: Conn, school: dict[str, uuid.UUID], make_student: Any) -> None:
    student = make_student()
    ctx = _ctx(school)
    with psycopg.connect(db_url, **connect_kwargs()) as c:
        assert not c.autocommit
        page = students.find_many(c, ctx, {"school_id": school["school_id"]}).unwrap()
        assert [r.id for r in page.data] == [student.id]
        c.rollback()
    assert [r[0] for r in _records(admin_conn, ctx)] == ["READ"]


def test_a_read_after_a_begin_the_caller_left_open_keeps_its_record(
        conn: Conn, admin_conn: Conn, school: dict[str, uuid.UUID], make_student: Any) -> None:
    student = make_student()
    ctx = _ctx(school)
    conn.execute("BEGIN")
    try:
        assert students.find_by_id(conn, ctx, student.id).unwrap().id == student.id
    finally:
        conn.execute("ROLLBACK")
    assert [r[0] for r in _records(admin_conn, ctx)] == ["READ"]


def test_an_async_read_in_the_callers_transaction_block_keeps_its_record(
        db_url: str, admin_conn: Conn, school: dict[str, uuid.UUID], make_student: Any) -> None:
    student = make_student()
    ctx = _ctx(school)

    async def main() -> Any:
        async with await psycopg.AsyncConnection.connect(
                db_url, autocommit=True, **connect_kwargs()) as c:
            try:
                async with c.transaction():
                    row = (await aio.crud.find_by_id(c, ctx, STUDENTS, student.id)).unwrap()
                    raise Boom
            except Boom:
                return row

    assert asyncio.run(main()).id == student.id
    assert [r[0] for r in _records(admin_conn, ctx)] == ["READ"]


def test_a_read_in_its_own_transaction_still_rides_its_statement(
        conn: Conn, admin_conn: Conn, school: dict[str, uuid.UUID], make_student: Any) -> None:
    """The usual case is unchanged: an autocommit connection between transactions, one statement
    carrying the read and its record (no lane-2 connection made)."""
    student = make_student()
    ctx = _ctx(school)
    assert conn.autocommit
    before = lane_health().written
    assert students.find_by_id(conn, ctx, student.id).unwrap().id == student.id
    assert lane_health().written == before
    assert [r[0] for r in _records(admin_conn, ctx)] == ["READ"]


def test_a_read_in_the_callers_transaction_goes_to_lane_two(
        conn: Conn, admin_conn: Conn, school: dict[str, uuid.UUID], make_student: Any) -> None:
    student = make_student()
    ctx = _ctx(school)
    before = lane_health().written
    with conn.transaction():
        assert students.find_by_id(conn, ctx, student.id).unwrap().id == student.id
    assert lane_health().written == before + 1
    assert [r[0] for r in _records(admin_conn, ctx)] == ["READ"]


@pytest.fixture
def relaxed_reads() -> Iterator[None]:
    previous = settings()
    configure(attrs.evolve(previous, audit_enabled=True, audit_phi_access=True,
                           audit_read_commit="async"))
    try:
        yield
    finally:
        configure(previous)


def test_relaxed_read_records_never_relax_the_callers_transaction(
        conn: Conn, admin_conn: Conn, school: dict[str, uuid.UUID], make_student: Any,
        relaxed_reads: None) -> None:
    student = make_student()
    ctx = _ctx(school)
    with conn.transaction():
        students.find_by_id(conn, ctx, student.id).unwrap()
        setting = conn.execute("SELECT current_setting('synchronous_commit')").fetchone()
        students.update(conn, ctx, student.id, {"grade": "6"}).unwrap()
    assert setting == ("on",)
    assert [r[0] for r in _records(admin_conn, ctx)] == ["READ", "UPDATE"]
