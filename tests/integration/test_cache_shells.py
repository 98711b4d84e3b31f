"""The sync and the async ``cached`` against real PostgreSQL and Redis: one behaviour, two shells.

Every test here runs once per shell (``sync``: :func:`wxdata.cache.cached` on a psycopg
``Connection``; ``async``: :func:`wxdata.cache.aio.cached` on an ``AsyncConnection``) and, where
the backend matters, once per backend (memory, Redis, tiered). The async read under test is
the async domain function (:mod:`wxdata.aio.domains`), its writes the async units of work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from tests.cache_support import (
    audit_rows,
    cache_hits,
    memory,
    prefix,
    records_refused,
    redis_backend,
    tiered,
    wipe,
)
from wxdata import ExecutionContext, aio, crud
from wxdata.aio.domains import students as astudents
from wxdata.audit import AuditAction, audited
from wxdata.cache import aio as acache
from wxdata.cache import by_id, cached
from wxdata.cache.backends.aio import AsyncMemoryCache, AsyncRedisCache, AsyncTieredCache
from wxdata.cache.backends.clients import make_async_client
from wxdata.cache.invalidation import subscribe, unsubscribe
from wxdata.cache.keys import canonical
from wxdata.db import connect_kwargs
from wxdata.domains import students
from wxdata.errors import DataError, InvalidQuery
from wxdata.schema import SCHOOLS, STUDENTS
from wxdata.tx import RollbackScope, unit_of_work

Conn = psycopg.Connection[Any]


class Shell:
    """One way of calling cached reads: sync, or async on a private event loop."""

    def __init__(self, kind: str, db_url: str) -> None:
        self.kind = kind
        self.db_url = db_url
        self.loop: asyncio.AbstractEventLoop | None = None
        self.aconn: psycopg.AsyncConnection[Any] | None = None
        self.sync_conn = psycopg.connect(db_url, autocommit=True, **connect_kwargs())
        self._closers: list[Callable[[], Any]] = []
        if kind == "async":
            self.loop = asyncio.new_event_loop()
            self.aconn = self.run(aio.connect(db_url))

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on this shell's loop."""
        assert self.loop is not None
        return self.loop.run_until_complete(coro)

    @property
    def is_async(self) -> bool:
        """Whether this is the async shell."""
        return self.kind == "async"

    def wrap(self, sync_cache: Any) -> Any:
        """The cache object this shell's decorator takes, around a sync backend."""
        if not self.is_async:
            return sync_cache
        from wxdata.cache.backends.memory import MemoryCache
        from wxdata.cache.backends.redis import RedisCache
        from wxdata.cache.backends.tiered import TieredCache

        if isinstance(sync_cache, MemoryCache):
            return AsyncMemoryCache(sync_cache)
        if isinstance(sync_cache, TieredCache):
            made = AsyncRedisCache(sync_cache.redis, self._client(sync_cache.redis))
            return AsyncTieredCache(sync_cache, made)
        assert isinstance(sync_cache, RedisCache)
        return AsyncRedisCache(sync_cache, self._client(sync_cache))

    def _client(self, redis_cache: Any) -> Any:
        url = getattr(redis_cache, "test_url", None)
        if url is None:
            pool = redis_cache.raw_client.connection_pool.connection_kwargs
            url = f"redis://{pool['host']}:{pool['port']}/0"
        client = make_async_client(url, connect_timeout=1.0, socket_timeout=1.0)
        self._closers.append(lambda: self.run(client.aclose()))
        return client

    def reader(self, cache: Any, entity: Any = STUDENTS,
               find: Callable[..., Any] = students.find_by_id,
               afind: Callable[..., Any] = astudents.find_by_id,
               gate: Callable[[], Any] | None = None) -> tuple[Callable[..., Any], list[int]]:
        """A cached by-id read on ``cache`` and the count of calls that reached PostgreSQL.

        The returned callable takes ``(ctx, id)`` (and optionally ``conn=``) and answers
        synchronously in either shell; the decorated function is kept in ``decorated``, the cache it
        reads (``cache`` as this shell's decorator takes it) in ``cache``.
        """
        calls = [0]
        c = self.cache = self.wrap(cache)
        if not self.is_async:
            @cached(entity, key=lambda conn, ctx, i: by_id(i), cache=c, unkeyed=("calls", "gate"))
            def get(conn: Conn, ctx: ExecutionContext, i: Any) -> Result[Any, DataError]:
                calls[0] += 1
                if gate is not None:
                    gate()
                return find(conn, ctx, i)  # type: ignore[no-any-return]

            self.read = lambda ctx, i: get(self.sync_conn, ctx, i)
            self.decorated = get
            return (lambda ctx, i, conn=None: get(conn or self.sync_conn, ctx, i)), calls

        @acache.cached(entity, key=lambda conn, ctx, i: by_id(i), cache=c,
                       unkeyed=("calls", "gate"))
        async def aget(conn: Any, ctx: ExecutionContext, i: Any) -> Result[Any, DataError]:
            calls[0] += 1
            if gate is not None:
                await gate()
            return await afind(conn, ctx, i)  # type: ignore[no-any-return]

        self.aget = aget
        self.decorated = aget
        return (lambda ctx, i, conn=None: self.run(aget(conn or self.aconn, ctx, i))), calls

    def uow(self, ctx: ExecutionContext, steps: list[tuple[Any, ...]], *,
            rollback: bool = False, read_only: bool = False) -> list[Any]:
        """Run ``("update", id, values)`` and ``("read", id)`` steps in one unit of work of this
        shell on its own connection (rolled back if asked); the reads' results, in order."""
        out: list[Any] = []
        if not self.is_async:
            with contextlib.suppress(RollbackScope), unit_of_work(self.sync_conn, ctx,
                                                                 read_only=read_only):
                for step in steps:
                    if step[0] == "update":
                        students.update(self.sync_conn, ctx, step[1], step[2]).unwrap()
                    else:
                        out.append(self.read(ctx, step[1]))
                if rollback:
                    raise RollbackScope
            return out

        async def body() -> None:
            with contextlib.suppress(RollbackScope):
                async with aio.unit_of_work(self.aconn, ctx, read_only=read_only):
                    for step in steps:
                        if step[0] == "update":
                            (await astudents.update(self.aconn, ctx, step[1], step[2])).unwrap()
                        else:
                            out.append(await self.aget(self.aconn, ctx, step[1]))
                    if rollback:
                        raise RollbackScope

        self.run(body())
        return out

    def close(self) -> None:
        """Close connections and the loop."""
        for close in self._closers:
            close()
        if self.aconn is not None:
            self.run(self.aconn.close())
        if self.loop is not None:
            self.loop.close()
        self.sync_conn.close()


@pytest.fixture(params=["sync", "async"])
def shell(request: pytest.FixtureRequest, db_url: str) -> Iterator[Shell]:
    made = Shell(request.param, db_url)
    yield made
    made.close()


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    ns = prefix()
    yield ns
    wipe(redis_url, ns)


@pytest.fixture(params=["memory", "redis", "tiered"])
def backend(request: pytest.FixtureRequest, redis_url: str, namespace: str) -> Iterator[Any]:
    if request.param == "memory":
        cache: Any = memory()
    elif request.param == "redis":
        cache = redis_backend(redis_url, namespace, timeout=1.0)
    else:
        cache = tiered(redis_url, namespace, timeout=1.0)
    subscribe(cache)
    yield cache
    unsubscribe(cache)
    if request.param != "memory":
        cache.close()


def test_hits_skip_the_database_and_failures_are_never_cached(
        shell: Shell, backend: Any, ctx: ExecutionContext, make_student: Any) -> None:
    s = make_student()
    get, calls = shell.reader(backend)
    assert get(ctx, s.id) == Success(s)
    assert get(ctx, s.id) == Success(s)
    assert calls == [1]
    missing = uuid.uuid4()
    assert isinstance(get(ctx, missing), Failure)
    assert isinstance(get(ctx, missing), Failure)
    assert calls == [3]
    stats = backend.stats().entities["Student"]
    assert stats.hits == 1 and stats.sets >= 1  # tiered: one set per tier


def test_committed_writes_invalidate_and_rolled_back_ones_do_not(
        shell: Shell, backend: Any, conn: Conn, ctx: ExecutionContext, make_student: Any) -> None:
    s = make_student(grade="5")
    get, calls = shell.reader(backend)
    assert get(ctx, s.id).unwrap().grade == "5"
    with unit_of_work(conn, ctx):
        students.update(conn, ctx, s.id, {"grade": "7"})
        raise RollbackScope
    assert get(ctx, s.id).unwrap().grade == "5" and calls == [1]  # nothing invalidated
    with unit_of_work(conn, ctx):
        students.update(conn, ctx, s.id, {"grade": "6"})
        assert get(ctx, s.id).unwrap().grade == "5" and calls == [1]  # not committed yet
    assert get(ctx, s.id).unwrap().grade == "6" and calls == [2]  # invalidated after COMMIT


@pytest.mark.parametrize("inside", [False, True])
def test_a_hand_written_change_under_audited_invalidates_the_rows_it_names(
        shell: Shell, backend: Any, ctx: ExecutionContext, make_student: Any,
        inside: bool) -> None:
    """A change made with hand-written SQL under ``audited`` is announced as a generic write is:
    after COMMIT the rows its value names are dropped from the cache, and inside a unit of work the
    cache is bypassed for the entity from the change on (the unit's own write is seen)."""
    s = make_student(grade="5")
    get, calls = shell.reader(backend)
    assert get(ctx, s.id).unwrap().grade == "5"
    assert get(ctx, s.id).unwrap().grade == "5" and calls == [1]  # cached
    statement = "UPDATE students SET grade = '6' WHERE id = %(id)s RETURNING id"
    ids = lambda rows: [r[0] for r in rows]  # noqa: E731
    seen: list[Any] = []
    if not shell.is_async:
        @audited(STUDENTS, AuditAction.UPDATE, ids=ids, subjects=ids)
        def promote(conn: Conn, ctx: ExecutionContext, sid: Any) -> Result[Any, DataError]:
            return crud.fetch(conn, ctx, statement, {"id": sid})

        conn = shell.sync_conn
        if inside:
            with unit_of_work(conn, ctx):
                assert promote(conn, ctx, s.id).unwrap() == [(s.id,)]
                seen.append(shell.read(ctx, s.id))
        else:
            assert promote(conn, ctx, s.id).unwrap() == [(s.id,)]
    else:
        @aio.audited(STUDENTS, AuditAction.UPDATE, ids=ids, subjects=ids)
        async def apromote(conn: Any, ctx: ExecutionContext, sid: Any) -> Result[Any, DataError]:
            return await aio.crud.fetch(conn, ctx, statement, {"id": sid})

        async def body() -> None:
            if inside:
                async with aio.unit_of_work(shell.aconn, ctx):
                    assert (await apromote(shell.aconn, ctx, s.id)).unwrap() == [(s.id,)]
                    seen.append(await shell.aget(shell.aconn, ctx, s.id))
            else:
                assert (await apromote(shell.aconn, ctx, s.id)).unwrap() == [(s.id,)]

        shell.run(body())
    if inside:
        assert seen[0].unwrap().grade == "6"  # bypassed inside: the unit's own write
    assert get(ctx, s.id).unwrap().grade == "6"  # dropped after COMMIT
    with psycopg.connect(shell.db_url, autocommit=True, **connect_kwargs()) as other:
        updates = [r for r in audit_rows(other, ctx.request_id, "Student") if r[0] == "UPDATE"]
    assert [(r[2], r[3]) for r in updates] == [([s.id], [s.id])]  # recorded once, as before


def test_unit_of_work_rules_in_either_shell(shell: Shell, backend: Any, db_url: str,
                                            ctx: ExecutionContext, make_student: Any) -> None:
    """Inside a unit of work that wrote the entity: bypass (its own write is seen, nothing is
    stored); a rollback invalidates and stores nothing; a commit invalidates before the unit of
    work returns."""
    s = make_student(grade="5")
    get, calls = shell.reader(backend)
    with psycopg.connect(db_url, autocommit=True, **connect_kwargs()) as other:
        assert get(ctx, s.id).unwrap().grade == "5" and calls == [1]
        inside = shell.uow(ctx, [("read", s.id), ("update", s.id, {"grade": "6"}),
                                 ("read", s.id)], rollback=True)
        assert inside[0] == Success(s)  # a hit before the unit of work wrote anything
        assert inside[1].unwrap().grade == "6" and calls == [2]  # bypassed: its own write
        assert get(ctx, s.id, conn=other if not shell.is_async else None).unwrap().grade == "5"
        assert calls == [2]  # rolled back: nothing invalidated, the bypassed read not stored
        shell.uow(ctx, [("update", s.id, {"grade": "7"})])
        assert get(ctx, s.id).unwrap().grade == "7" and calls == [3]  # invalidated at COMMIT
        assert get(ctx, s.id).unwrap().grade == "7" and calls == [3]


def test_hits_in_a_unit_of_work_that_rolls_back_are_still_recorded(
        shell: Shell, conn: Conn, ctx: ExecutionContext, make_student: Any) -> None:
    s = make_student()
    mem = memory()
    get, calls = shell.reader(mem)
    get(ctx, s.id)
    assert shell.uow(ctx, [("read", s.id)], rollback=True) == [Success(s)]  # lane 2 replay
    assert shell.uow(ctx, [("read", s.id)], read_only=True) == [Success(s)]  # lane 2
    assert calls == [1]
    assert len(cache_hits(audit_rows(conn, ctx.request_id, "Student"))) == 2


def test_phi_hit_is_recorded_before_the_data_is_returned(
        shell: Shell, backend: Any, conn: Conn, ctx: ExecutionContext, make_student: Any) -> None:
    s = make_student()
    get, calls = shell.reader(backend)
    get(ctx, s.id)
    assert get(ctx, s.id) == Success(s) and calls == [1]
    rows = audit_rows(conn, ctx.request_id, "Student")
    hits = cache_hits(rows)
    assert [r[0] for r in rows] == ["READ", "READ"]
    assert len(hits) == 1 and hits[0][2] == [s.id] and hits[0][3] == [s.id]


#: The columns of a record that say what was disclosed, to whom, and why.
_DISCLOSURE = ("action", "entity_type", "entity_id", "entity_ids", "subject_student_id",
               "subject_ids", "fields_disclosed", "is_phi", "compliance_type", "severity",
               "success", "tags", "user_id", "user_role", "purpose", "request_id")


def test_a_phi_hits_record_is_the_reads_own_record(
        shell: Shell, backend: Any, conn: Conn, ctx: ExecutionContext, make_student: Any) -> None:
    """The record a hit writes says what the read's own riding record says, in every column that
    describes the disclosure (whole rows: every readable column, stored as ``*``); only its
    metadata marks it as a hit."""
    s = make_student()
    get, calls = shell.reader(backend)
    get(ctx, s.id)
    assert get(ctx, s.id) == Success(s) and calls == [1]
    columns = ", ".join(_DISCLOSURE)
    rows = conn.execute(
        f"SELECT {columns}, metadata FROM audit_log WHERE request_id = %s"
        " AND entity_type = 'Student' ORDER BY created_at, id", (ctx.request_id,)).fetchall()
    assert len(rows) == 2
    (read, read_meta), (hit, hit_meta) = ((r[:-1], r[-1]) for r in rows)
    assert hit == read
    assert dict(zip(_DISCLOSURE, hit, strict=True))["fields_disclosed"] == ["*"]
    assert not (read_meta or {}).get("cache") and hit_meta["cache"] == "hit"


def test_an_unrecordable_hit_discloses_nothing(
        shell: Shell, backend: Any, conn: Conn, admin_conn: Conn, ctx: ExecutionContext,
        make_student: Any) -> None:
    s = make_student()
    get, calls = shell.reader(backend)
    assert get(ctx, s.id) == Success(s)
    # the same caller on another request, whose records PostgreSQL refuses to store
    refused = attrs.evolve(ctx, request_id=f"req-refused-{uuid.uuid4().hex[:8]}")
    with records_refused(admin_conn, refused.request_id):
        got = get(refused, s.id)
    assert isinstance(got, Failure) and calls == [1]  # a hit, refused: no record, no data
    assert get(ctx, s.id) == Success(s) and calls == [1]
    assert len(cache_hits(audit_rows(conn, ctx.request_id, "Student"))) == 1


def _nothing(conn: Any, ctx: ExecutionContext, i: Any) -> Result[Any, DataError]:
    return Success(())


async def _anothing(conn: Any, ctx: ExecutionContext, i: Any) -> Result[Any, DataError]:
    return Success(())


def test_an_argument_with_no_key_text_is_a_typed_failure(
        shell: Shell, ctx: ExecutionContext) -> None:
    mem = memory()
    get, calls = shell.reader(mem, entity=SCHOOLS, find=_nothing, afind=_anothing)
    got = get(ctx, object())
    assert got == Failure(InvalidQuery(field="arguments", rule="have no canonical cache-key form"))
    assert calls == [0] and len(mem) == 0


def test_partitions_never_share_entries(shell: Shell, ctx: ExecutionContext,
                                        make_student: Any) -> None:
    s = make_student()
    mem = memory()
    get, calls = shell.reader(mem)
    assert get(ctx, s.id) == Success(s)
    elsewhere = attrs.evolve(ctx, school_ids=frozenset({uuid.uuid4()}))
    assert isinstance(get(elsewhere, s.id), Failure)  # not the other school's cached row
    assert calls == [2]


def test_async_reads_inside_a_transaction_bypass(db_url: str, ctx: ExecutionContext,
                                                 make_student: Any) -> None:
    s = make_student()
    shell = Shell("async", db_url)
    try:
        mem = memory()
        get, calls = shell.reader(mem)
        get(ctx, s.id)
        assert calls == [1]

        async def inside() -> Any:
            assert shell.aconn is not None
            async with shell.aconn.transaction():
                return await shell.aget(shell.aconn, ctx, s.id)

        assert shell.run(inside()) == Success(s)
        assert calls == [2] and mem.stats().entities["Student"].bypasses == 1
    finally:
        shell.close()


@pytest.mark.parametrize("kind", ["memory", "redis", "tiered"])
def test_fifty_concurrent_misses_make_one_call(db_url: str, redis_url: str, namespace: str,
                                               conn: Conn, ctx: ExecutionContext,
                                               make_student: Any, kind: str) -> None:
    s = make_student()
    n = 50
    shell = Shell("async", db_url)
    cache: Any = (memory() if kind == "memory" else
                  redis_backend(redis_url, namespace, timeout=1.0) if kind == "redis" else
                  tiered(redis_url, namespace, timeout=1.0))
    try:
        async def gate() -> None:
            # keep the leader in flight until every task has missed (bounded wait)
            for _ in range(500):
                if cache.stats().total.misses >= n:
                    return
                await asyncio.sleep(0.01)

        _, calls = shell.reader(cache, gate=gate)

        async def stampede() -> list[Any]:
            conns = [await aio.connect(db_url) for _ in range(n)]
            try:
                return await asyncio.gather(*(shell.aget(c, ctx, s.id) for c in conns))
            finally:
                for c in conns:
                    await c.close()

        results = shell.run(stampede())
        assert calls == [1]
        assert results == [Success(s)] * n
        counts = cache.stats().entities["Student"]
        assert counts.coalesced == n - 1 and counts.sets == (2 if kind == "tiered" else 1)  # per tier
        rows = audit_rows(conn, ctx.request_id, "Student")
        assert len(rows) == n and len(cache_hits(rows)) == n - 1  # one read + 49 hits
    finally:
        shell.close()
        if kind != "memory":
            cache.close()


def test_async_invalidation_after_commit_only(db_url: str, ctx: ExecutionContext,
                                              make_student: Any) -> None:
    from wxdata.tx.events import WriteEvent

    s = make_student(grade="5")
    shell = Shell("async", db_url)
    try:
        mem = memory()
        c = AsyncMemoryCache(mem)
        acache.configure_async_cache(c)
        get, calls = shell.reader(mem)
        get(ctx, s.id)
        hooks: list[Callable[[], Any]] = []
        event = WriteEvent("Student", "UPDATE", ids=(s.id,), subjects=(s.id,))
        acache.invalidate_after_commit(hooks.append, event)
        get(ctx, s.id)
        assert calls == [1]  # queued, not run: nothing invalidated before the commit
        for hook in hooks:
            assert shell.run(hook()) >= 1
        get(ctx, s.id)
        assert calls == [2]
    finally:
        acache.reset_async_cache()
        shell.close()


def test_async_redis_hit_holds_phi_only_encrypted(db_url: str, redis_url: str, namespace: str,
                                                  ctx: ExecutionContext,
                                                  make_student: Any) -> None:
    import redis as sync_redis

    s = make_student(first_name="Zebedee")
    shell = Shell("async", db_url)
    cache = redis_backend(redis_url, namespace, timeout=1.0)
    try:
        get, calls = shell.reader(cache)
        assert get(ctx, s.id) == Success(s) and get(ctx, s.id) == Success(s) and calls == [1]
        raw = sync_redis.Redis.from_url(redis_url)
        stored = [raw.get(k) for k in raw.scan_iter(match=f"{namespace}:student:*")]
        raw.close()
        assert stored and all(v is not None and v[:1] == b"E" for v in stored)
        assert not any(b"Zebedee" in v or str(s.id).encode() in v for v in stored if v)
    finally:
        shell.close()
        cache.close()


# --- key identity across the shells (property) ------------------------------------------------

_simple = st.one_of(st.uuids(), st.integers(-10**12, 10**12), st.text(max_size=12), st.booleans(),
                    st.none(), st.floats(allow_nan=False))
_args = st.one_of(_simple, st.tuples(_simple, _simple), st.frozensets(st.integers(0, 5)))


def _twin_readers(mem: Any, amem: Any, tag: int) -> tuple[Any, Any]:
    """A sync and an async read of reference data, their identities differing by ``tag``."""

    @cached(SCHOOLS, cache=mem, name="twin")
    def sync_read(conn: Conn, ctx: ExecutionContext, x: Any) -> Result[Any, DataError]:
        return Success((tag,))

    @acache.cached(SCHOOLS, cache=amem, name="twin")
    async def async_read(conn: Any, ctx: ExecutionContext, x: Any) -> Result[Any, DataError]:
        return Success((tag,))

    return sync_read, async_read


@hyp_settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=_args, b=_args)
def test_key_identity_across_shells(db_url: str, sys_ctx: ExecutionContext, a: Any, b: Any) -> None:
    """Each shell files a call under exactly the key its plan derives (a fresh plan, as in another
    process, derives the same one); equal typed arguments share a key, unequal ones never do; two
    identities (sync and async functions, or one constant apart) never share a key."""
    shell = Shell("async", db_url)
    try:
        mem = memory()
        amem = AsyncMemoryCache(mem)
        sync_read, async_read = _twin_readers(mem, amem, 1)
        other_sync, _ = _twin_readers(mem, amem, 2)
        for x in (a, b):
            assert sync_read(shell.sync_conn, sys_ctx, x) == Success((1,))
            assert shell.run(async_read(shell.aconn, sys_ctx, x)) == Success((1,))
        stored = set(mem._live)

        def key_of(read: Any, x: Any) -> str:
            fresh = plan_for(read)
            got = fresh.key(keys_of(mem), None, sys_ctx, (x,), {})
            assert got is not None
            return got

        ka_sync, kb_sync = key_of(sync_read, a), key_of(sync_read, b)
        ka_async, kb_async = key_of(async_read, a), key_of(async_read, b)
        assert {ka_sync, kb_sync, ka_async, kb_async} == stored  # filed where the plan says
        same = canonical(a) == canonical(b)
        assert (ka_sync == kb_sync) is same and (ka_async == kb_async) is same
        assert ka_sync != ka_async  # two identities: never one entry
        assert key_of(other_sync, a) != ka_sync
    finally:
        shell.close()


def plan_for(read: Any) -> Any:
    """A fresh plan for a decorated read's function, built as decoration builds it."""
    from wxdata.cache.core import plan

    old = read.__wxdata_plan__
    return plan(read.__wrapped__, entity=old.entity, ttl=old.fixed_ttl, tags=old.tags_fn,
                key=old.key_fn, depends=(), partition=None, name=old.qual, unkeyed=())


def keys_of(cache: Any) -> Any:
    """A key builder with the cache's key-hashing key but an empty memo (no memoised answer)."""
    from wxdata.cache.keys import KeyBuilder

    fresh = KeyBuilder.__new__(KeyBuilder)
    fresh.prefix, fresh._mac, fresh.memo = cache.keys.prefix, cache.keys._mac, {}
    return fresh


class _SyncRecorder(psycopg.Cursor[Any]):
    """Records the statements a connection sends."""

    sent: list[str] = []

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        _SyncRecorder.sent.append(str(query) if not isinstance(query, bytes) else query.decode())
        return super().execute(query, params, **kwargs)


class _AsyncRecorder(psycopg.AsyncCursor[Any]):
    """Records the statements an async connection sends."""

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        _SyncRecorder.sent.append(str(query) if not isinstance(query, bytes) else query.decode())
        return await super().execute(query, params, **kwargs)


def test_a_phi_hit_costs_one_statement_its_record(shell: Shell, db_url: str, conn: Conn,
                                                  ctx: ExecutionContext,
                                                  make_student: Any) -> None:
    """Outside a unit of work a PHI hit sends exactly one statement, the INSERT of its record
    (autocommit: durable when it returns) — no BEGIN, COMMIT or context statement around it."""
    s = make_student()
    mem = memory()
    get, calls = shell.reader(mem)
    if shell.is_async:
        recording = shell.run(psycopg.AsyncConnection.connect(
            db_url, autocommit=True, cursor_factory=_AsyncRecorder, **connect_kwargs()))
    else:
        recording = psycopg.connect(db_url, autocommit=True, cursor_factory=_SyncRecorder,
                                    **connect_kwargs())
    try:
        assert get(ctx, s.id, conn=recording) == Success(s)  # the miss: reads PostgreSQL
        _SyncRecorder.sent = []
        assert get(ctx, s.id, conn=recording) == Success(s)  # the hit
        sent = list(_SyncRecorder.sent)
    finally:
        if shell.is_async:
            shell.run(recording.close())
        else:
            recording.close()
    assert calls == [1]
    assert len(sent) == 1 and sent[0].lstrip().upper().startswith("INSERT INTO AUDIT_LOG")
    assert len(cache_hits(audit_rows(conn, ctx.request_id, "Student"))) == 1


def _sent_by(shell: Shell, db_url: str, read: Callable[..., Any], ctx: ExecutionContext,
             sid: Any, times: int) -> tuple[list[Any], list[list[str]]]:
    """``read(conn, ctx, sid)`` ``times`` times on a new recording connection of the shell: the
    answers, and the statements each call sent."""
    recording: Any
    if shell.is_async:
        recording = shell.run(psycopg.AsyncConnection.connect(
            db_url, autocommit=True, cursor_factory=_AsyncRecorder, **connect_kwargs()))
    else:
        recording = psycopg.connect(db_url, autocommit=True, cursor_factory=_SyncRecorder,
                                    **connect_kwargs())
    answers: list[Any] = []
    sent: list[list[str]] = []
    try:
        for _ in range(times):
            _SyncRecorder.sent = []
            got = read(recording, ctx, sid)
            answers.append(shell.run(got) if shell.is_async else got)
            sent.append(list(_SyncRecorder.sent))
    finally:
        if shell.is_async:
            shell.run(recording.close())
        else:
            recording.close()
    return answers, sent


def _riding(statements: list[str]) -> bool:
    """A read with its audit record riding in it (after the context statements, if any)."""
    return (bool(statements) and statements[-1].lstrip().startswith("WITH")
            and "INSERT INTO audit_log" in statements[-1]
            and not any("audit_log" in x or '"students"' in x for x in statements[:-1]))


def test_an_audited_by_id_read_is_served_from_memory_only(
        shell: Shell, backend: Any, db_url: str, conn: Conn, ctx: ExecutionContext,
        make_student: Any) -> None:
    """wxdata's own by-id read, cached, with its disclosure recorded: its record rides in its one
    statement, so a hit (which owes the same durable record in a statement of its own) pays only
    where it saves that lookup without a round trip: in process memory. From Redis or a tiered
    cache it would cost a Redis round trip more than the read, so the call goes to PostgreSQL,
    neither looked up nor filled; with the audit off the same backend serves it again."""
    from wxdata import config

    s = make_student()
    c = shell.wrap(backend)
    read = (acache.cached(STUDENTS, cache=c)(astudents.find_by_id) if shell.is_async
            else cached(STUDENTS, cache=c)(students.find_by_id))
    answers, sent = _sent_by(shell, db_url, read, ctx, s.id, 3)
    assert answers == [Success(s)] * 3
    rows = audit_rows(conn, ctx.request_id, "Student")
    assert [r[0] for r in rows] == ["READ"] * 3  # every disclosure recorded, either way
    counts = backend.counters.raw().get("Student", {})
    if backend.name == "memory":
        assert [_riding(x) for x in sent] == [True, False, False]  # a miss, then two hits
        assert all(len(x) == 1 and x[0].lstrip().upper().startswith("INSERT INTO AUDIT_LOG")
                   for x in sent[1:])  # each hit: its record, alone
        assert len(cache_hits(rows)) == 2 and counts.get("bypasses", 0) == 0
        return
    assert [_riding(x) for x in sent] == [True, True, True] and cache_hits(rows) == []
    assert counts.get("bypasses") == 3
    previous = config.configure(attrs.evolve(config.settings(), audit_enabled=False))
    try:  # nothing was filled while audited: a miss first, then Redis serves
        answers, sent = _sent_by(shell, db_url, read, ctx, s.id, 2)
    finally:
        config.configure(previous)
    assert answers == [Success(s)] * 2
    assert 'FROM "students"' in sent[0][-1] and not any("audit_log" in x for x in sent[0])
    assert sent[1] == []


def test_a_break_glass_hit_is_recorded_whatever_the_entity(
        shell: Shell, backend: Any, conn: Conn, ctx: ExecutionContext,
        school: dict[str, Any]) -> None:
    """A break-glass read is recorded PHI or not (emergency access is accounted for in full),
    and so is its cache hit: served from any backend, each call leaves its CRITICAL READ."""
    from wxdata.aio.domains import organisation as aorganisation
    from wxdata.domains.organisation import schools

    urgent = ctx.break_glass("Anaphylaxis in the gym, the school nurse is away")
    get, calls = shell.reader(backend, entity=SCHOOLS, find=schools.find_by_id,
                              afind=aorganisation.schools.find_by_id)
    first, second = get(urgent, school["school_id"]), get(urgent, school["school_id"])
    assert isinstance(first, Success) and second == first and calls == [1]  # a miss, then a hit
    rows = conn.execute(
        "SELECT action, severity, entity_id, metadata FROM audit_log WHERE request_id = %s "
        "ORDER BY seq", (urgent.request_id,)).fetchall()
    assert [r[:3] for r in rows] == [("READ", "CRITICAL", school["school_id"])] * 2
    assert len(cache_hits([(r[0], r[3]) for r in rows])) == 1
    # the same reads without breaking the glass are not recorded: schools are not PHI
    plain = attrs.evolve(ctx, request_id=f"req-plain-{uuid.uuid4().hex[:8]}")
    assert get(plain, school["school_id"]) == first
    assert audit_rows(conn, plain.request_id, "School") == []


def test_an_audited_by_id_read_is_served_from_any_backend_under_audited(
        backend: Any, db_url: str, conn: Conn, ctx: ExecutionContext,
        make_student: Any) -> None:
    """Under ``audited`` the decorator writes the call's one record and the cache none: a hit
    then saves the whole read, and every backend serves it."""
    from wxdata.audit import audited
    from wxdata.audit.record import AuditAction

    s = make_student()
    read = cached(STUDENTS, cache=backend)(students.find_by_id)

    @audited(STUDENTS, AuditAction.READ)
    def recorded(c: Conn, x: ExecutionContext, sid: Any) -> Result[Any, DataError]:
        return read(c, x, sid)  # type: ignore[no-any-return]

    shell = Shell("sync", db_url)
    try:
        answers, sent = _sent_by(shell, db_url, recorded, ctx, s.id, 2)
    finally:
        shell.close()
    assert answers == [Success(s)] * 2
    assert any('FROM "students"' in x for x in sent[0])  # the miss reads the row
    assert sent[1] and not any('FROM "students"' in x for x in sent[1])  # the hit does not
    assert [r[0] for r in audit_rows(conn, ctx.request_id, "Student")] == ["READ", "READ"]
    assert backend.counters.raw().get("Student", {}).get("bypasses", 0) == 0


@pytest.fixture(params=["redis", "tiered"])
def remote(request: pytest.FixtureRequest, redis_url: str, namespace: str) -> Iterator[Any]:
    """A backend outside the process (a lookup is a round trip)."""
    if request.param == "redis":
        cache: Any = redis_backend(redis_url, namespace, timeout=1.0)
    else:
        cache = tiered(redis_url, namespace, timeout=1.0)
    subscribe(cache)
    yield cache
    unsubscribe(cache)
    cache.close()


@pytest.mark.parametrize("hit_dearer", [True, False], ids=["hit-dearer", "hit-cheaper"])
def test_a_recorded_hit_is_served_only_while_measured_cheaper_than_the_call(
        shell: Shell, remote: Any, conn: Conn, ctx: ExecutionContext, make_student: Any,
        hit_dearer: bool) -> None:
    """A hit from outside the process that owes its record is weighed against the call it
    replaces: measured dearer, the function runs instead (a miss that stores nothing) but for one
    call in an interval (:func:`~wxdata.cache.costs.explore_interval`: the longest, the two ways
    being far apart), which looks up again; measured cheaper, the hit is served but for one call
    in that interval. Whichever way a call takes, it returns the same value and leaves exactly one
    READ record."""
    from wxdata.cache.costs import WARM, explore_interval

    s = make_student()
    get, calls = shell.reader(remote)
    c = shell.cache
    assert get(ctx, s.id) == Success(s)  # a miss: the call is measured, its value stored
    costs = shell.decorated.__wxdata_plan__.weighed(c, ctx)
    assert costs is not None and (costs.hits, costs.calls) == (0, 1)
    dear, cheap = 1.0, 1e-6  # seconds: far apart, whatever the real calls below measure
    for _ in range(WARM):
        costs.saw_hit(dear if hit_dearer else cheap)
        costs.saw_call(cheap if hit_dearer else dear)
    n = explore_interval(cheap, dear)
    answers = [get(ctx, s.id) for _ in range(n)]
    assert answers == [Success(s)] * n
    served = n - (calls[0] - 1)
    assert served == (1 if hit_dearer else n - 1)
    rows = audit_rows(conn, ctx.request_id, "Student")
    assert [r[0] for r in rows] == ["READ"] * (1 + n)  # one record per call, either way
    assert len(cache_hits(rows)) == served
    assert remote.counters.raw()["Student"].get("calls_instead", 0) == n - served


def test_a_hit_that_owes_no_record_is_never_weighed(shell: Shell, remote: Any,
                                                    ctx: ExecutionContext,
                                                    make_student: Any) -> None:
    """With the audit off, under ``audited`` (which records the call itself) or with
    ``CACHE_WEIGH_RECORDED_HITS=false``, a hit writes nothing (or is wanted whatever it costs):
    it is served on every call, even where a recorded hit was measured dearer than the call. A
    hit from process memory is never weighed: it adds no round trip to the record."""
    from wxdata import config
    from wxdata.audit.ownership import owning
    from wxdata.cache.costs import WARM

    s = make_student()
    shell.reader(memory())
    assert shell.decorated.__wxdata_plan__.weighed(shell.cache, ctx) is None
    get, calls = shell.reader(remote)
    c = shell.cache
    plan = shell.decorated.__wxdata_plan__
    costs = plan.weighed(c, ctx)
    assert costs is not None
    for _ in range(WARM):  # audited, a hit would not be served
        costs.saw_hit(1.0)
        costs.saw_call(1e-6)
    for change in ({"audit_enabled": False}, {"cache_weigh_recorded_hits": False}):
        previous = config.configure(attrs.evolve(config.settings(), **change))
        try:
            assert plan.weighed(c, ctx) is None
            assert [get(ctx, s.id) for _ in range(3)] == [Success(s)] * 3
        finally:
            config.configure(previous)
    with owning("test", reads=True):
        assert plan.weighed(c, ctx) is None
    assert calls == [1]  # the first call filled the entry; every other one was a hit


def test_a_call_dearer_than_its_recorded_hit_is_served_from_the_cache(
        shell: Shell, remote: Any, conn: Conn, ctx: ExecutionContext,
        make_student: Any) -> None:
    """Timed for real: a function that costs far more than a hit's lookup and record (a 250 ms
    wait before its read) is measured so, and served from the cache but for the calls that keep
    measuring it (at least one in EXPLORE_MAX, at most one in EXPLORE).

    The wait is long enough that no stall of a hit on a loaded host (a durable commit waiting for
    a busy disk) can make the hits' moving average the dearer way: that takes a hit slower than
    eight times the wait (2 s). With a 30 ms wait a single hit stalled for a quarter of a second
    could, and under two test suites at once the calls taken did once exceed the bound."""
    from wxdata.cache.costs import EXPLORE, EXPLORE_MAX, WARM

    wait = 0.25
    s = make_student()
    get, calls = shell.reader(remote, gate=(lambda: asyncio.sleep(wait)) if shell.is_async
                              else (lambda: time.sleep(wait)))
    c = shell.cache
    for _ in range(3 * WARM):
        assert get(ctx, s.id) == Success(s)
    costs = shell.decorated.__wxdata_plan__.weighed(c, ctx)
    assert costs is not None and costs.hits >= WARM and costs.calls >= WARM
    assert costs.hit < costs.call and costs.call >= wait
    before = calls[0]
    assert [get(ctx, s.id) for _ in range(EXPLORE_MAX)] == [Success(s)] * EXPLORE_MAX
    assert 1 <= calls[0] - before <= EXPLORE_MAX // EXPLORE  # the calls measuring it again
    assert len(audit_rows(conn, ctx.request_id, "Student")) == 3 * WARM + EXPLORE_MAX


@pytest.mark.parametrize("kind", ["memory", "redis", "tiered"])
def test_async_cache_from_settings(redis_url: str, db_url: str, sys_ctx: ExecutionContext,
                                   kind: str) -> None:
    import base64
    import os

    from wxdata.cache.policy import CachePolicyError
    from wxdata.config import load_settings

    key = base64.b64encode(os.urandom(32)).decode()
    env = {"CACHE_BACKEND": kind, "REDIS_URL": redis_url, "CACHE_KEY": key,
           "CACHE_ENCRYPT_PHI": "true"}
    if kind != "memory":
        with pytest.raises(CachePolicyError):  # PHI in Redis in clear: refused like the sync one
            acache.build_async_cache(load_settings({**env, "CACHE_ENCRYPT_PHI": "false"}))
    ns = prefix()
    shell = Shell("async", db_url)
    made = acache.build_async_cache(load_settings(env), subscribe_writes=False, prefix=ns,
                                    publish_stats_every=None)
    try:
        expected = {"memory": AsyncMemoryCache, "redis": AsyncRedisCache,
                    "tiered": AsyncTieredCache}[kind]
        assert isinstance(made, expected) and made.accepts_sensitive
        if isinstance(made, AsyncTieredCache):
            assert made.sync.bus.wait_ready(5)
        calls = [0]

        @acache.cached(SCHOOLS, key=lambda conn, ctx, i: by_id(i), cache=made,
                       unkeyed=("calls",))
        async def read(conn: Any, ctx: ExecutionContext, i: Any) -> Result[Any, DataError]:
            calls[0] += 1
            return Success(())

        fixed = uuid.uuid4()
        for _ in range(3):
            assert shell.run(read(shell.aconn, sys_ctx, fixed)) == Success(())
        assert calls == [1] and made.stats().entities["School"].hits == 2
    finally:
        assert made is not None
        shell.run(made.aclose())
        shell.close()
        wipe(redis_url, ns)


def test_async_redis_on_every_topology(db_url: str, topology_url: str, conn: Conn,
                                       ctx: ExecutionContext, make_student: Any) -> None:
    """One server, Cluster and Sentinel URLs: async hits, guarded fills and invalidation after
    COMMIT through ``redis.asyncio`` clients on the same key layout as the sync backend."""
    s = make_student(grade="5")
    ns = prefix()
    shell = Shell("async", db_url)
    cache = redis_backend(topology_url, ns, timeout=2.0)
    cache.test_url = topology_url  # type: ignore[attr-defined]
    subscribe(cache)
    try:
        get, calls = shell.reader(cache)
        assert get(ctx, s.id) == Success(s) and get(ctx, s.id) == Success(s) and calls == [1]
        assert cache.stats().entities["Student"].hits_redis == 1
        with unit_of_work(conn, ctx):
            students.update(conn, ctx, s.id, {"grade": "6"})
        assert get(ctx, s.id).unwrap().grade == "6" and calls == [2]
        assert get(ctx, s.id).unwrap().grade == "6" and calls == [2]
    finally:
        unsubscribe(cache)
        shell.close()
        cache.close()
        wipe(topology_url, ns)


def test_unprovable_identities_are_refused_at_decoration_in_both_shells(shell: Shell) -> None:
    from wxdata.cache.identity import UnprovableIdentity

    decorate = acache.cached if shell.is_async else cached
    seen: list[Any] = []  # mutable state a result could depend on

    def body(conn: Any, ctx: ExecutionContext, i: Any) -> Result[Any, DataError]:
        return Success(tuple(seen))

    async def abody(conn: Any, ctx: ExecutionContext, i: Any) -> Result[Any, DataError]:
        return Success(tuple(seen))

    with pytest.raises(UnprovableIdentity):
        decorate(SCHOOLS, cache=shell.wrap(memory()))(abody if shell.is_async else body)
    with pytest.raises(ValueError, match="unkeyed"):  # a typo cannot silently exempt nothing
        decorate(SCHOOLS, cache=shell.wrap(memory()), unkeyed=("sene",))(
            _anothing if shell.is_async else _nothing)


def test_redis_down_reads_come_from_postgresql(shell: Shell, ctx: ExecutionContext,
                                               make_student: Any) -> None:
    """A Redis fault never fails a read: counted, the breaker opens, PostgreSQL answers."""
    s = make_student()
    dead = "redis://127.0.0.1:1/0"
    cache = redis_backend(dead, prefix(), timeout=0.2)
    cache.test_url = dead  # type: ignore[attr-defined]
    try:
        get, calls = shell.reader(cache)
        for _ in range(3):
            assert get(ctx, s.id) == Success(s)
        assert calls == [3]
        counts = cache.stats().entities["Student"]
        assert counts.errors >= 1 and counts.hits == 0
    finally:
        cache.close()
