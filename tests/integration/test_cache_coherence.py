"""Coherence, as a hypothesis state machine: two application processes, one Redis, one PostgreSQL.

Run on each Redis topology (``topology_url``): one server, a 3-primary Cluster, Sentinel; and
through both shells: under the async one the reads are ``wxdata.cache.aio.cached`` reads on the
async face of the same tiered backend (its own memory tier and bus, Redis through
``redis.asyncio``) and the writes are ``wxdata.aio`` writes.

Each simulated process has its own tiered cache (its own memory tier and subscriber thread) and
its own connection. Write events are routed to the cache of the process that wrote, as in real
deployments; the other process learns only through Redis pub/sub. After every committed write has
returned, no read in either process may return an older value — through a by-id entry, a list
entry, the memory tier or Redis. Rollbacks and savepoint rollbacks must change nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from returns.result import Result

from tests.cache_support import prefix, tiered, wipe
from tests.shells import parametrise, redis_url_of
from wxdata import ExecutionContext
from wxdata.cache import by_id, cached
from wxdata.cache.invalidation import invalidate_tags, tags_for
from wxdata.db import connect_kwargs
from wxdata.domains import students
from wxdata.errors import DataError
from wxdata.query.paging import Page
from wxdata.schema import STUDENTS
from wxdata.tx import RollbackScope, unit_of_work
from wxdata.tx.events import WriteEvent, add_write_listener, remove_write_listener

Conn = psycopg.Connection[Any]
N_STUDENTS = 3

parametrise(globals())


class Process:
    """One application process: a tiered cache, a connection, and the cached reads."""

    def __init__(self, db_url: str, redis_url: str, namespace: str) -> None:
        # Timeouts and lease generous for a loaded host (CI runs two suites and a pooler side by
        # side): a round trip slower than the client's timeout is a fault, and a memory tier whose
        # lease lapses serves nothing (the coherence rule), so a whole run could otherwise read
        # through Redis alone. No stale read is what is checked; that does not depend on them.
        self.cache = redis_url_of(tiered(redis_url, namespace, lease=5.0, timeout=2.0), redis_url)
        self.conn = psycopg.connect(db_url, autocommit=True, **connect_kwargs())
        cache = self.cache

        @cached(STUDENTS, key=lambda conn, ctx, sid: by_id(sid), cache=cache)
        def one(conn: Conn, ctx: ExecutionContext, sid: Any) -> Result[Any, DataError]:
            return students.find_by_id(conn, ctx, sid)

        @cached(STUDENTS, cache=cache)
        def many(conn: Conn, ctx: ExecutionContext, ids: tuple[Any, ...]) -> Result[
                Page[Any], DataError]:
            return students.find_many(conn, ctx, {"id": {"in": list(ids)}}, order_by=["id"])

        self.one, self.many = one, many

    def close(self) -> None:
        self.conn.close()
        self.cache.close()


@pytest.fixture(autouse=True)
def every_hit_served() -> Iterator[None]:
    """Every hit is served, so that the state machine reads through both tiers whatever the
    host's timing: with the weighing of recorded hits on (``CACHE_WEIGH_RECORDED_HITS``, tested
    in ``test_cache_shells.py``), a hit of a recorded read measured dearer than the read sends the
    call to PostgreSQL without a lookup, and on a loaded host a run could then serve nothing from
    the memory tier at all."""
    from wxdata import config

    previous = config.configure(attrs.evolve(config.settings(), cache_weigh_recorded_hits=False))
    try:
        yield
    finally:
        config.configure(previous)


@pytest.fixture
def world(db_url: str, owner_url: str, topology_url: str, ctx: ExecutionContext,
          make_student: Any) -> Iterator[dict[str, Any]]:
    ns = prefix()
    redis_url = topology_url
    procs = [Process(db_url, redis_url, ns), Process(db_url, redis_url, ns)]
    active = [0]

    def route(event: WriteEvent) -> None:  # events reach only the writing process's cache
        invalidate_tags(procs[active[0]].cache, tags_for(event))

    add_write_listener(route)
    ids = [make_student().id for _ in range(N_STUDENTS)]
    admin = psycopg.connect(owner_url, autocommit=True)  # the committed truth, past any scope
    try:
        yield {"procs": procs, "active": active, "ids": ids, "ctx": ctx, "admin": admin}
    finally:
        admin.close()
        remove_write_listener(route)
        for p in procs:
            p.close()
        wipe(redis_url, ns)


def test_no_stale_reads_across_processes(world: dict[str, Any]) -> None:
    procs: list[Process] = world["procs"]
    active: list[int] = world["active"]
    ids: list[Any] = world["ids"]
    ctx: ExecutionContext = world["ctx"]
    admin: Conn = world["admin"]

    class TwoProcesses(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.committed: dict[Any, tuple[int, str]] = {}
            for sid in ids:  # committed truth at the start of each run
                row = admin.execute("SELECT version, grade FROM students WHERE id = %s",
                                    (sid,)).fetchone()
                assert row is not None
                self.committed[sid] = (row[0], row[1])
            self.counter = 0

        def _grade(self) -> str:
            self.counter += 1
            return str(self.counter % 10)

        def _check(self, row: Any) -> None:
            assert (row.version, row.grade) == self.committed[row.id], (
                f"stale read: {(row.version, row.grade)} != {self.committed[row.id]}")

        @rule(p=st.integers(0, 1), i=st.integers(0, N_STUDENTS - 1))
        def read_one(self, p: int, i: int) -> None:
            active[0] = p
            self._check(procs[p].one(procs[p].conn, ctx, ids[i]).unwrap())

        @rule(p=st.integers(0, 1))
        def read_many(self, p: int) -> None:
            active[0] = p
            page = procs[p].many(procs[p].conn, ctx, tuple(ids)).unwrap()
            assert page.total == len(ids)
            for row in page.data:
                self._check(row)

        @rule(p=st.integers(0, 1), i=st.integers(0, N_STUDENTS - 1))
        def write(self, p: int, i: int) -> None:
            active[0] = p
            grade = self._grade()
            row = students.update(procs[p].conn, ctx, ids[i], {"grade": grade}).unwrap()
            self.committed[ids[i]] = (row.version, row.grade)

        @rule(p=st.integers(0, 1), i=st.integers(0, N_STUDENTS - 1), commit=st.booleans())
        def write_in_unit_of_work(self, p: int, i: int, commit: bool) -> None:
            active[0] = p
            proc = procs[p]
            grade = self._grade()
            row: Any = None
            with unit_of_work(proc.conn, ctx):
                row = students.update(proc.conn, ctx, ids[i], {"grade": grade}).unwrap()
                inside = proc.one(proc.conn, ctx, ids[i]).unwrap()  # bypasses: sees its own write
                assert (inside.version, inside.grade) == (row.version, grade)
                other = procs[1 - p]
                active[0] = 1 - p
                self._check(other.one(other.conn, ctx, ids[i]).unwrap())  # uncommitted: old value
                active[0] = p
                if not commit:
                    raise RollbackScope
            if commit:
                self.committed[ids[i]] = (row.version, row.grade)

        @rule(p=st.integers(0, 1), i=st.integers(0, N_STUDENTS - 1),
              j=st.integers(0, N_STUDENTS - 1))
        def savepoint_rollback(self, p: int, i: int, j: int) -> None:
            active[0] = p
            proc = procs[p]
            kept: Any = None
            with unit_of_work(proc.conn, ctx):
                with unit_of_work(proc.conn, ctx):
                    students.update(proc.conn, ctx, ids[i], {"grade": self._grade()})
                    raise RollbackScope
                if i != j:
                    kept = students.update(proc.conn, ctx, ids[j], {"grade": self._grade()}).unwrap()
            if kept is not None:
                self.committed[ids[j]] = (kept.version, kept.grade)

        @rule(p=st.integers(0, 1))
        def forget_memory_tier(self, p: int) -> None:
            procs[p].cache.memory.reset()  # e.g. evicted: the next hit comes from Redis

        @invariant()
        def acknowledged(self) -> None:
            for proc in procs:
                assert proc.cache.bus.timeouts == 0

    run_state_machine_as_test(
        TwoProcesses,
        settings=settings(max_examples=12, stateful_step_count=25, deadline=None,
                          suppress_health_check=list(HealthCheck)),
    )
    hits = [p.cache.stats().total for p in procs]
    assert sum(h.hits for h in hits) > 0 and sum(h.hits_memory for h in hits) > 0
    assert sum(h.hits_redis for h in hits) > 0  # the shared tier served reads too
    assert sum(h.errors for h in hits) == 0  # no fault hid behind a fallback to the database


@pytest.mark.sync_only  # the process cache's registration, no data call to run on a shell
def test_a_process_cache_put_back_is_invalidated_again() -> None:
    from wxdata.cache import configure_cache, using_cache
    from wxdata.cache.backends.memory import MemoryCache
    from wxdata.cache.invalidation import subscribed
    from wxdata.cache.keys import KeyBuilder

    mine = MemoryCache(KeyBuilder(b"k" * 32), max_size=10, default_ttl=60)
    with using_cache(mine):
        assert mine in subscribed()
        configure_cache(None, close_previous=False)  # caching off: it stops receiving events
        assert mine not in subscribed()
        configure_cache(mine, close_previous=False)  # put back: receives them again
        assert mine in subscribed()
    assert mine not in subscribed()
