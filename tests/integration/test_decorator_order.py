"""`audited`, `cached` and `transactional` compose in any order, with plain wrappers between them:
every stacking order of the three (sync and async) gives the same Results, the same underlying
calls (the second call is a cache hit) and the same audit trail (one READ record per call, naming
the student, by the caller)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import psycopg
import pytest

import wxdata.aio as aio
from wxdata import ExecutionContext
from wxdata.aio.domains import health_records as ahealth_records
from wxdata.audit import audited
from wxdata.cache import cached
from wxdata.cache.aio import cached as acached
from wxdata.domains import health_records
from wxdata.schema import HEALTH_RECORDS
from wxdata.tx import transactional

LAYERS = ("audited", "cached", "transactional")
ORDERS = list(itertools.permutations(LAYERS))


def _tags(conn: Any, ctx: ExecutionContext, sid: uuid.UUID) -> list[str]:
    return [f"student:{sid}"]


SYNC: dict[str, Callable[[], Callable[[Any], Any]]] = {
    "audited": lambda: audited(HEALTH_RECORDS),
    "cached": lambda: cached(HEALTH_RECORDS, tags=_tags, unkeyed=("calls",)),
    "transactional": lambda: transactional(read_only=True),
}
ASYNC: dict[str, Callable[[], Callable[[Any], Any]]] = {
    "audited": lambda: aio.audited(HEALTH_RECORDS),
    "cached": lambda: acached(HEALTH_RECORDS, tags=_tags, unkeyed=("calls",)),
    "transactional": lambda: aio.transactional(read_only=True),
}


def _plain(g: Callable[..., Any]) -> Callable[..., Any]:
    """A wrapper that knows nothing of wxdata (no functools.wraps): composition must not need it."""
    def plain(conn: Any, ctx: ExecutionContext, sid: uuid.UUID) -> Any:
        return g(conn, ctx, sid)
    return plain


def _aplain(g: Callable[..., Any]) -> Callable[..., Any]:
    async def plain(conn: Any, ctx: ExecutionContext, sid: uuid.UUID) -> Any:
        return await g(conn, ctx, sid)
    return plain


@pytest.fixture
def charted(conn: psycopg.Connection[Any], ctx: ExecutionContext,
            make_student: Callable[..., Any]) -> uuid.UUID:
    sid = make_student().id
    health_records.create(conn, ctx, {"student_id": sid, "record_type": "ILLNESS", "title": "Flu",
                                      "description": "fever",
                                      "record_date": date(2025, 1, 14)}).unwrap()
    return uuid.UUID(str(sid))


def _trail(conn: psycopg.Connection[Any], after: int) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT action, entity_type, user_id, subject_ids FROM audit_log WHERE seq > %s "
        "ORDER BY seq", (after,)).fetchall()


def _mark(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()
    return int(row[0]) if row else 0


def _check(order: tuple[str, ...], totals: list[Any], calls: list[int],
           trail: list[tuple[Any, ...]], ctx: ExecutionContext, sid: uuid.UUID) -> None:
    assert totals == [1, 1], order
    assert len(calls) == 1, f"{order}: the second call must be a cache hit"
    assert [(a, e) for a, e, _, _ in trail] == [("READ", "HealthRecord")] * 2, order
    assert all(user == ctx.user_id and sid in subjects for _, _, user, subjects in trail), order


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_every_sync_stacking_order_reads_caches_and_records_the_same(
    order: tuple[str, ...], conn: psycopg.Connection[Any], ctx: ExecutionContext,
    charted: uuid.UUID,
) -> None:
    calls: list[int] = []

    def chart(conn: Any, ctx: ExecutionContext, sid: uuid.UUID) -> Any:
        calls.append(1)
        return health_records.find_many(conn, ctx, {"student_id": sid})

    fn: Callable[..., Any] = chart
    for layer in reversed(order):
        fn = _plain(SYNC[layer]()(fn))
    after = _mark(conn)
    totals = [fn(conn, ctx, charted).unwrap().total for _ in range(2)]
    _check(order, totals, calls, _trail(conn, after), ctx, charted)


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_every_async_stacking_order_reads_caches_and_records_the_same(
    order: tuple[str, ...], conn: psycopg.Connection[Any], db_url: str, ctx: ExecutionContext,
    charted: uuid.UUID,
) -> None:
    calls: list[int] = []

    async def chart(aconn: Any, ctx: ExecutionContext, sid: uuid.UUID) -> Any:
        calls.append(1)
        return await ahealth_records.find_many(aconn, ctx, {"student_id": sid})

    fn: Callable[..., Any] = chart
    for layer in reversed(order):
        fn = _aplain(ASYNC[layer]()(fn))

    async def twice() -> list[Any]:
        async with await aio.connect(db_url) as aconn:
            return [(await fn(aconn, ctx, charted)).unwrap().total for _ in range(2)]

    after = _mark(conn)
    totals = asyncio.run(twice())
    _check(order, totals, calls, _trail(conn, after), ctx, charted)
