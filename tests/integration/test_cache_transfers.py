"""A student's transfer changes what each school sees of every entity scoped through students;
reads and fills in transactions wxdata did not open (real PostgreSQL, memory caches)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import psycopg
import pytest
from returns.result import Result

from tests.cache_support import heard, memory
from wxdata import ExecutionContext, Purpose, Role, aio
from wxdata.aio.domains import students as astudents
from wxdata.cache import aio as acache
from wxdata.cache import cached
from wxdata.cache.backends.aio import AsyncMemoryCache
from wxdata.cache.backends.memory import MemoryCache
from wxdata.cache.factory import using_cache
from wxdata.cache.invalidation import scoped_through_students, subscribe, tags_for, unsubscribe
from wxdata.cache.totals import cache_totals, uncache_totals
from wxdata.db import connect_kwargs
from wxdata.domains import health_records, students
from wxdata.errors import DataError
from wxdata.schema import HEALTH_RECORDS, STUDENTS
from wxdata.schema.spec import registered
from wxdata.tx.events import WriteEvent, announce_write, foreign_writes

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[Any]


@pytest.fixture
def mem() -> Iterator[MemoryCache]:
    with heard(memory()) as cache:
        yield cache


def _school(conn: Conn, district: uuid.UUID) -> uuid.UUID:
    tag = uuid.uuid4().hex[:8]
    row = conn.execute("INSERT INTO schools (name, code, district_id) VALUES (%s, %s, %s) "
                       "RETURNING id", (f"School {tag}", f"T-{tag}", district)).fetchone()
    assert row is not None
    return row[0]


def _nurse(school_id: uuid.UUID) -> ExecutionContext:
    return ExecutionContext(user_id="u-nurse-t", role=Role.NURSE, purpose=Purpose.TREATMENT,
                            request_id=f"req-{uuid.uuid4().hex[:8]}", school_ids={school_id})


def _record(conn: Conn, sys_ctx: ExecutionContext, sid: Any) -> None:
    health_records.create(conn, sys_ctx, {
        "student_id": sid, "record_type": "ILLNESS", "title": "Flu", "description": "fever",
        "record_date": date(2025, 1, 14)}).unwrap()


def _visits(cache: MemoryCache) -> Any:
    @cached(HEALTH_RECORDS, cache=cache)
    def visits(conn: Conn, ctx: ExecutionContext, sid: uuid.UUID) -> Result[Any, DataError]:
        return health_records.find_many(conn, ctx, {"student_id": sid})

    return visits


_MOVES: dict[str, Callable[[Conn, ExecutionContext, uuid.UUID, uuid.UUID], Any]] = {
    "update": lambda c, x, sid, to: students.update(c, x, sid, {"school_id": to}).unwrap(),
    "update_where": lambda c, x, sid, to: students.update_where(
        c, x, {"id": sid}, {"school_id": to}).unwrap(),
    "update_ids": lambda c, x, sid, to: students.update_ids(c, x, [sid], {"school_id": to}),
}


@pytest.mark.parametrize("move", sorted(_MOVES))
def test_a_transfer_drops_every_schools_cached_records_and_totals(
        move: str, conn: Conn, sys_ctx: ExecutionContext, school: dict[str, uuid.UUID],
        make_student: Any, mem: MemoryCache) -> None:
    moved, stays = make_student(), make_student()
    _record(conn, sys_ctx, moved.id)
    _record(conn, sys_ctx, stays.id)
    other = _school(conn, school["district_id"])
    old, new = _nurse(school["school_id"]), _nurse(other)
    visits = _visits(mem)
    where = {"record_type": "ILLNESS", "title": "Flu"}
    with using_cache(mem):
        cache_totals(HEALTH_RECORDS)
        try:
            assert visits(conn, old, moved.id).unwrap().total == 1
            assert visits(conn, new, moved.id).unwrap().total == 0
            assert health_records.find_many(conn, old, where, limit=1).unwrap().total == 2
            assert health_records.find_many(conn, new, where, limit=1).unwrap().total == 0
            _MOVES[move](conn, sys_ctx, moved.id, other)
            assert visits(conn, old, moved.id).unwrap().total == 0
            assert visits(conn, new, moved.id).unwrap().total == 1
            assert health_records.find_many(conn, old, where, page=2, limit=1).unwrap().total == 1
            assert health_records.find_many(conn, new, where, page=2, limit=1).unwrap().total == 1
        finally:
            uncache_totals()


def test_the_entities_scoped_through_students_are_those_without_a_school() -> None:
    owner, tags = scoped_through_students()
    assert owner == STUDENTS.name
    expected = {f"entity:{e.name}" for e in registered() if e.table != "students"
                and "school_id" not in e.by_name and "student_id" in e.by_name}
    assert set(tags) == expected and "entity:HealthRecord" in tags and "entity:Student" not in tags
    assert scoped_through_students()[1] is tags  # derived once


@pytest.mark.parametrize(("action", "columns", "moves"), [
    ("UPDATE", None, True), ("UPDATE", ("school_id", "grade"), True), ("UPDATE", ("grade",), False),
    ("BULK_UPDATE", None, True), ("DELETE", None, True), ("RESTORE", None, True),
    ("CREATE", None, False), ("BULK_CREATE", None, False)])
def test_which_student_writes_drop_the_entities_scoped_through_students(
        action: str, columns: tuple[str, ...] | None, moves: bool) -> None:
    sid = uuid.uuid4()
    tags = tags_for(WriteEvent(STUDENTS.name, action, (sid,), (sid,), columns))
    assert ("entity:HealthRecord" in tags) is moves
    assert {"entity:Student", f"row:Student:{sid}", f"student:{sid}"} <= set(tags)
    other = tags_for(WriteEvent(HEALTH_RECORDS.name, action, (sid,), (sid,)))
    assert "entity:Allergy" not in other


def test_a_student_write_naming_other_columns_keeps_other_entities(
        conn: Conn, sys_ctx: ExecutionContext, school: dict[str, uuid.UUID], make_student: Any,
        mem: MemoryCache) -> None:
    s = make_student()
    _record(conn, sys_ctx, s.id)
    nurse = _nurse(school["school_id"])
    visits = _visits(mem)
    assert visits(conn, nurse, s.id).unwrap().total == 1
    hits = mem.stats().hits
    announce_write(conn, WriteEvent(STUDENTS.name, "UPDATE", (s.id,), (s.id,), ("grade",)))
    assert visits(conn, nurse, s.id).unwrap().total == 1
    assert mem.stats().hits == hits + 1


def test_an_async_transfer_drops_the_old_schools_cached_records(
        db_url: str, conn: Conn, sys_ctx: ExecutionContext, school: dict[str, uuid.UUID],
        make_student: Any) -> None:
    s = make_student()
    _record(conn, sys_ctx, s.id)
    other = _school(conn, school["district_id"])
    nurse = _nurse(school["school_id"])
    cache = AsyncMemoryCache(memory())
    subscribe(cache.sync)

    @acache.cached(HEALTH_RECORDS, cache=cache)
    async def visits(aconn: Any, ctx: ExecutionContext, sid: uuid.UUID) -> Result[Any, DataError]:
        return await aio.crud.find_many(aconn, ctx, HEALTH_RECORDS, {"student_id": sid})

    async def scenario() -> tuple[int, int]:
        aconn = await aio.connect(db_url)
        try:
            before = (await visits(aconn, nurse, s.id)).unwrap().total
            (await astudents.update(aconn, sys_ctx, s.id, {"school_id": other})).unwrap()
            return before, (await visits(aconn, nurse, s.id)).unwrap().total
        finally:
            await aconn.close()

    try:
        assert asyncio.run(scenario()) == (1, 0)
    finally:
        unsubscribe(cache.sync)


# --- transactions wxdata did not open -------------------------------------------------------


def _grade_reader(cache: MemoryCache) -> Any:
    @cached(STUDENTS, cache=cache)
    def grade_of(conn: Conn, ctx: ExecutionContext, sid: uuid.UUID) -> Result[Any, DataError]:
        return students.find_many(conn, ctx, {"id": sid})

    return grade_of


def test_a_read_in_a_foreign_transaction_neither_hits_nor_fills(
        conn: Conn, db_url: str, ctx: ExecutionContext, make_student: Any,
        mem: MemoryCache) -> None:
    s = make_student(grade="5")
    read = _grade_reader(mem)
    with psycopg.connect(db_url, autocommit=False, **connect_kwargs()) as tx:
        tx.execute("SELECT 1").fetchone()
        before = mem.stats().total
        assert read(tx, ctx, s.id).unwrap().data[0].grade == "5"
        assert read(tx, ctx, s.id).unwrap().data[0].grade == "5"
        after = mem.stats().total
        tx.rollback()
    assert (after.hits, after.misses, after.sets) == (before.hits, before.misses, before.sets)
    assert after.bypasses == before.bypasses + 2


def test_a_foreign_write_holds_fills_until_its_transaction_ends(
        conn: Conn, db_url: str, ctx: ExecutionContext, sys_ctx: ExecutionContext,
        make_student: Any, mem: MemoryCache) -> None:
    s = make_student(grade="5")
    read = _grade_reader(mem)
    with psycopg.connect(db_url, autocommit=False, **connect_kwargs()) as tx:
        tx.execute("SELECT 1").fetchone()
        students.update(tx, sys_ctx, s.id, {"grade": "6"}).unwrap()
        assert foreign_writes
        assert read(conn, ctx, s.id).unwrap().data[0].grade == "5"   # read, not stored
        assert read(conn, ctx, s.id).unwrap().data[0].grade == "5"
        tx.commit()
    assert read(conn, ctx, s.id).unwrap().data[0].grade == "6"
    assert not foreign_writes   # seen idle: delivered again and forgotten
    sets = mem.stats().total.sets
    assert read(conn, ctx, s.id).unwrap().data[0].grade == "6"
    assert mem.stats().total.sets == sets   # a hit again


def test_a_foreign_write_is_delivered_again_when_its_transaction_ends(
        conn: Conn, db_url: str, ctx: ExecutionContext, sys_ctx: ExecutionContext,
        make_student: Any, mem: MemoryCache) -> None:
    s = make_student(grade="5")
    read = _grade_reader(mem)
    with psycopg.connect(db_url, autocommit=False, **connect_kwargs()) as tx:
        tx.execute("SELECT 1").fetchone()
        students.update(tx, sys_ctx, s.id, {"grade": "6"}).unwrap()
        # a value stored meanwhile by a path that did not check (another process's fill)
        other = memory()
        subscribe(other)
        try:
            k = "white-cross:student:list:probe"
            tag = other.keys.tag_id(f"row:Student:{s.id}")
            miss = other.lookup(k, "Student", True)
            assert other.fill(k, "stale", ttl=60, tag_ids=[tag], token=miss.token,
                              entity="Student", sensitive=True)
            tx.commit()
            read(conn, ctx, s.id)   # wxdata sees the connection idle
            assert type(other.lookup(k, "Student", True)).__name__ == "Miss"
        finally:
            unsubscribe(other)


def test_an_async_read_in_a_foreign_transaction_is_bypassed(
        db_url: str, ctx: ExecutionContext, make_student: Any) -> None:
    s = make_student(grade="5")
    cache = AsyncMemoryCache(memory())

    @acache.cached(STUDENTS, cache=cache)
    async def grade_of(aconn: Any, c: ExecutionContext, sid: uuid.UUID) -> Result[Any, DataError]:
        return await aio.crud.find_many(aconn, c, STUDENTS, {"id": sid})

    async def scenario() -> None:
        aconn = await psycopg.AsyncConnection.connect(db_url, autocommit=False,
                                                      **connect_kwargs())
        try:
            await aconn.execute("SELECT 1")
            await grade_of(aconn, ctx, s.id)
            await grade_of(aconn, ctx, s.id)
            await aconn.rollback()
        finally:
            await aconn.close()

    asyncio.run(scenario())
    stats = cache.sync.stats().total
    assert (stats.hits, stats.sets, stats.bypasses) == (0, 0, 2)


def test_an_ordinary_student_update_keeps_other_entities_and_a_transfer_drops_them(
        conn: Conn, sys_ctx: ExecutionContext, school: dict[str, uuid.UUID], make_student: Any,
        mem: MemoryCache) -> None:
    """``update`` and ``update_where`` name the columns they set: a student's new grade changes no
    school's view of health records, so their cached values stay; a new school drops them."""
    s, other_student = make_student(), make_student()
    _record(conn, sys_ctx, s.id)
    nurse = _nurse(school["school_id"])
    visits = _visits(mem)
    with using_cache(mem):
        assert visits(conn, nurse, s.id).unwrap().total == 1
        hits = mem.stats().hits
        students.update(conn, sys_ctx, other_student.id, {"grade": "7"}).unwrap()
        students.update_where(conn, sys_ctx, {"id": other_student.id}, {"grade": "8"}).unwrap()
        assert visits(conn, nurse, s.id).unwrap().total == 1
        assert mem.stats().hits == hits + 1
        elsewhere = _school(conn, school["district_id"])
        students.update(conn, sys_ctx, other_student.id, {"school_id": elsewhere}).unwrap()
        assert visits(conn, nurse, s.id).unwrap().total == 1
        assert mem.stats().hits == hits + 1  # dropped by the transfer: read again, not a hit
