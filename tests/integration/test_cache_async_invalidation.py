"""The writes of async units of work invalidate Redis through ``redis.asyncio`` (real servers).

The event loop keeps running while Redis answers the invalidation; the invalidation is done
before the committing call returns; the sync and the async shell stay coherent; a Redis failure
during the invalidation is owed (the namespace is flushed before the process uses Redis again),
as with the sync client.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from returns.result import Result

from tests.cache_support import prefix, redis_backend, tiered
from tests.conftest import RedisServer
from wxdata import ExecutionContext, aio
from wxdata.aio.domains import students as astudents
from wxdata.cache import aio as acache
from wxdata.cache import by_id, cached
from wxdata.cache.backends.aio import AsyncRedisCache, AsyncTieredCache
from wxdata.cache.backends.clients import make_async_client
from wxdata.cache.backends.redis import RedisCache
from wxdata.cache.invalidation import subscribe, unsubscribe
from wxdata.core.drive import arun
from wxdata.domains import students
from wxdata.errors import DataError
from wxdata.schema import STUDENTS
from wxdata.tx import RollbackScope, unit_of_work
from wxdata.tx.events import WriteEvent, announce_plan

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[Any]


class Setup:
    """A Redis backend on a private server, its registered async face, and a cached by-id read
    of students in each shell (with the count of calls that reached PostgreSQL)."""

    def __init__(self, server: RedisServer, db_url: str) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.cache: RedisCache = redis_backend(server.url, prefix(), timeout=2.0)
        subscribe(self.cache)
        self.client = make_async_client(server.url, connect_timeout=2.0, socket_timeout=2.0)
        self.face = AsyncRedisCache(self.cache, self.client)
        self.registered = contextlib.ExitStack()
        self.registered.enter_context(acache.using_async_cache(self.face))
        self.aconn: psycopg.AsyncConnection[Any] = self.run(aio.connect(db_url))
        self.calls = {"sync": 0, "async": 0}
        calls = self.calls

        @cached(STUDENTS, key=lambda conn, ctx, i: by_id(i), cache=self.cache, unkeyed=("calls",))
        def get(conn: Conn, ctx: ExecutionContext, i: Any) -> Result[Any, DataError]:
            calls["sync"] += 1
            return students.find_by_id(conn, ctx, i)

        @acache.cached(STUDENTS, key=lambda conn, ctx, i: by_id(i), cache=self.face,
                       unkeyed=("calls",))
        async def aget(conn: Any, ctx: ExecutionContext, i: Any) -> Result[Any, DataError]:
            calls["async"] += 1
            return await astudents.find_by_id(conn, ctx, i)  # type: ignore[no-any-return]

        self.get, self.aget = get, aget

    def run(self, coro: Any) -> Any:
        """Run a coroutine on this setup's loop."""
        return self.loop.run_until_complete(coro)

    def aread(self, ctx: ExecutionContext, i: Any) -> Any:
        """The async cached read, answered synchronously."""
        return self.run(self.aget(self.aconn, ctx, i)).unwrap()

    def aupdate(self, ctx: ExecutionContext, i: Any, values: dict[str, Any], *,
                rollback: bool = False) -> None:
        """Update a student in an async unit of work (rolled back if asked)."""
        async def body() -> None:
            with contextlib.suppress(RollbackScope):
                async with aio.unit_of_work(self.aconn, ctx):
                    (await astudents.update(self.aconn, ctx, i, values)).unwrap()
                    if rollback:
                        raise RollbackScope

        self.run(body())

    def close(self) -> None:
        """Undo the registration; close clients, connection and loop."""
        self.registered.close()
        unsubscribe(self.cache)
        with contextlib.suppress(Exception):
            self.run(self.client.aclose())
        self.run(self.aconn.close())
        self.loop.close()
        self.cache.close()


@pytest.fixture
def setup(own_redis: RedisServer, db_url: str) -> Iterator[Setup]:
    made = Setup(own_redis, db_url)
    yield made
    made.close()


@pytest.mark.parametrize("in_unit_of_work", [True, False], ids=["unit_of_work", "autocommit"])
def test_the_event_loop_runs_while_redis_answers_the_invalidation(
        setup: Setup, sys_ctx: ExecutionContext, make_student: Any,
        in_unit_of_work: bool) -> None:
    s = make_student(grade="5")
    assert setup.aread(sys_ctx, s.id).grade == "5"
    ticks: list[float] = []
    pause_ms = 500

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.002)

    async def scenario() -> tuple[float, float]:
        stop = asyncio.Event()
        task = asyncio.create_task(ticker(stop))
        await asyncio.sleep(0.01)
        if in_unit_of_work:
            async with aio.unit_of_work(setup.aconn, sys_ctx):
                (await astudents.update(setup.aconn, sys_ctx, s.id, {"grade": "6"})).unwrap()
                # Redis answers nothing for a while: the invalidation after COMMIT must wait
                redis.Redis.from_url(setup.server.url).execute_command("CLIENT", "PAUSE", pause_ms)
                start = time.monotonic()
        else:  # one autocommit statement: announced from inside the plan, awaited by the driver
            redis.Redis.from_url(setup.server.url).execute_command("CLIENT", "PAUSE", pause_ms)
            start = time.monotonic()
            (await astudents.update(setup.aconn, sys_ctx, s.id, {"grade": "6"})).unwrap()
        end = time.monotonic()
        stop.set()
        await task
        return start, end

    start, end = setup.run(scenario())
    assert end - start >= 0.8 * pause_ms / 1000  # the invalidation was waited for before return
    inside = [start, *[t for t in ticks if start <= t <= end], end]
    longest = max(b - a for a, b in itertools.pairwise(inside))
    assert longest < 0.5 * pause_ms / 1000  # the loop kept running while Redis was paused
    assert setup.aread(sys_ctx, s.id).grade == "6" and setup.calls["async"] == 2


def test_both_shells_stay_coherent(setup: Setup, conn: Conn, sys_ctx: ExecutionContext,
                                   make_student: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Each shell's read has its entry; a committed write of either shell drops both."""
    s = make_student(grade="5")

    def both() -> tuple[str, str]:
        return setup.get(conn, sys_ctx, s.id).unwrap().grade, setup.aread(sys_ctx, s.id).grade

    assert both() == ("5", "5") and both() == ("5", "5")
    assert setup.calls == {"sync": 1, "async": 1}
    setup.aupdate(sys_ctx, s.id, {"grade": "6"}, rollback=True)
    assert both() == ("5", "5") and setup.calls == {"sync": 1, "async": 1}  # nothing invalidated
    setup.aupdate(sys_ctx, s.id, {"grade": "7"})  # async commit: invalidated via redis.asyncio
    assert both() == ("7", "7") and setup.calls == {"sync": 2, "async": 2}
    with unit_of_work(conn, sys_ctx):  # sync commit: the sync client, as before
        students.update(conn, sys_ctx, s.id, {"grade": "8"}).unwrap()
    assert both() == ("8", "8") and setup.calls == {"sync": 3, "async": 3}
    assert both() == ("8", "8") and setup.calls == {"sync": 3, "async": 3}
    assert "unusable" not in caplog.text  # through the async face, no fallback


def test_a_tiered_cache_invalidates_redis_and_every_memory_tier(
        own_redis: RedisServer, db_url: str, conn: Conn, sys_ctx: ExecutionContext,
        make_student: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Two processes' tiered caches: an async commit through one process's async face drops the
    entry from Redis, from its own memory tier and from the other process's memory tier."""
    ns = prefix()
    here = tiered(own_redis.url, ns, timeout=2.0)
    there = tiered(own_redis.url, ns, timeout=2.0)
    subscribe(here)
    loop = asyncio.new_event_loop()
    client = make_async_client(own_redis.url, connect_timeout=2.0, socket_timeout=2.0)
    face = AsyncTieredCache(here, AsyncRedisCache(here.redis, client))
    registered = contextlib.ExitStack()
    registered.enter_context(acache.using_async_cache(face))
    aconn = loop.run_until_complete(aio.connect(db_url))
    calls = [0]

    @cached(STUDENTS, key=lambda conn, ctx, i: by_id(i), cache=there, unkeyed=("calls",))
    def get(conn: Conn, ctx: ExecutionContext, i: Any) -> Result[Any, DataError]:
        calls[0] += 1
        return students.find_by_id(conn, ctx, i)

    @acache.cached(STUDENTS, key=lambda conn, ctx, i: by_id(i), cache=face, unkeyed=("calls",))
    async def aget(conn: Any, ctx: ExecutionContext, i: Any) -> Result[Any, DataError]:
        calls[0] += 1
        return await astudents.find_by_id(conn, ctx, i)  # type: ignore[no-any-return]

    async def update(i: Any, grade: str) -> None:
        async with aio.unit_of_work(aconn, sys_ctx):
            (await astudents.update(aconn, sys_ctx, i, {"grade": grade})).unwrap()

    try:
        s = make_student(grade="5")
        assert get(conn, sys_ctx, s.id).unwrap().grade == "5"
        assert loop.run_until_complete(aget(aconn, sys_ctx, s.id)).unwrap().grade == "5"
        assert get(conn, sys_ctx, s.id).unwrap().grade == "5" and calls == [2]  # memory tiers
        loop.run_until_complete(update(s.id, "6"))
        assert get(conn, sys_ctx, s.id).unwrap().grade == "6"  # the other process's tier too
        assert loop.run_until_complete(aget(aconn, sys_ctx, s.id)).unwrap().grade == "6"
        assert calls == [4]
        assert "unusable" not in caplog.text  # through the async face, no fallback
    finally:
        registered.close()
        unsubscribe(here)
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(aconn.close())
        loop.close()
        here.close()
        there.close()


def test_a_write_announced_as_a_plan_step_outside_a_unit_of_work_awaits_the_async_client(
        setup: Setup, admin_conn: Conn, sys_ctx: ExecutionContext, make_student: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    s = make_student(grade="5")
    assert setup.aread(sys_ctx, s.id).grade == "5"
    admin_conn.execute("UPDATE students SET grade = '6' WHERE id = %s", (s.id,))  # not announced
    assert setup.aread(sys_ctx, s.id).grade == "5" and setup.calls["async"] == 1  # still held
    event = WriteEvent("Student", "UPDATE", (s.id,), (s.id,))
    setup.run(arun(setup.aconn, announce_plan(setup.aconn, event)))
    assert setup.aread(sys_ctx, s.id).grade == "6" and setup.calls["async"] == 2
    assert "unusable" not in caplog.text  # through the async face, no fallback


def test_a_redis_failure_during_the_async_invalidation_is_owed(
        setup: Setup, sys_ctx: ExecutionContext, make_student: Any) -> None:
    s = make_student(grade="5")
    assert setup.aread(sys_ctx, s.id).grade == "5"
    setup.server.stop()
    setup.aupdate(sys_ctx, s.id, {"grade": "6"})  # committed; the invalidation cannot be sent
    assert setup.cache.in_debt  # owed: Redis is not used again before the namespace is flushed
    assert setup.aread(sys_ctx, s.id).grade == "6"  # read from PostgreSQL meanwhile
    setup.server.start()
    deadline = time.monotonic() + 10
    while setup.cache.in_debt and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not setup.cache.in_debt  # paid in the background once Redis answered
