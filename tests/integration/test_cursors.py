"""Keyset cursors: encrypted (no sort value readable), shared by every process holding the key,
bound to the entity, filter, sort and user they were made for, and rotated without a cutover.

Every test runs through both shells: a cursor the async shell made continues in a sync child
process and the other way round (one format, one key).

Server-side cursors (``stream``): the EXPORT record names every row handed to the consumer, and a
consumer that raises or is cancelled part-way leaves a failed EXPORT of the rows it was handed,
committed on audit lane 2 whatever becomes of the transaction.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import make_conninfo
from returns.result import Failure, Success

from tests.shells import parametrise
from wxdata import aio, crud
from wxdata.aio.domains import students as async_students
from wxdata.audit.lanes import close_lanes, lane_health, route_lane
from wxdata.config import configure
from wxdata.config import settings as current_settings
from wxdata.context import ExecutionContext
from wxdata.db import connect_kwargs
from wxdata.domains import health_records, students
from wxdata.errors import InvalidQuery
from wxdata.query import paging
from wxdata.schema.spec import lookup
from wxdata.tx import RollbackScope, unit_of_work

KEY_A, KEY_B, KEY_C = (bytes([n]) * 32 for n in (1, 2, 3))
BAD = Failure(InvalidQuery("after", "is not a valid cursor for this query"))
ORDER = ["last_name", "date_of_birth"]
ROOT = Path(__file__).resolve().parents[2]

parametrise(globals())

#: Run in a separate interpreter: one keyset page, printed as JSON (ids and the next cursor).
CHILD = """
import json, sys, uuid
import psycopg
from wxdata.context import ExecutionContext, Role
from wxdata.domains import students
url, school, after = sys.argv[1], sys.argv[2], sys.argv[3] or None
ctx = ExecutionContext(user_id="u-cursor", role=Role.NURSE, school_ids={uuid.UUID(school)})
with psycopg.connect(url, autocommit=True) as conn:
    result = students.find_after(conn, ctx, {"school_id": uuid.UUID(school)},
                                 order_by=["last_name", "date_of_birth"], after=after, limit=2)
page = result.map(lambda p: {"ids": [str(r.id) for r in p.data], "next": p.next_cursor})
print(json.dumps(page.value_or({"error": repr(result)})))
"""


@pytest.fixture
def keyed() -> Iterator[Callable[..., None]]:
    """Switch the process settings to given cursor keys; restored afterwards."""
    original = current_settings()

    def use(key: bytes | None, previous: bytes | None = None, master: bytes | None = None) -> None:
        configure(attrs.evolve(original, cursor_key=key, cursor_key_previous=previous,
                               master_key=master))

    use(KEY_A)
    yield use
    configure(original)


@pytest.fixture
def seeded(make_student: Callable[..., Any], school: dict[str, uuid.UUID]) -> list[Any]:
    """Five students with distinctive names and birth dates in one school."""
    tag = uuid.uuid4().hex[:6]
    return [make_student(last_name=f"Zyx{tag}{n}", first_name=f"Qwv{tag}",
                         date_of_birth=date(2013, 1 + n, 11 + n)) for n in range(5)]


@pytest.fixture
def reader(ctx: ExecutionContext, school: dict[str, uuid.UUID]) -> ExecutionContext:
    """A nurse of that school."""
    return attrs.evolve(ctx, user_id="u-cursor", school_ids={school["school_id"]})


def _where(school: dict[str, uuid.UUID]) -> dict[str, Any]:
    return {"school_id": school["school_id"]}


def _first_cursor(conn: psycopg.Connection[Any], reader: ExecutionContext,
                  school: dict[str, uuid.UUID], limit: int = 2) -> str:
    page = students.find_after(conn, reader, _where(school), order_by=ORDER, limit=limit).unwrap()
    assert page.next_cursor is not None
    return page.next_cursor


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _child(db_url: str, school: dict[str, uuid.UUID], after: str | None,
           env: dict[str, str]) -> dict[str, Any]:
    full = {k: v for k, v in os.environ.items()  # the cursor keys are the test's to choose
            if not k.startswith("WXDATA_CURSOR") and k != "WXDATA_MASTER_KEY"}
    full.update(env, PYTHONPATH=str(ROOT), WXDATA_ENV="test")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, db_url, str(school["school_id"]), after or ""],
        env=full, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_cursor_made_by_one_process_continues_in_another(
    conn: psycopg.Connection[Any], db_url: str, keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    everything = students.find_after(conn, reader, _where(school), order_by=ORDER, limit=10)
    expected = [str(r.id) for r in everything.unwrap().data]
    env = {"WXDATA_CURSOR_KEY": base64.b64encode(KEY_A).decode()}
    first = _child(db_url, school, None, env)
    assert first["ids"] == expected[:2] and first["next"]
    second = _child(db_url, school, first["next"], env)  # another interpreter, same key
    assert second["ids"] == expected[2:4]
    here = students.find_after(conn, reader, _where(school), order_by=ORDER,
                               after=second["next"], limit=2).unwrap()
    assert [str(r.id) for r in here.data] == expected[4:5]


def test_cursor_from_a_process_without_a_key_is_refused_elsewhere(
    conn: psycopg.Connection[Any], db_url: str, keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID], caplog: pytest.LogCaptureFixture,
) -> None:
    keyed(None)
    paging._process_key.cache_clear()  # a fresh process: no key made yet, none cached
    paging._keys_of.cache_clear()
    with caplog.at_level(logging.WARNING, logger="wxdata.query"):
        token = _first_cursor(conn, reader, school)
    assert any("no cursor key configured" in r.getMessage() for r in caplog.records)
    same_process = students.find_after(conn, reader, _where(school), order_by=ORDER, after=token,
                                       limit=2)
    assert isinstance(same_process, Success) and len(same_process.unwrap().data) == 2
    other = _child(db_url, school, token, {})  # another worker, its own per-process key
    assert "InvalidQuery(field='after'" in other.get("error", ""), other


def test_cursor_holds_no_sort_value(
    conn: psycopg.Connection[Any], keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    page = students.find_after(conn, reader, _where(school), order_by=ORDER, limit=1).unwrap()
    row = page.data[0]
    assert page.next_cursor is not None
    raw = _raw(page.next_cursor)
    for secret in (row.last_name, row.last_name[3:], row.date_of_birth.isoformat(),
                   str(row.id), row.id.hex, "last_name", "date_of_birth"):
        assert secret.encode() not in raw and secret.encode() not in page.next_cursor.encode()
    longer = students.find_after(conn, reader, _where(school), order_by=ORDER, limit=2).unwrap()
    assert longer.next_cursor is not None and len(longer.next_cursor) == len(page.next_cursor)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_tampered_cursor_is_refused(
    conn: psycopg.Connection[Any], keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID], data: st.DataObject,
) -> None:
    raw = bytearray(_raw(_first_cursor(conn, reader, school)))
    index = data.draw(st.integers(0, len(raw) - 1), label="byte")
    raw[index] ^= data.draw(st.integers(1, 255), label="mask")
    result = students.find_after(conn, reader, _where(school), order_by=ORDER,
                                 after=_token(bytes(raw)), limit=2)
    assert result == BAD


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_truncated_or_extended_cursor_is_refused(
    conn: psycopg.Connection[Any], keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID], data: st.DataObject,
) -> None:
    token = _first_cursor(conn, reader, school)
    raw = _raw(token)
    cut = data.draw(st.integers(0, len(raw) - 1), label="keep")
    extra = data.draw(st.binary(max_size=8), label="extra")
    for bad in (_token(raw[:cut]), token[:cut], _token(raw + extra) if extra else "",
                token + "=" * 3, token.replace("-", "+")):
        if bad != token:
            result = students.find_after(conn, reader, _where(school), order_by=ORDER,
                                         after=bad, limit=2)
            assert result == BAD, bad


def test_cursor_replayed_by_another_user_is_refused(
    conn: psycopg.Connection[Any], keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    token = _first_cursor(conn, reader, school)
    other = attrs.evolve(reader, user_id="u-someone-else")
    assert students.find_after(conn, other, _where(school), order_by=ORDER, after=token,
                               limit=2) == BAD
    assert isinstance(students.find_after(conn, reader, _where(school), order_by=ORDER,
                                          after=token, limit=2), Success)


def test_cursor_replayed_with_another_filter_or_sort_is_refused(
    conn: psycopg.Connection[Any], keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    token = _first_cursor(conn, reader, school)
    sid = school["school_id"]
    for where, order in (
        ({"school_id": sid, "grade": "5"}, ORDER),  # another filter shape
        ({"school_id": uuid.uuid4()}, ORDER),  # same shape, another value
        ({"school_id": {"in": [sid]}}, ORDER),  # same rows, another filter
        (_where(school), ["last_name", "-date_of_birth"]),  # another direction
        (_where(school), ["date_of_birth", "last_name"]),  # another order
    ):
        assert students.find_after(conn, reader, where, order_by=order, after=token,
                                   limit=2) == BAD, (where, order)


def test_cursor_for_another_entity_is_refused(
    conn: psycopg.Connection[Any], keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    token = _first_cursor(conn, reader, school)
    vitals = lookup("vital_signs")
    assert vitals is not None
    result = crud.find_after(conn, reader, vitals, None, order_by=["measurement_date"],
                             after=token, limit=2)
    assert result == BAD


def test_rotation_accepts_the_previous_key(
    conn: psycopg.Connection[Any], keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    keyed(KEY_A)
    old = _first_cursor(conn, reader, school)
    keyed(KEY_B, previous=KEY_A)  # rotation: new cursors under B, A's still read
    rotated = students.find_after(conn, reader, _where(school), order_by=ORDER, after=old,
                                  limit=2)
    assert isinstance(rotated, Success) and len(rotated.unwrap().data) == 2
    new = _first_cursor(conn, reader, school)
    keyed(KEY_B)  # rotation finished: A retired
    assert students.find_after(conn, reader, _where(school), order_by=ORDER, after=old,
                               limit=2) == BAD
    assert isinstance(students.find_after(conn, reader, _where(school), order_by=ORDER,
                                          after=new, limit=2), Success)
    keyed(KEY_C, previous=KEY_A)  # a key that never made it is no use
    assert students.find_after(conn, reader, _where(school), order_by=ORDER, after=new,
                               limit=2) == BAD


def test_master_key_derives_the_cursor_key(
    conn: psycopg.Connection[Any], keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    keyed(None, master=KEY_C)
    token = _first_cursor(conn, reader, school)
    keyed(None, master=KEY_C)
    assert isinstance(students.find_after(conn, reader, _where(school), order_by=ORDER,
                                          after=token, limit=2), Success)
    keyed(None, master=KEY_B)
    assert students.find_after(conn, reader, _where(school), order_by=ORDER, after=token,
                               limit=2) == BAD



# --- server-side cursors: the record of what a stream handed out ------------------------------


def _asked(reader: ExecutionContext) -> ExecutionContext:
    """``reader`` under a request id of its own (its records are found by it)."""
    return attrs.evolve(reader, request_id=f"req-stream-{uuid.uuid4().hex[:10]}")


def _exports(admin: psycopg.Connection[Any], ctx: ExecutionContext) -> list[tuple[Any, ...]]:
    """(success, error_message, entity_id, entity_ids, subject_student_id, subject_ids, rows) of
    every EXPORT record of ``ctx``'s request, oldest first."""
    return admin.execute(
        "SELECT success, error_message, entity_id, entity_ids, subject_student_id, subject_ids,"
        " (metadata->>'rows')::int FROM audit_log WHERE action = 'EXPORT' AND request_id = %s"
        " ORDER BY seq", (ctx.request_id,)).fetchall()


def _failed(ids: list[uuid.UUID], error: str = "OUTPUT_FAILED") -> list[tuple[Any, ...]]:
    """The one failed EXPORT record of a stream of students interrupted after rows ``ids``."""
    one = ids[0] if len(ids) == 1 else None
    return [(False, error, one, ids, one, ids, len(ids))]


def _raising_after(count: int, seen: list[uuid.UUID],
                   exc: BaseException) -> Callable[[Iterator[Any]], int]:
    """A consumer that takes ``count`` rows (their ids into ``seen``), then raises ``exc``."""

    def consume(rows: Iterator[Any]) -> int:
        for row in rows:
            seen.append(row.id)
            if len(seen) == count:
                raise exc
        return len(seen)

    return consume


def test_a_stream_record_names_every_row_it_handed_out(
    conn: psycopg.Connection[Any], admin_conn: psycopg.Connection[Any], seeded: list[Any],
    reader: ExecutionContext, sys_ctx: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    ctx = _asked(reader)
    got = students.stream(conn, ctx, lambda rows: [r.id for r in rows], _where(school),
                          order_by=ORDER, batch_size=2).unwrap()
    assert sorted(got) == sorted(s.id for s in seeded)
    assert _exports(admin_conn, ctx) == [(True, None, None, got, None, got, 5)]
    lone = _asked(reader)
    assert students.stream(conn, lone, list, {"id": seeded[0].id}).unwrap()[0].id == seeded[0].id
    only = [seeded[0].id]
    assert _exports(admin_conn, lone) == [(True, None, only[0], only, only[0], only, 1)]
    made = [health_records.create(conn, sys_ctx, {
        "student_id": seeded[1].id, "record_type": "CHECKUP", "title": f"t{n}",
        "description": "d", "record_date": date(2024, 9, 1)}).unwrap().id for n in range(3)]
    history = _asked(reader)
    listed = health_records.stream(conn, history, lambda rows: [r.id for r in rows],
                                   {"student_id": seeded[1].id}).unwrap()
    assert sorted(listed) == sorted(made)
    assert _exports(admin_conn, history) == [
        (True, None, None, listed, seeded[1].id, [seeded[1].id], 3)]


def test_a_stream_whose_consumer_raises_after_every_row_records_them_as_failed(
    conn: psycopg.Connection[Any], admin_conn: psycopg.Connection[Any], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    ctx = _asked(reader)
    seen: list[uuid.UUID] = []

    def consume(rows: Iterator[Any]) -> int:
        seen.extend(row.id for row in rows)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        students.stream(conn, ctx, consume, _where(school), order_by=ORDER, batch_size=2)
    assert len(seen) == 5
    assert _exports(admin_conn, ctx) == _failed(seen)


@pytest.mark.sync_only
def test_a_sync_consumer_that_raises_mid_stream_leaves_a_failed_record_of_what_it_saw(
    conn: psycopg.Connection[Any], admin_conn: psycopg.Connection[Any], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    def in_unit(c: psycopg.Connection[Any], ctx: ExecutionContext,
                consume: Callable[[Iterator[Any]], int], where: Any, batch_size: int) -> Any:
        with unit_of_work(c, ctx):  # a read-write unit of work the exception rolls back
            return students.stream(c, ctx, consume, where, batch_size=batch_size)

    for streamed in (students.stream, in_unit):
        ctx = _asked(reader)
        seen: list[uuid.UUID] = []
        consume = _raising_after(3, seen, ConnectionResetError("client went away"))
        with pytest.raises(ConnectionResetError):
            streamed(conn, ctx, consume, _where(school), batch_size=2)
        assert len(seen) == 3
        assert _exports(admin_conn, ctx) == _failed(seen)
    ctx = _asked(reader)
    seen = []
    failed = students.stream(conn, ctx, _raising_after(1, seen, psycopg.errors.QueryCanceled()),
                             _where(school))
    assert isinstance(failed, Failure)
    assert _exports(admin_conn, ctx) == _failed(seen, failed.failure().code)


@pytest.mark.sync_only
def test_an_async_consumer_cancelled_or_raising_mid_stream_leaves_a_failed_record(
    db_url: str, admin_conn: psycopg.Connection[Any], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    cancelled, raised = _asked(reader), _asked(reader)
    taken: list[uuid.UUID] = []
    seen: list[uuid.UUID] = []

    async def stall(rows: Any) -> int:
        async for row in rows:
            taken.append(row.id)
            if len(taken) == 3:
                await asyncio.sleep(60)
        return len(taken)

    async def fail(rows: Any) -> int:
        async for row in rows:
            seen.append(row.id)
            if len(seen) == 3:
                raise ConnectionResetError("client went away")
        return len(seen)

    async def main() -> None:
        aconn = await aio.connect(db_url)
        try:
            task = asyncio.ensure_future(async_students.stream(
                aconn, cancelled, stall, _where(school), batch_size=2))
            while len(taken) < 3:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(ConnectionResetError):
                async with aio.unit_of_work(aconn, raised):  # rolled back by the exception
                    await async_students.stream(aconn, raised, fail, _where(school),
                                                batch_size=2)
        finally:
            await aconn.close()

    asyncio.run(main())
    assert _exports(admin_conn, cancelled) == _failed(taken)
    assert _exports(admin_conn, raised) == _failed(seen)


@pytest.mark.sync_only
def test_a_stream_in_a_unit_of_work_that_rolls_back_keeps_its_record(
    conn: psycopg.Connection[Any], db_url: str, admin_conn: psycopg.Connection[Any],
    seeded: list[Any], reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    ctx, actx = _asked(reader), _asked(reader)
    with unit_of_work(conn, ctx):
        got = students.stream(conn, ctx, lambda rows: [r.id for r in rows], _where(school),
                              order_by=ORDER).unwrap()
        raise RollbackScope
    assert _exports(admin_conn, ctx) == [(True, None, None, got, None, got, 5)]

    async def main() -> list[uuid.UUID]:
        aconn = await aio.connect(db_url)
        try:
            async def collect(rows: Any) -> list[uuid.UUID]:
                return [row.id async for row in rows]

            async with aio.unit_of_work(aconn, actx):
                taken: list[uuid.UUID] = (await async_students.stream(
                    aconn, actx, collect, _where(school), order_by=ORDER)).unwrap()
                raise RollbackScope
        finally:
            await aconn.close()
        return taken

    taken = asyncio.run(main())
    assert _exports(admin_conn, actx) == [(True, None, None, taken, None, taken, 5)]


def _dead_lane(url: str) -> str:
    """``url`` pointed at a loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return make_conninfo(url, host="127.0.0.1", port=str(port))


@pytest.fixture
def short_lane_wait() -> Iterator[None]:
    """Lane-2 checkouts give up after 0.3 s; settings and lanes restored afterwards."""
    original = current_settings()
    close_lanes()
    configure(attrs.evolve(original, audit_lane_timeout=0.3))
    yield
    configure(original)
    close_lanes()


@pytest.mark.sync_only
def test_an_interrupted_stream_whose_record_lane_2_refuses_keeps_its_own_exception(
    db_url: str, admin_conn: psycopg.Connection[Any], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID], short_lane_wait: None,
) -> None:
    ctx, actx = _asked(reader), _asked(reader)
    before = lane_health()
    with psycopg.connect(db_url, autocommit=True, **connect_kwargs()) as c:
        route_lane(c, _dead_lane(db_url))
        with pytest.raises(ConnectionResetError, match="client went away"):
            students.stream(c, ctx, _raising_after(2, [], ConnectionResetError("client went away")),
                            _where(school))

    async def main() -> None:
        aconn = await aio.connect(db_url)
        try:
            route_lane(aconn, _dead_lane(db_url))  # type: ignore[arg-type]

            async def fail(rows: Any) -> int:
                async for _ in rows:
                    raise ConnectionResetError("client went away")
                return 0

            await async_students.stream(aconn, actx, fail, _where(school))
        finally:
            await aconn.close()

    with pytest.raises(ConnectionResetError, match="client went away"):
        asyncio.run(main())
    after = lane_health()
    assert after.failure_records_lost - before.failure_records_lost == 2
    assert after.disclosures_refused == before.disclosures_refused
    assert _exports(admin_conn, ctx) == [] and _exports(admin_conn, actx) == []
