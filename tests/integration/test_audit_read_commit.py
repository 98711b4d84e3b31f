"""``AUDIT_READ_COMMIT``: whether a read's disclosure record waits for the WAL flush.

Measured on the server, not inferred from the statements: every durable commit makes its backend
write the WAL out (``pg_stat_wal.wal_write`` counts it), while a commit with ``synchronous_commit =
off`` leaves that to the WAL writer, which writes many commits at once. The tests read the counter
before and after a run of calls (forcing the working backend to publish its statistics first) and
check that:

- by default every read outside a unit of work commits durably (one WAL write per read at least);
- in ``async`` mode the same reads do not wait (far fewer writes than reads), each still leaves its
  record, and the setting does not outlive the read (the session stays ``synchronous_commit = on``);
- writes, units of work and transactions the caller keeps open are never relaxed;
- a cache hit's disclosure record is relaxed like the read it replaces;
- the async shell behaves the same.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import psycopg
import pytest

from tests.cache_support import memory
from tests.wal_stats import wal_writes, wal_writes_sql
from wxdata import ExecutionContext
from wxdata.aio.domains import students as astudents
from wxdata.cache import by_id, cached
from wxdata.config import Settings, configure, settings
from wxdata.db import connect_kwargs
from wxdata.domains import students
from wxdata.schema import STUDENTS
from wxdata.tx import unit_of_work

Conn = psycopg.Connection[Any]

#: Calls per measured run. A durable run writes the WAL at least this many times; a relaxed run
#: must stay under half of it (the WAL writer and other backends add a handful at most).
N = 40


@pytest.fixture
def read_commit() -> Iterator[Callable[[str], Settings]]:
    """Set ``audit_read_commit`` (audit on) for the test; the previous settings come back after."""
    previous = settings()

    def set_mode(mode: str) -> Settings:
        return configure(attrs.evolve(previous, audit_enabled=True, audit_phi_access=True,
                                      audit_read_commit=mode))

    yield set_mode
    configure(previous)


def _writes_during(work: Conn, admin: Conn, call: Callable[[], object]) -> int:
    """The WAL writes the server made while ``call`` ran :data:`N` times on ``work``."""
    before = wal_writes(work, admin)
    for _ in range(N):
        call()
    return wal_writes(work, admin) - before


def _records(admin: Conn, ctx: ExecutionContext, action: str = "READ") -> int:
    row = admin.execute("SELECT count(*) FROM audit_log WHERE request_id = %s AND action = %s",
                        (ctx.request_id, action)).fetchone()
    assert row is not None
    return int(row[0])


def _reader(ctx: ExecutionContext) -> ExecutionContext:
    return attrs.evolve(ctx, request_id=f"req-{uuid.uuid4().hex[:12]}")


def test_reads_commit_durably_by_default(
    conn: Conn, admin_conn: Conn, ctx: ExecutionContext, make_student: Callable[..., Any],
    read_commit: Callable[[str], Settings],
) -> None:
    read_commit("durable")
    sid, ctx = make_student().id, _reader(ctx)
    assert _writes_during(conn, admin_conn,
                          lambda: students.find_by_id(conn, ctx, sid).unwrap()) >= N
    assert _records(admin_conn, ctx) == N


def test_async_mode_returns_each_read_with_its_record_without_waiting_for_the_flush(
    conn: Conn, admin_conn: Conn, ctx: ExecutionContext, make_student: Callable[..., Any],
    read_commit: Callable[[str], Settings],
) -> None:
    read_commit("async")
    sid, ctx = make_student().id, _reader(ctx)
    assert _writes_during(conn, admin_conn,
                          lambda: students.find_by_id(conn, ctx, sid).unwrap()) < N // 2
    assert _records(admin_conn, ctx) == N
    assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)  # local to each read
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_async_mode_relaxes_pages_as_well(
    conn: Conn, admin_conn: Conn, ctx: ExecutionContext, make_student: Callable[..., Any],
    school: dict[str, uuid.UUID], read_commit: Callable[[str], Settings],
) -> None:
    read_commit("async")
    make_student()
    ctx = _reader(ctx)
    assert _writes_during(conn, admin_conn, lambda: students.find_many(
        conn, ctx, {"school_id": school["school_id"]}).unwrap().data[0]) < N // 2
    assert _records(admin_conn, ctx) == N


def test_async_mode_leaves_writes_durable(
    conn: Conn, admin_conn: Conn, ctx: ExecutionContext, make_student: Callable[..., Any],
    read_commit: Callable[[str], Settings],
) -> None:
    read_commit("async")
    sid, ctx = make_student().id, _reader(ctx)
    grades = iter(str(1 + i % 9) for i in range(N))
    assert _writes_during(conn, admin_conn,
                          lambda: students.update(conn, ctx, sid, {"grade": next(grades)}).unwrap()
                          ) >= N
    assert _records(admin_conn, ctx, "UPDATE") == N


def test_async_mode_never_relaxes_a_unit_of_work(
    conn: Conn, admin_conn: Conn, ctx: ExecutionContext, make_student: Callable[..., Any],
    read_commit: Callable[[str], Settings],
) -> None:
    """A read inside a unit of work commits with the unit, whose writes must stay durable: the
    setting is never sent inside it (it would hold for the whole transaction)."""
    read_commit("async")
    sid, ctx = make_student().id, _reader(ctx)
    with unit_of_work(conn, ctx):
        students.find_by_id(conn, ctx, sid).unwrap()
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        students.update(conn, ctx, sid, {"grade": "7"}).unwrap()
    assert _records(admin_conn, ctx) == 1


def test_async_mode_never_relaxes_a_transaction_the_caller_keeps_open(
    db_url: str, admin_conn: Conn, ctx: ExecutionContext, make_student: Callable[..., Any],
    read_commit: Callable[[str], Settings],
) -> None:
    """On a connection that is not in autocommit, a read outside a unit of work runs in the
    transaction psycopg opened for the caller, who may write in it next: nothing is relaxed, and
    the read's record, committed on lane 2, outlives the caller's rollback."""
    read_commit("async")
    sid, ctx = make_student().id, _reader(ctx)
    with psycopg.connect(db_url, autocommit=False, **connect_kwargs()) as manual:
        outcome = students.find_by_id(manual, ctx, sid)
        assert manual.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert manual.execute("SHOW synchronous_commit").fetchone() == ("on",)
        manual.rollback()
    assert outcome.map(lambda row: row.id).value_or(None) == sid
    kept = admin_conn.execute("SELECT count(*) FROM audit_log WHERE request_id = %s AND "
                              "action = 'READ' AND %s = ANY (entity_ids)",
                              (ctx.request_id, sid)).fetchone()
    assert kept == (1,)


def test_async_mode_relaxes_a_cache_hits_record(
    conn: Conn, admin_conn: Conn, ctx: ExecutionContext, make_student: Callable[..., Any],
    read_commit: Callable[[str], Settings],
) -> None:
    read_commit("async")
    cache = memory()
    sid, ctx = make_student().id, _reader(ctx)

    @cached(STUDENTS, key=lambda c, x, i: by_id(i), cache=cache, name="read-commit.student")
    def read(c: Conn, x: ExecutionContext, i: uuid.UUID) -> Any:
        return students.find_by_id(c, x, i)

    read(conn, ctx, sid).unwrap()  # the miss: a riding read
    assert _writes_during(conn, admin_conn, lambda: read(conn, ctx, sid).unwrap()) < N // 2
    assert _records(admin_conn, ctx) == N + 1


def test_the_async_shell_relaxes_the_same_reads(
    db_url: str, conn: Conn, admin_conn: Conn, ctx: ExecutionContext,
    make_student: Callable[..., Any], read_commit: Callable[[str], Settings],
) -> None:
    read_commit("async")
    sid, ctx = make_student().id, _reader(ctx)

    async def run() -> tuple[int, int, Any]:
        async with await psycopg.AsyncConnection.connect(
                db_url, autocommit=True, **connect_kwargs()) as aconn:
            async def wal() -> int:
                await aconn.execute("SELECT pg_stat_force_next_flush()")
                await aconn.execute("SELECT 1")
                row = admin_conn.execute(
                    wal_writes_sql(admin_conn.info.server_version)).fetchone()
                assert row is not None
                return int(row[0])

            before = await wal()
            for _ in range(N):
                (await astudents.find_by_id(aconn, ctx, sid)).unwrap()
            after = await wal()
            setting = await (await aconn.execute("SHOW synchronous_commit")).fetchone()
            return before, after, setting

    before, after, setting = asyncio.run(run())
    assert after - before < N // 2
    assert setting == ("on",)
    assert _records(admin_conn, ctx) == N
