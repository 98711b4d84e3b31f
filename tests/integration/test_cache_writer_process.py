"""A process that only writes still invalidates the cache it shares with other processes.

A service that writes through wxdata but never reads through the cache (a worker, an import job)
never builds its process cache. When the settings name a cache shared between processes (Redis or
tiered), its committed writes must still invalidate what other processes cached, or they keep
serving the row as it was until the entry expires. Each writer here is a separate Python process
started with those settings, that never calls ``init_cache`` nor reads through the cache; the
reader is this process, with its own cache of the same settings.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import psycopg
import pytest
from returns.result import Result

from wxdata import ExecutionContext
from wxdata.cache import by_id, cached
from wxdata.cache.backends.base import CacheManager
from wxdata.cache.factory import build_cache
from wxdata.config import settings
from wxdata.domains import students
from wxdata.errors import DataError
from wxdata.schema import STUDENTS

Conn = psycopg.Connection[Any]

#: The writer: the settings come from its environment; it updates one student, as a worker would,
#: through the sync or the async API, in a single statement or a unit of work.
WRITER = textwrap.dedent("""
    import asyncio, sys, uuid
    import psycopg
    from wxdata import ExecutionContext, Purpose, Role
    from wxdata.db import connect_kwargs

    url, school, sid, grade, shell, mode = sys.argv[1:7]
    ctx = ExecutionContext(user_id="u-worker", role=Role.NURSE, purpose=Purpose.TREATMENT,
                           school_ids={uuid.UUID(school)})
    changes = {"grade": grade}
    if shell == "sync":
        from wxdata.domains import students
        from wxdata.tx import unit_of_work
        with psycopg.connect(url, autocommit=True, **connect_kwargs()) as conn:
            if mode == "unit":
                with unit_of_work(conn, ctx):
                    students.update(conn, ctx, uuid.UUID(sid), changes).unwrap()
            else:
                students.update(conn, ctx, uuid.UUID(sid), changes).unwrap()
    else:
        from wxdata.aio import unit_of_work
        from wxdata.aio.domains import students

        async def write():
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True, **connect_kwargs())
            async with conn:
                if mode == "unit":
                    async with unit_of_work(conn, ctx):
                        (await students.update(conn, ctx, uuid.UUID(sid), changes)).unwrap()
                else:
                    (await students.update(conn, ctx, uuid.UUID(sid), changes)).unwrap()

        asyncio.run(write())
    from wxdata.cache.invalidation import subscribed
    print(" ".join(sorted(type(cache).__name__ for cache in subscribed())) or "none")
""")


@pytest.fixture(params=["redis", "tiered"])
def shared(redis_url: str, request: pytest.FixtureRequest) -> Iterator[
        tuple[dict[str, str], CacheManager]]:
    """The environment of a writer process sharing a Redis cache with this one, and this
    process's cache of the same settings (not subscribed to this process's writes: the writes
    come from the other process)."""
    key = os.urandom(32)  # a key of this test alone: its entries and tags are its own
    backend = request.param
    env = {**os.environ, "CACHE_ENABLED": "true", "CACHE_BACKEND": backend,
           "REDIS_URL": redis_url, "CACHE_KEY": base64.b64encode(key).decode(),
           "CACHE_ENCRYPT_PHI": "true"}
    config = attrs.evolve(settings(), cache_enabled=True, cache_backend=backend,
                          redis_url=redis_url, cache_key=key, cache_encrypt_phi=True)
    cache = build_cache(config, subscribe_writes=False)
    assert cache is not None
    try:
        yield env, cache
    finally:
        cache.close()


def _reader(cache: CacheManager) -> Callable[..., Result[Any, DataError]]:
    @cached(STUDENTS, key=lambda conn, ctx, sid: by_id(sid), cache=cache)
    def one(conn: Conn, ctx: ExecutionContext, sid: uuid.UUID) -> Result[Any, DataError]:
        return students.find_by_id(conn, ctx, sid)

    return one


def _write(env: dict[str, str], db_url: str, ctx: ExecutionContext, sid: uuid.UUID, grade: str,
           shell: str, mode: str) -> str:
    (school,) = ctx.school_ids
    done = subprocess.run(
        [sys.executable, "-c", WRITER, db_url, str(school), str(sid), grade, shell, mode],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("mode", ["single", "unit"])
@pytest.mark.parametrize("shell", ["sync", "async"])
def test_a_process_that_only_writes_invalidates_the_shared_cache(
        shared: tuple[dict[str, str], CacheManager], db_url: str, conn: Conn,
        ctx: ExecutionContext, make_student: Callable[..., Any], shell: str, mode: str) -> None:
    env, cache = shared
    read = _reader(cache)
    student = make_student(grade="5")
    assert read(conn, ctx, student.id).unwrap().grade == "5"
    stats = cache.stats()
    assert read(conn, ctx, student.id).unwrap().grade == "5"
    assert cache.stats().hits == stats.hits + 1  # the row is served from Redis now

    # the writer builds the process cache its settings name: a shared one
    # the writer builds the process cache its settings name: one sharing Redis with this one
    built = _write(env, db_url, ctx, student.id, "6", shell, mode)
    assert built == {"redis": "RedisCache", "tiered": "TieredCache"}[env["CACHE_BACKEND"]]

    assert read(conn, ctx, student.id).unwrap().grade == "6"


def test_a_writer_with_a_memory_cache_builds_none(
        shared: tuple[dict[str, str], CacheManager], db_url: str, ctx: ExecutionContext,
        make_student: Callable[..., Any]) -> None:
    """A memory cache is the process's own: a process that never read holds nothing to
    invalidate, so its writes build none (and stay unheard)."""
    env, _ = shared
    student = make_student(grade="5")
    memory = {**env, "CACHE_BACKEND": "memory"}
    assert _write(memory, db_url, ctx, student.id, "6", "sync", "single") == "none"
    off = {**env, "CACHE_ENABLED": "false"}
    assert _write(off, db_url, ctx, student.id, "7", "async", "single") == "none"
