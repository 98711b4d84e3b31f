"""The async API on its own: concurrent tasks on a pool, async hooks, connection lifetime."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
import weakref
from collections import Counter
from typing import Any

import attrs
import psycopg
from returns.result import Failure, Result, Success

import wxdata.aio as aio
from tests.conftest import student_values
from wxdata import ExecutionContext, Purpose, Role
from wxdata.aio.audit import log_read as alog_read
from wxdata.aio.audit import record_disclosure_to
from wxdata.aio.domains import students as astudents
from wxdata.audit.disclosures import build
from wxdata.audit.log import log_read
from wxdata.config import configure, settings
from wxdata.db import connect_kwargs
from wxdata.domains import students
from wxdata.errors import DataError, NotFound, Unavailable
from wxdata.schema import STUDENTS
from wxdata.tx import RollbackScope, ScopeError, current_scope, unit_of_work


def _school(conn: psycopg.Connection[Any], tag: str) -> uuid.UUID:
    d = conn.execute("INSERT INTO districts (name, code) VALUES ('D', %s) RETURNING id",
                     (f"AD-{tag}",)).fetchone()
    s = conn.execute("INSERT INTO schools (name, code, district_id) VALUES ('S', %s, %s) "
                     "RETURNING id", (f"AS-{tag}", d[0] if d else None)).fetchone()
    assert s is not None
    return uuid.UUID(str(s[0]))


def _nurse(school_id: uuid.UUID, user: str, request: str) -> ExecutionContext:
    return ExecutionContext(user_id=user, role=Role.NURSE, purpose=Purpose.TREATMENT,
                            school_ids={school_id}, request_id=request)


@aio.audited(STUDENTS)
async def _chart(conn: psycopg.AsyncConnection[Any], ctx: ExecutionContext,
                 sid: uuid.UUID) -> Result[Any, DataError]:
    await asyncio.sleep(0)  # let the other tasks run between the owner's set-up and the read
    return await astudents.find_by_id(conn, ctx, sid)


def test_fifty_concurrent_tasks_on_a_pool_never_mix_contexts(conn, sys_ctx, db_url) -> None:
    tag = uuid.uuid4().hex[:8]
    schools = [_school(conn, f"{tag}{i}") for i in range(10)]
    pupils = {s: [students.create(conn, sys_ctx, student_values(
        {"school_id": s, "district_id": None})).unwrap() for _ in range(5)] for s in schools}
    jobs = [(i, j) for i in range(10) for j in range(5)]

    async def task(pool: aio.AsyncPool, i: int, j: int) -> tuple[Any, ...]:
        school, other = schools[i], schools[(i + 1) % 10]
        mine, theirs = pupils[school][j], pupils[other][j]
        ctx = _nurse(school, f"u-{tag}-{i}-{j}", f"req-{tag}-{i}-{j}")
        async with pool.connection() as c:
            charted = await _chart(c, ctx, mine.id)
            hidden = await astudents.find_by_id(c, ctx, theirs.id)
            async with aio.unit_of_work(c, ctx):
                await asyncio.sleep(0)
                page = await astudents.find_many(c, ctx, {"school_id": {"in": [school, other]}})
        return charted, hidden, page

    async def main() -> list[tuple[Any, ...]]:
        pool = await aio.create_pool(db_url, min_size=2, max_size=6)
        try:
            return await asyncio.gather(*(task(pool, i, j) for i, j in jobs))
        finally:
            await pool.close()

    results = asyncio.run(main())
    assert len(results) == 50
    for (i, j), (charted, hidden, page) in zip(jobs, results, strict=True):
        school = schools[i]
        assert charted == Success(pupils[school][j])
        assert hidden == Failure(NotFound("Student"))
        assert sorted(r.id for r in page.unwrap().data) == sorted(p.id for p in pupils[school])
        rows = conn.execute(
            "SELECT action, user_id, subject_ids, success FROM audit_log WHERE request_id = %s",
            (f"req-{tag}-{i}-{j}",)).fetchall()
        assert Counter((a, u, tuple(sorted(s)), ok) for a, u, s, ok in rows) == Counter({
            ("READ", f"u-{tag}-{i}-{j}", (pupils[school][j].id,), True): 1,  # the decorator's
            ("ACCESS_DENIED", f"u-{tag}-{i}-{j}", (), False): 1,  # the other school's student
            ("READ", f"u-{tag}-{i}-{j}", tuple(sorted(p.id for p in pupils[school])), True): 1,
        })


def test_async_hooks_run_after_commit_only(ctx, school, db_url) -> None:
    async def main() -> tuple[list[str], Any, Any]:
        ran: list[str] = []

        async def committed() -> None:
            await asyncio.sleep(0)
            ran.append("committed")

        async with await aio.connect(db_url) as c:
            async with aio.unit_of_work(c, ctx) as scope:
                scope.after_commit(committed)
                scope.on_rollback(lambda: ran.append("never"))
                made = (await astudents.create(c, ctx, student_values(school))).unwrap()
                assert ran == [] and aio.current_scope(c) is scope
            assert ran == ["committed"] and aio.current_scope(c) is None
            async with aio.unit_of_work(c, ctx) as scope:
                scope.after_commit(committed)
                gone = (await astudents.create(c, ctx, student_values(school))).unwrap()
                scope.on_rollback(lambda: ran.append("rolled back"))
                raise RollbackScope
            return ran, await astudents.find_by_id(c, ctx, made.id), await astudents.find_by_id(
                c, ctx, gone.id)

    ran, kept, dropped = asyncio.run(main())
    assert ran == ["committed", "rolled back"]
    assert isinstance(kept, Success) and dropped == Failure(NotFound("Student"))


def test_async_transactional_retries_and_nests(ctx, school, db_url) -> None:
    attempts: list[int] = []

    @aio.transactional()
    async def inner(c: psycopg.AsyncConnection[Any], x: ExecutionContext) -> Result[Any, DataError]:
        scope = aio.current_scope(c)
        assert scope is not None
        attempts.append(scope.depth)
        return Failure(NotFound("Student"))

    @aio.transactional()
    async def outer(c: psycopg.AsyncConnection[Any], x: ExecutionContext) -> Result[Any, DataError]:
        made = await astudents.create(c, x, student_values(school))
        assert await inner(c, x) == Failure(NotFound("Student"))  # its savepoint rolled back
        return made

    async def main() -> Any:
        async with await aio.connect(db_url) as c:
            made = (await outer(c, ctx)).unwrap()
            return await astudents.find_by_id(c, ctx, made.id)

    assert isinstance(asyncio.run(main()), Success)
    assert attempts == [2]


def test_killed_async_connection_mid_transaction_leaves_nothing(ctx, school, db_url,
                                                                admin_conn) -> None:
    values = student_values(school)

    async def main() -> tuple[Result[Any, DataError], bool]:
        victim = await aio.connect(db_url)
        pid = victim.info.backend_pid

        async def body() -> Result[Any, DataError]:
            made = (await astudents.create(victim, ctx, values)).unwrap()
            admin_conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            return await astudents.update(victim, ctx, made.id, {"grade": "6"})

        try:
            result = await aio.run_in_scope(victim, ctx, body)
            return result, aio.current_scope(victim) is None
        finally:
            await victim.close()

    result, cleared = asyncio.run(main())
    assert isinstance(result, Failure) and isinstance(result.failure(), Unavailable)
    assert cleared
    assert admin_conn.execute("SELECT count(*) FROM students WHERE student_number = %s",
                              (values["student_number"],)).fetchone() == (0,)


def test_connections_are_collected_once_closed(db_url, ctx, make_student) -> None:
    s = make_student()
    c = psycopg.connect(db_url, autocommit=True, **connect_kwargs())
    assert log_read(c, ctx, STUDENTS, [s.id]) == Success(None)
    assert students.find_by_id(c, ctx, s.id).unwrap().id == s.id
    with unit_of_work(c, ctx):
        assert current_scope(c) is not None
    ref = weakref.ref(c)
    c.close()
    del c
    gc.collect()
    assert ref() is None

    async def main() -> weakref.ref[Any]:
        a = await aio.connect(db_url)
        assert await alog_read(a, ctx, STUDENTS, [s.id]) == Success(None)
        assert (await astudents.find_by_id(a, ctx, s.id)).unwrap().id == s.id
        async with aio.unit_of_work(a, ctx):
            pass
        aref = weakref.ref(a)
        await a.close()
        return aref

    aref = asyncio.run(main())
    gc.collect()
    assert aref() is None


def test_transaction_pooler_mode_names_no_statement_on_async_connections(ctx, school,
                                                                          db_url) -> None:
    previous = configure(attrs.evolve(settings(), pooler="transaction"))
    try:
        async def main() -> tuple[int | None, Any, Any, Any]:
            async with await aio.connect(db_url) as safe, await psycopg.AsyncConnection.connect(
                    db_url, autocommit=True) as unsafe:  # psycopg's default: names statements
                made = await astudents.create(safe, ctx, student_values(school))
                refused_read = await astudents.find_by_id(unsafe, ctx, made.unwrap().id)
                refused_unit: Any = None
                try:
                    async with aio.unit_of_work(unsafe, ctx):
                        pass  # pragma: no cover - refused at BEGIN
                except ScopeError as exc:
                    refused_unit = exc
                return safe.prepare_threshold, made, refused_read, refused_unit
        threshold, made, refused_read, refused_unit = asyncio.run(main())
    finally:
        configure(previous)
    assert threshold is None and isinstance(made, Success)
    assert isinstance(refused_read, Failure) and isinstance(refused_read.failure(), Unavailable)
    assert isinstance(refused_unit, ScopeError)


def test_async_disclosure_to_an_outside_party_is_recorded_even_when_its_unit_rolls_back(
        ctx, make_student, db_url, conn) -> None:
    student = make_student()
    release = build(recipient={"name": "Dr. Rivera"}, legal_basis="TREATMENT",
                    description="immunization history for a referral",
                    subjects=(student.id,)).unwrap()
    request = f"req-disc-{uuid.uuid4().hex[:8]}"
    who = attrs.evolve(ctx, request_id=request)

    async def main() -> Any:
        async with await aio.connect(db_url) as c, aio.unit_of_work(c, who):
            written = await record_disclosure_to(c, who, STUDENTS, release)
            raise RollbackScope
        return written

    assert asyncio.run(main()) == Success(None)
    rows = conn.execute("SELECT action, subject_ids FROM audit_log WHERE request_id = %s",
                        (request,)).fetchall()
    assert rows == [("EXPORT", [student.id])]  # replayed on lane 2 after the rollback


def test_async_pool_pings_only_idle_connections_and_replaces_a_dead_one(
    db_url, conn, monkeypatch,
) -> None:
    import wxdata.db as db

    async def checkouts() -> tuple[int, int, int]:
        pool = await aio.create_pool(db_url, min_size=1, max_size=1)
        try:
            async with pool.connection() as c:
                pid = c.info.backend_pid
            async with pool.connection() as c:  # returned a moment ago: reused, no ping needed
                assert db.needs_ping(c) is False
                assert c.info.backend_pid == pid
            monkeypatch.setattr(db, "IDLE_CHECK_AFTER", 0.0)
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            async with pool.connection() as c:  # idle past the bound: pinged, found dead, replaced
                row = await (await c.execute("SELECT 1")).fetchone()
                return pid, c.info.backend_pid, row[0] if row else 0
        finally:
            await pool.close()

    dead, fresh, one = asyncio.run(checkouts())
    assert fresh != dead and one == 1


def test_async_pool_resets_a_returned_connection_in_putconn_and_closes_it_with_the_pool(
    db_url, conn,
) -> None:
    """A connection handed back inside a transaction is rolled back and set to autocommit before
    ``putconn`` returns (not later, in a pool worker), so it is ready for the very next checkout;
    handed back just before ``close()``, it does not outlive the pool on the server."""
    import wxdata.db as db

    async def scenario() -> tuple[object, bool, bool, int, bool]:
        pool = await aio.create_pool(db_url, min_size=1, max_size=1)
        try:
            assert pool._reset is None  # no psycopg_pool reset task on the return path
            c = await pool.getconn()
            await c.set_autocommit(False)
            await c.execute("SELECT 1")  # a transaction left open
            await pool.putconn(c)
            status, autocommit, fresh = (c.info.transaction_status, c.autocommit,
                                         not db.needs_ping(c))
            last = await pool.getconn()
            pid = last.info.backend_pid
            await pool.putconn(last)
        finally:
            await pool.close()
        return status, autocommit, fresh, pid, last.closed

    status, autocommit, fresh, pid, closed = asyncio.run(scenario())
    assert (status, autocommit, fresh) == (psycopg.pq.TransactionStatus.IDLE, True, True)
    assert closed
    deadline = time.monotonic() + 10  # the backend exits once it reads the closed socket
    while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                       (pid,)).fetchone() != (0,) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                        (pid,)).fetchone() == (0,)
