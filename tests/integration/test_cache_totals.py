"""Cached page totals against real PostgreSQL and Redis, in both shells.

Every test runs with the sync shell (``wxdata.crud`` on a ``Connection``) and the async one
(``wxdata.aio.crud`` on an ``AsyncConnection``), on the memory and the Redis backend: a total
served from the cache is the fresh count after every committed write, a rolled-back or uncommitted
write changes nothing others see, and one school's or role's total is never another's.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from returns.result import Success

from tests.cache_support import memory, prefix, redis_backend, wipe
from tests.conftest import student_values
from wxdata import ExecutionContext, Role, aio, crud
from wxdata.aio import crud as acrud
from wxdata.cache import aio as acache
from wxdata.cache.backends.aio import AsyncMemoryCache, AsyncRedisCache
from wxdata.cache.backends.clients import make_async_client
from wxdata.cache.backends.redis import RedisCache
from wxdata.cache.factory import using_cache
from wxdata.cache.totals import cache_totals, counted_page, totals_cached, uncache_totals
from wxdata.core import reads
from wxdata.db import connect_kwargs
from wxdata.query.paging import Page
from wxdata.schema import SCHOOLS, STUDENTS
from wxdata.tx import RollbackScope, unit_of_work

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[Any]


class Shell:
    """Pages, counts and writes through one shell, answered synchronously."""

    def __init__(self, kind: str, db_url: str, cache: Any, redis_url: str) -> None:
        self.kind = kind
        self.conn = psycopg.connect(db_url, autocommit=True, **connect_kwargs())
        self.loop: asyncio.AbstractEventLoop | None = None
        self.aconn: Any = None
        self.client: Any = None
        if kind == "async":
            self.loop = asyncio.new_event_loop()
            self.aconn = self.run(aio.connect(db_url))
            if isinstance(cache, RedisCache):
                self.client = make_async_client(redis_url, connect_timeout=1.0,
                                                socket_timeout=1.0)
                acache.configure_async_cache(AsyncRedisCache(cache, self.client))
            else:
                acache.configure_async_cache(AsyncMemoryCache(cache))

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on this shell's loop."""
        assert self.loop is not None
        return self.loop.run_until_complete(coro)

    def page(self, ctx: ExecutionContext, where: Any = None, page: int = 1,
             limit: int = 3) -> Page[Any]:
        """A page of students (through the cached-total hook when enabled)."""
        if self.aconn is None:
            result = crud.find_many(self.conn, ctx, STUDENTS, where, order_by=["student_number"],
                                    page=page, limit=limit)
        else:
            result = self.run(acrud.find_many(self.aconn, ctx, STUDENTS, where,
                                              order_by=["student_number"], page=page,
                                              limit=limit))
        page_: Page[Any] = result.unwrap()
        return page_

    def create(self, ctx: ExecutionContext, school: dict[str, uuid.UUID], **values: Any) -> Any:
        """Create a student (committed: outside a unit of work)."""
        if self.aconn is None:
            return crud.create(self.conn, ctx, STUDENTS, student_values(school, **values)).unwrap()
        return self.run(acrud.create(self.aconn, ctx, STUDENTS,
                                     student_values(school, **values))).unwrap()

    def in_unit(self, ctx: ExecutionContext, write: Callable[[Any], Any], *,
                rollback: bool) -> None:
        """Run ``write(conn)`` (a wxdata write of this shell) in a unit of work; roll back or
        commit."""
        if self.aconn is None:
            with contextlib.suppress(RollbackScope), unit_of_work(self.conn, ctx):
                write(self.conn).unwrap()
                if rollback:
                    raise RollbackScope
            return

        async def body() -> None:
            with contextlib.suppress(RollbackScope):
                async with aio.unit_of_work(self.aconn, ctx):
                    (await write(self.aconn)).unwrap()
                    if rollback:
                        raise RollbackScope

        self.run(body())

    def writes(self) -> Any:
        """The generic write functions of this shell."""
        return crud if self.aconn is None else acrud

    def close(self) -> None:
        """Close connections and the loop."""
        if self.loop is not None:
            if self.client is not None:
                self.run(self.client.aclose())
            self.run(self.aconn.close())
            self.loop.close()
            acache.reset_async_cache()
        self.conn.close()


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    ns = prefix()
    yield ns
    wipe(redis_url, ns)


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest, redis_url: str, namespace: str) -> Iterator[Any]:
    cache: Any = memory() if request.param == "memory" else redis_backend(
        redis_url, namespace, timeout=1.0)
    with using_cache(cache, close=request.param != "memory"):
        cache_totals(STUDENTS)
        yield cache
        uncache_totals(STUDENTS)


@pytest.fixture(params=["sync", "async"])
def shell(request: pytest.FixtureRequest, db_url: str, backend: Any,
          redis_url: str) -> Iterator[Shell]:
    made = Shell(request.param, db_url, backend, redis_url)
    yield made
    made.close()


def fresh(conn: Conn, ctx: ExecutionContext, where: Any = None) -> int:
    """The count PostgreSQL answers now (no cache involved)."""
    n: int = crud.count(conn, ctx, STUDENTS, where).unwrap()
    return n


def hits(cache: Any) -> int:
    """Hits on Student entries so far."""
    found = cache.stats().entities.get("Student")
    return 0 if found is None else int(found.hits)


def test_the_total_is_served_from_the_cache_and_exact_after_committed_writes(
        shell: Shell, backend: Any, conn: Conn, ctx: ExecutionContext, sys_ctx: ExecutionContext,
        school: dict[str, uuid.UUID]) -> None:
    for _ in range(4):
        shell.create(sys_ctx, school)
    first = shell.page(ctx)
    assert first.total == 4 == fresh(conn, ctx) and len(first.data) == 3
    before = hits(backend)
    second = shell.page(ctx, page=2)
    assert hits(backend) == before + 1  # the same filter on another page: the total's entry
    assert second.total == 4 and len(second.data) == 1 and second.has_previous
    made = shell.create(sys_ctx, school)  # committed through this shell: invalidates
    assert shell.page(ctx).total == 5 == fresh(conn, ctx)
    assert shell.page(ctx).total == 5 and hits(backend) == before + 2
    w = shell.writes()
    result = w.delete(shell.aconn or shell.conn, sys_ctx, STUDENTS, made.id)
    if shell.aconn is not None:
        result = shell.run(result)
    assert isinstance(result, Success)
    assert shell.page(ctx).total == 4 == fresh(conn, ctx)
    assert shell.page(ctx, {"grade": "9"}).total == 0  # another filter: its own total
    shell.create(sys_ctx, school, grade="9")
    assert shell.page(ctx, {"grade": "9"}).total == 1 == fresh(conn, ctx, {"grade": "9"})


def test_rolled_back_and_uncommitted_writes_change_nothing_others_see(
        shell: Shell, backend: Any, conn: Conn, db_url: str, ctx: ExecutionContext,
        sys_ctx: ExecutionContext, school: dict[str, uuid.UUID]) -> None:
    shell.create(sys_ctx, school)
    assert shell.page(ctx).total == 1
    w = shell.writes()
    shell.in_unit(sys_ctx, lambda c: w.create(c, sys_ctx, STUDENTS, student_values(school)),
                  rollback=True)
    before = hits(backend)
    assert shell.page(ctx).total == 1 == fresh(conn, ctx)
    assert hits(backend) == before + 1  # nothing was invalidated by the rollback
    with psycopg.connect(db_url, autocommit=True, **connect_kwargs()) as other, \
            unit_of_work(other, sys_ctx):
        crud.create(other, sys_ctx, STUDENTS, student_values(school)).unwrap()
        assert shell.page(ctx).total == 1  # not committed yet: what others see is unchanged
        with unit_of_work(conn, ctx):  # the writer's own view bypasses the cache
            pass
    assert shell.page(ctx).total == 2 == fresh(conn, ctx)  # committed: invalidated


def test_a_unit_of_work_that_wrote_the_entity_counts_its_own_writes(
        shell: Shell, backend: Any, conn: Conn, ctx: ExecutionContext, sys_ctx: ExecutionContext,
        school: dict[str, uuid.UUID]) -> None:
    shell.create(sys_ctx, school)
    assert shell.page(ctx).total == 1
    seen: list[int] = []
    if shell.aconn is None:
        with contextlib.suppress(RollbackScope), unit_of_work(conn, ctx):
            crud.create(conn, ctx, STUDENTS, student_values(school)).unwrap()
            seen.append(crud.find_many(conn, ctx, STUDENTS).unwrap().total)
            raise RollbackScope
    else:
        async def body() -> None:
            with contextlib.suppress(RollbackScope):
                async with aio.unit_of_work(shell.aconn, ctx):
                    (await acrud.create(shell.aconn, ctx, STUDENTS,
                                        student_values(school))).unwrap()
                    seen.append((await acrud.find_many(shell.aconn, ctx, STUDENTS)).unwrap().total)
                    raise RollbackScope

        shell.run(body())
    assert seen == [2]  # its own write, counted (bypass), and not stored
    assert shell.page(ctx).total == 1 == fresh(conn, ctx)


def test_one_schools_or_roles_total_is_never_served_to_another(
        shell: Shell, backend: Any, conn: Conn, ctx: ExecutionContext, sys_ctx: ExecutionContext,
        school: dict[str, uuid.UUID]) -> None:
    tag = uuid.uuid4().hex[:8]
    other_school = {"district_id": school["district_id"],
                    "school_id": crud.create(conn, sys_ctx, SCHOOLS, {
                        "name": f"School {tag}", "code": f"S-{tag}",
                        "district_id": school["district_id"]}).unwrap().id}
    for _ in range(3):
        shell.create(sys_ctx, school)
    shell.create(sys_ctx, other_school)
    ctx_b = ExecutionContext(user_id="u-nurse-2", role=Role.NURSE,
                             school_ids={other_school["school_id"]})
    ctx_admin = ExecutionContext(user_id="u-admin-1", role=Role.SCHOOL_ADMIN,
                                 school_ids={school["school_id"]})
    assert shell.page(ctx).total == 3 == fresh(conn, ctx)
    assert shell.page(ctx_b).total == 1 == fresh(conn, ctx_b)
    before = hits(backend)
    assert shell.page(ctx_admin).total == 3
    assert hits(backend) == before  # another role: its own entry (a miss), never school A's
    assert shell.page(ctx).total == 3 and shell.page(ctx_b).total == 1
    assert hits(backend) == before + 2


def test_the_hook_is_off_unless_an_entity_is_named(backend: Any, conn: Conn,
                                                   ctx: ExecutionContext) -> None:
    assert totals_cached() == {"Student"} and reads.page_totals is counted_page
    assert counted_page(conn, ctx, SCHOOLS, None, None, 1, 10, False) is None
    uncache_totals()
    assert totals_cached() == frozenset() and reads.page_totals is None
    cache_totals(STUDENTS)
    assert reads.page_totals is counted_page


def test_a_bad_page_or_filter_fails_as_without_the_cache(
        shell: Shell, backend: Any, ctx: ExecutionContext) -> None:
    for where, page in (({"no_such_column": 1}, 1), (None, 0)):
        if shell.aconn is None:
            result = crud.find_many(shell.conn, ctx, STUDENTS, where, page=page)
        else:
            result = shell.run(acrud.find_many(shell.aconn, ctx, STUDENTS, where, page=page))
        uncache_totals()
        try:
            if shell.aconn is None:
                plain = crud.find_many(shell.conn, ctx, STUDENTS, where, page=page)
            else:
                plain = shell.run(acrud.find_many(shell.aconn, ctx, STUDENTS, where, page=page))
        finally:
            cache_totals(STUDENTS)
        assert result.failure() == plain.failure()


_OPS = st.lists(st.sampled_from(["create", "create9", "rollback", "delete", "regrade", "read",
                                 "read9"]), min_size=3, max_size=12)


@hyp_settings(max_examples=12, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS)
def test_cached_totals_always_equal_a_fresh_count(
        shell: Shell, backend: Any, conn: Conn, ctx: ExecutionContext, sys_ctx: ExecutionContext,
        school: dict[str, uuid.UUID], ops: list[str]) -> None:
    w = shell.writes()
    c = shell.aconn or shell.conn

    def done(value: Any) -> Any:
        return shell.run(value) if shell.aconn is not None else value

    for op in ops:
        live = crud.find_many(conn, sys_ctx, STUDENTS, {"school_id": school["school_id"]},
                              limit=100).unwrap().data
        if op == "create":
            shell.create(sys_ctx, school)
        elif op == "create9":
            shell.create(sys_ctx, school, grade="9")
        elif op == "rollback":
            shell.in_unit(sys_ctx, lambda cn: w.create(cn, sys_ctx, STUDENTS,
                                                       student_values(school)), rollback=True)
        elif op == "delete" and live:
            done(w.delete(c, sys_ctx, STUDENTS, live[0].id)).unwrap()
        elif op == "regrade" and live:
            done(w.update(c, sys_ctx, STUDENTS, live[-1].id,
                          {"grade": "9" if live[-1].grade != "9" else "5"})).unwrap()
        where = {"grade": "9"} if op == "read9" else None
        assert shell.page(ctx, where).total == fresh(conn, ctx, where)
