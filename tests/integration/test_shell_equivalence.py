"""The sync and async shells are one behaviour: random operation sequences (create, read, update,
delete, page; in and out of units of work, some rolled back, some failing validation) run through
``wxdata.crud`` on one database and through ``wxdata.aio`` on its twin, and every Result and every
audit record must be the same once ids (mapped to creation order) and timestamps are set aside.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Success

import wxdata.aio as aio
from wxdata import ExecutionContext, Purpose, Role
from wxdata.aio.domains import students as astudents
from wxdata.db import connect_kwargs
from wxdata.domains import students
from wxdata.query.paging import Page
from wxdata.roles import ensure_app_role
from wxdata.tx import RollbackScope, unit_of_work

GRADES = st.sampled_from(["1", "5", "9", "K"])
STEP = st.one_of(
    st.tuples(st.just("create"), st.booleans(), GRADES),  # (op, valid, grade)
    st.tuples(st.just("read"), st.integers(0, 20)),
    st.tuples(st.just("update"), st.integers(0, 20), st.one_of(GRADES, st.just(7))),
    st.tuples(st.just("delete"), st.integers(0, 20)),
    st.tuples(st.just("page"), st.integers(1, 3)),
)
UNIT = st.tuples(st.just("unit"), st.lists(STEP, min_size=1, max_size=4), st.booleans())
PROGRAM = st.lists(st.one_of(STEP, UNIT), min_size=1, max_size=8)


@attrs.define
class Side:
    """One database, the ids it created (in order) and how to run a step on it."""

    school: dict[str, uuid.UUID]
    made: list[uuid.UUID] = attrs.field(factory=list)
    numbers: int = 0

    def key(self, index: int) -> uuid.UUID:
        return self.made[index % len(self.made)] if self.made else uuid.UUID(int=index)

    def values(self, valid: bool, grade: str) -> dict[str, Any]:
        self.numbers += 1  # the same sequence on both sides: pages sort by it
        return {"student_number": f"STU-EQ{self.numbers:06d}", "first_name": "Ada",
                "last_name": "Lovelace", "date_of_birth": date(2014, 5, 17),
                "grade": grade if valid else 5, "gender": "FEMALE",
                "enrollment_date": date(2020, 9, 1), **self.school}


def _normal(value: Any, ids: dict[uuid.UUID, str]) -> Any:
    """``value`` with ids replaced by their creation rank, timestamps and numbers by markers."""
    if isinstance(value, Success | Failure):
        return (type(value).__name__, _normal(value.value_or(None) if isinstance(value, Success)
                                              else value.failure(), ids))
    if isinstance(value, Page):
        return ("page", _normal(list(value.data), ids), value.total, value.page)
    if attrs.has(type(value)):
        return {k: _normal(v, ids) for k, v in attrs.asdict(value, recurse=False).items()}
    if isinstance(value, dict):
        return {k: _normal(v, ids) for k, v in value.items()
                if k not in ("created_at", "updated_at", "timestamp")}
    if isinstance(value, list | tuple):
        return [_normal(v, ids) for v in value]
    if isinstance(value, uuid.UUID):
        return ids.get(value, "other")
    if isinstance(value, str):
        try:
            return ids.get(uuid.UUID(value), value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return "<time>"
    return value


def _sync_step(conn: psycopg.Connection[Any], ctx: ExecutionContext, side: Side,
               step: tuple[Any, ...]) -> Any:
    op = step[0]
    if op == "create":
        result = students.create(conn, ctx, side.values(step[1], step[2]))
        side.made.extend(r.id for r in [result.value_or(None)] if r is not None)
        return result
    if op == "read":
        return students.find_by_id(conn, ctx, side.key(step[1]))
    if op == "update":
        return students.update(conn, ctx, side.key(step[1]), {"grade": step[2]})
    if op == "delete":
        return students.delete(conn, ctx, side.key(step[1]))
    if op == "page":
        return students.find_many(conn, ctx, {"school_id": side.school["school_id"]},
                                  order_by=["student_number"], page=step[1], limit=2)
    out: list[Any] = []
    with unit_of_work(conn, ctx):
        out.extend(_sync_step(conn, ctx, side, s) for s in step[1])
        if step[2]:
            raise RollbackScope
    return out


async def _async_step(conn: psycopg.AsyncConnection[Any], ctx: ExecutionContext, side: Side,
                      step: tuple[Any, ...]) -> Any:
    op = step[0]
    if op == "create":
        result = await astudents.create(conn, ctx, side.values(step[1], step[2]))
        side.made.extend(r.id for r in [result.value_or(None)] if r is not None)
        return result
    if op == "read":
        return await astudents.find_by_id(conn, ctx, side.key(step[1]))
    if op == "update":
        return await astudents.update(conn, ctx, side.key(step[1]), {"grade": step[2]})
    if op == "delete":
        return await astudents.delete(conn, ctx, side.key(step[1]))
    if op == "page":
        return await astudents.find_many(conn, ctx, {"school_id": side.school["school_id"]},
                                         order_by=["student_number"], page=step[1], limit=2)
    out: list[Any] = []
    async with aio.unit_of_work(conn, ctx):
        for s in step[1]:
            out.append(await _async_step(conn, ctx, side, s))
        if step[2]:
            raise RollbackScope
    return out


def _trail(conn: psycopg.Connection[Any], request: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT action, entity_type, entity_id, entity_ids, subject_ids, fields_disclosed, "
        "success, error_message, changes, previous_values, new_values, metadata, is_phi, "
        "user_id FROM audit_log WHERE request_id = %s ORDER BY seq", (request,)).fetchall()


def _records(rows: list[tuple[Any, ...]], ids: dict[uuid.UUID, str]) -> list[Any]:
    """Normalised records; entity_ids and subject_ids as sets (PostgreSQL orders them by value)."""
    out = []
    for row in _normal(rows, ids):
        row[3], row[4] = sorted(row[3]), sorted(row[4])
        out.append(row)
    return out


@pytest.fixture
def twins(fresh_database: Callable[[], str], owner_url: str, app_role: tuple[str, str],
          app_url_for: Callable[[str], str]) -> list[tuple[str, str]]:
    """Two fresh databases: (owner URL, application-role URL) each."""
    out = []
    for _ in range(2):
        url = fresh_database()
        with psycopg.connect(url, autocommit=True) as c:
            ensure_app_role(c, *app_role)
        out.append((url, app_url_for(url)))
    return out


def _school(owner: str, code: str) -> dict[str, uuid.UUID]:
    with psycopg.connect(owner, autocommit=True) as c:
        d = c.execute("INSERT INTO districts (name, code) VALUES ('D', %s) RETURNING id",
                      (code,)).fetchone()
        s = c.execute("INSERT INTO schools (name, code, district_id) VALUES ('S', %s, %s) "
                      "RETURNING id", (code, d[0] if d else None)).fetchone()
    assert d is not None and s is not None
    return {"school_id": s[0], "district_id": d[0]}


def test_random_programs_give_the_same_results_and_records_through_both_shells(twins) -> None:
    (owner_a, app_a), (owner_b, app_b) = twins
    school_a, school_b = _school(owner_a, "EQ-S"), _school(owner_b, "EQ-S")
    sync_side, async_side = Side(school_a), Side(school_b)
    loop = asyncio.new_event_loop()
    sync_conn = psycopg.connect(app_a, autocommit=True, **connect_kwargs())
    async_conn = loop.run_until_complete(
        psycopg.AsyncConnection.connect(app_b, autocommit=True, **connect_kwargs()))
    owners = psycopg.connect(owner_a, autocommit=True), psycopg.connect(owner_b, autocommit=True)

    @settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(PROGRAM)
    def check(program: list[tuple[Any, ...]]) -> None:
        request = f"eq-{uuid.uuid4().hex[:12]}"
        ctx_a = ExecutionContext(user_id="u-eq", role=Role.NURSE, purpose=Purpose.TREATMENT,
                                 school_ids={school_a["school_id"]}, request_id=request)
        ctx_b = attrs.evolve(ctx_a, school_ids=frozenset({school_b["school_id"]}))
        got_sync = [_sync_step(sync_conn, ctx_a, sync_side, s) for s in program]

        async def run_all() -> list[Any]:
            return [await _async_step(async_conn, ctx_b, async_side, s) for s in program]

        got_async = loop.run_until_complete(run_all())
        ids_a = {i: f"#{n}" for n, i in enumerate(sync_side.made)} | {
            school_a["school_id"]: "school", school_a["district_id"]: "district"}
        ids_b = {i: f"#{n}" for n, i in enumerate(async_side.made)} | {
            school_b["school_id"]: "school", school_b["district_id"]: "district"}
        assert _normal(got_sync, ids_a) == _normal(got_async, ids_b)
        assert _records(_trail(owners[0], request), ids_a) == _records(
            _trail(owners[1], request), ids_b)

    try:
        check()
    finally:
        sync_conn.close()
        loop.run_until_complete(async_conn.close())
        loop.close()
        for c in owners:
            c.close()


