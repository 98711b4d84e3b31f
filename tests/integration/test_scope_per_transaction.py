"""The school scope enforced by row-level security is exactly the context's, per transaction.

One pooled connection (``max_size=1``, the application role) serves contexts of school A, of
school B, of both, of no school, and SYSTEM, in an order hypothesis draws. Inside each unit of
work and on each single-statement path, the scope the policies read (``wxdata_school_ids()`` and
``wxdata_scope_bypass()``) must equal exactly the context's schools and bypass flag, the rows
returned must belong to those schools only, and nothing may stay on the session afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import ConnectionPool

from tests.conftest import student_values
from wxdata import ExecutionContext, Purpose, Role, crud, system_context
from wxdata.db import bypasses_row_security_role, create_pool
from wxdata.domains import health_records, students
from wxdata.schema import HEALTH_RECORDS, STUDENTS
from wxdata.tx import unit_of_work

SCOPE_SQL = "SELECT wxdata_school_ids(), wxdata_scope_bypass()"


def _school(conn: psycopg.Connection[Any], tag: str) -> dict[str, uuid.UUID]:
    d = conn.execute("INSERT INTO districts (name, code) VALUES ('D', %s) RETURNING id",
                     (f"PD-{tag}",)).fetchone()
    assert d is not None
    s = conn.execute("INSERT INTO schools (name, code, district_id) VALUES ('S', %s, %s) "
                     "RETURNING id", (f"PS-{tag}", d[0])).fetchone()
    assert s is not None
    return {"district_id": d[0], "school_id": s[0]}


@pytest.fixture
def world(conn: psycopg.Connection[Any], sys_ctx: ExecutionContext) -> dict[str, Any]:
    """Two schools, each with a student and a health record (made by SYSTEM)."""
    tag = uuid.uuid4().hex[:8]
    out: dict[str, Any] = {"students": {}, "records": {}}
    for name in ("a", "b"):
        school = _school(conn, f"{tag}{name}")
        student = students.create(conn, sys_ctx, student_values(school)).unwrap()
        record = health_records.create(conn, sys_ctx, {
            "student_id": student.id, "record_type": "ILLNESS", "title": "Flu",
            "description": "fever", "record_date": "2024-02-01"}).unwrap()
        out[name] = school["school_id"]
        out["students"][student.id] = school["school_id"]
        out["records"][record.id] = school["school_id"]
    return out


def _contexts(world: dict[str, Any]) -> dict[str, ExecutionContext]:
    nurse = ExecutionContext(user_id="u-scope", role=Role.NURSE, purpose=Purpose.TREATMENT,
                             request_id="req-scope")
    return {
        "a": attrs.evolve(nurse, school_ids={world["a"]}),
        "b": attrs.evolve(nurse, school_ids={world["b"]}),
        "ab": attrs.evolve(nurse, school_ids={world["a"], world["b"]}),
        "none": nurse,
        "system": system_context("scope-test"),
    }


@pytest.fixture
def one_connection(db_url: str) -> Iterator[ConnectionPool[psycopg.Connection[Any]]]:
    """A pool of exactly one connection as the run's application login role (RLS applies)."""
    pool = create_pool(db_url, min_size=1, max_size=1, check=None, name="scope-test")
    try:
        yield pool
    finally:
        pool.close()


def _expect(ctx: ExecutionContext) -> tuple[set[uuid.UUID], bool]:
    return set(ctx.school_ids), ctx.is_system or ctx.is_break_glass


def _visible_schools(ctx: ExecutionContext, world: dict[str, Any]) -> set[uuid.UUID]:
    schools, bypass = _expect(ctx)
    return {world["a"], world["b"]} if bypass else schools


def _check_rows(ctx: ExecutionContext, world: dict[str, Any], student_rows: list[Any],
                record_ids: list[uuid.UUID], where: str) -> None:
    allowed = _visible_schools(ctx, world)
    got_schools = {world["students"][s] for s in student_rows}
    assert got_schools == allowed, f"{where}: students of {got_schools}, scope {allowed}"
    record_schools = {world["records"][r] for r in record_ids}
    assert record_schools == allowed, f"{where}: records of {record_schools}, scope {allowed}"


def _unit_of_work(c: psycopg.Connection[Any], ctx: ExecutionContext,
                  world: dict[str, Any]) -> None:
    ids = list(world["students"])
    with unit_of_work(c, ctx):
        row = c.execute(SCOPE_SQL).fetchone()
        assert row is not None
        assert (set(row[0]), row[1]) == _expect(ctx), "scope inside a unit of work"
        raw = [r[0] for r in c.execute("SELECT id FROM students WHERE id = ANY(%s)",
                                       (ids,)).fetchall()]
        found = crud.find_many(c, ctx, STUDENTS, {"id": {"in": ids}}).unwrap()
        assert {r.id for r in found.data} == set(raw)
        records = crud.find_many(c, ctx, HEALTH_RECORDS,
                                 {"id": {"in": list(world["records"])}}).unwrap()
        _check_rows(ctx, world, raw, [r.id for r in records.data], "unit of work")


def _single_statements(c: psycopg.Connection[Any], ctx: ExecutionContext,
                       world: dict[str, Any]) -> None:
    ids = list(world["students"])
    row = crud.fetch(c, ctx, SCOPE_SQL).unwrap()[0]
    assert (set(row[0]), row[1]) == _expect(ctx), "scope of a single statement"
    raw = [r[0] for r in crud.fetch(c, ctx, "SELECT id FROM students WHERE id = ANY(%(ids)s)",
                                    {"ids": ids}).unwrap()]
    found = crud.find_many(c, ctx, STUDENTS, {"id": {"in": ids}}).unwrap()
    assert {r.id for r in found.data} == set(raw)
    assert crud.count(c, ctx, STUDENTS, {"id": {"in": ids}}).unwrap() == len(raw)
    records = crud.find_many(c, ctx, HEALTH_RECORDS,
                             {"id": {"in": list(world["records"])}}).unwrap()
    _check_rows(ctx, world, raw, [r.id for r in records.data], "single statement")


def _session_is_clean(c: psycopg.Connection[Any]) -> None:
    row = c.execute(SCOPE_SQL).fetchone()
    assert row is not None and (list(row[0]), row[1]) == ([], False), "scope left on the session"


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(st.sampled_from(["a", "b", "ab", "none", "system"]),
                                st.sampled_from(["unit_of_work", "single"])),
                      min_size=2, max_size=12))
def test_scope_is_exactly_the_contexts_schools_on_a_shared_connection(
    one_connection: ConnectionPool[psycopg.Connection[Any]], world: dict[str, Any],
    steps: list[tuple[str, str]],
) -> None:
    contexts = _contexts(world)
    backends: set[int] = set()
    for name, path in steps:
        ctx = contexts[name]
        with one_connection.connection() as c:
            assert not bypasses_row_security_role(c)
            backends.add(c.info.backend_pid)
            if path == "unit_of_work":
                _unit_of_work(c, ctx, world)
            else:
                _single_statements(c, ctx, world)
            _session_is_clean(c)
    assert len(backends) == 1, "the steps did not share one connection"


def test_alternating_two_schools_never_mixes_them(
    one_connection: ConnectionPool[psycopg.Connection[Any]], world: dict[str, Any],
) -> None:
    contexts = _contexts(world)
    for name in ["a", "b", "a", "ab", "b", "system", "a", "none", "b"] * 2:
        with one_connection.connection() as c:
            _unit_of_work(c, contexts[name], world)
            _single_statements(c, contexts[name], world)
            _session_is_clean(c)
