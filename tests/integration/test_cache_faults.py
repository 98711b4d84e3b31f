"""Faults: Redis down, killed mid-workload, paused (timeouts) or full of garbage never fail a read.

Every test runs its own redis-server (the shared one is never stopped). Waits for recovery are
bounded polls, not timing assertions.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import psycopg
import pytest
import redis
from returns.result import Success

from tests.cache_support import poll, reader, redis_backend, tiered
from tests.conftest import RedisServer
from wxdata import ExecutionContext
from wxdata.cache.backends.redis import CircuitBreaker
from wxdata.cache.invalidation import subscribe, unsubscribe
from wxdata.domains import students

Conn = psycopg.Connection[Any]


@pytest.fixture
def server(own_redis: RedisServer) -> RedisServer:
    return own_redis


def test_redis_never_reachable(conn: Conn, ctx: ExecutionContext, make_student: Any) -> None:
    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cache = redis_backend(f"redis://127.0.0.1:{port}/0", "white-cross")
    subscribe(cache)
    try:
        s = make_student()
        get, calls = reader(cache)
        for _ in range(5):
            assert get(conn, ctx, s.id) == Success(s)
        assert calls[0] == 5
        assert students.update(conn, ctx, s.id, {"grade": "6"}).unwrap().grade == "6"
        assert get(conn, ctx, s.id).unwrap().grade == "6"
        stats = cache.stats().total
        assert stats.errors >= 1 and stats.errors + stats.unavailable >= 5 and stats.hits == 0
        assert cache.in_debt  # the invalidation it could not deliver is owed
    finally:
        unsubscribe(cache)
        cache.close()


def test_killed_mid_workload_then_restarted(server: RedisServer, conn: Conn, ctx: ExecutionContext,
                                            make_student: Any) -> None:
    cache = redis_backend(server.url, "white-cross",
                          breaker=CircuitBreaker(cooldown=0.05, max_cooldown=0.2))
    subscribe(cache)
    try:
        s = make_student()
        get, calls = reader(cache)
        get(conn, ctx, s.id)
        get(conn, ctx, s.id)
        assert calls[0] == 1
        server.stop()
        for _ in range(10):
            assert get(conn, ctx, s.id) == Success(s)  # PostgreSQL serves every read
        assert calls[0] == 11
        assert cache.stats().total.errors >= 1
        server.start()
        get(conn, ctx, s.id)  # refills once the breaker lets a probe through
        assert poll(lambda: get(conn, ctx, s.id) == Success(s) and cache.stats().total.hits >= 2)
    finally:
        unsubscribe(cache)
        cache.close()


def test_paused_redis_times_out_and_a_missed_invalidation_flushes(
        server: RedisServer, conn: Conn, ctx: ExecutionContext, make_student: Any) -> None:
    """Redis alive but unresponsive (data kept): the write's invalidation cannot be delivered, so
    the cache flushes the namespace before using Redis again — no stale value after recovery."""
    cache = redis_backend(server.url, "white-cross", timeout=0.1,
                          breaker=CircuitBreaker(cooldown=0.05, max_cooldown=0.2))
    subscribe(cache)
    admin = redis.Redis.from_url(server.url)
    try:
        s = make_student(grade="5")
        get, calls = reader(cache)
        get(conn, ctx, s.id)
        assert get(conn, ctx, s.id).unwrap().grade == "5" and calls[0] == 1
        admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        started = time.monotonic()
        assert students.update(conn, ctx, s.id, {"grade": "6"}).unwrap().grade == "6"
        assert get(conn, ctx, s.id).unwrap().grade == "6"  # timeout -> PostgreSQL
        assert cache.in_debt and cache.stats().total.errors >= 1
        while time.monotonic() - started < 1.6:
            time.sleep(0.05)  # let the pause end (the stale entry is still in Redis)
        assert poll(lambda: get(conn, ctx, s.id).unwrap().grade == "6" and not cache.in_debt)
        for _ in range(3):
            assert get(conn, ctx, s.id).unwrap().grade == "6"
        assert poll(lambda: cache.stats().total.hits >= 2 and
                    get(conn, ctx, s.id).unwrap().grade == "6")
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
        unsubscribe(cache)
        cache.close()


def test_garbage_entries_are_misses(server: RedisServer, conn: Conn, ctx: ExecutionContext,
                                    make_student: Any) -> None:
    cache = redis_backend(server.url, "white-cross")
    admin = redis.Redis.from_url(server.url)
    try:
        people = [make_student() for _ in range(3)]
        get, calls = reader(cache)
        for p in people:
            get(conn, ctx, p.id)
        for key in admin.scan_iter(match="white-cross:student:*"):
            admin.set(key, b"E\x01garbage-that-is-not-a-sealed-entry")
        for p in people:
            assert get(conn, ctx, p.id) == Success(p)
        assert calls[0] == 6 and cache.stats().total.errors == 3
        for p in people:
            assert get(conn, ctx, p.id) == Success(p)
        assert calls[0] == 6  # refilled with good entries
    finally:
        admin.close()
        cache.close()


def test_tiered_survives_redis_death_and_stops_serving_memory(
        server: RedisServer, conn: Conn, ctx: ExecutionContext, make_student: Any) -> None:
    cache = tiered(server.url, "white-cross", lease=0.5, ping_every=0.05, timeout=0.1,
                   breaker=CircuitBreaker(cooldown=0.05, max_cooldown=0.2))
    subscribe(cache)
    try:
        s = make_student()
        get, calls = reader(cache)
        get(conn, ctx, s.id)
        get(conn, ctx, s.id)
        assert calls[0] == 1 and cache.memory.stats().total.hits_memory == 1
        server.stop()
        assert poll(lambda: not cache.bus.lease_valid())  # no subscription, no memory tier
        before = calls[0]
        for _ in range(5):
            assert get(conn, ctx, s.id) == Success(s)
        assert calls[0] == before + 5
        assert students.update(conn, ctx, s.id, {"grade": "7"}).unwrap().grade == "7"
        server.start()
        assert poll(cache.bus.lease_valid)
        assert poll(lambda: get(conn, ctx, s.id).unwrap().grade == "7" and
                    cache.memory.stats().total.hits_memory >= 2)
    finally:
        unsubscribe(cache)
        cache.close()


def test_breaker_states() -> None:
    now = [0.0]
    b = CircuitBreaker(cooldown=1.0, max_cooldown=4.0, clock=lambda: now[0])
    assert b.allow() and b.state == "closed"
    b.failure()
    assert not b.allow() and b.state == "open"
    now[0] = 1.01
    assert b.allow() and b.state == "half-open" and not b.allow()  # one probe at a time
    b.failure()
    now[0] = 2.5
    assert not b.allow()  # cool-down doubled
    now[0] = 3.1
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow() and b.opened == 1


def test_concurrent_reads_during_an_outage_all_succeed(server: RedisServer, db_url: str,
                                                       ctx: ExecutionContext,
                                                       make_student: Any) -> None:
    cache = redis_backend(server.url, "white-cross", timeout=0.1)
    s = make_student()
    get, _ = reader(cache)
    server.stop()
    results: list[Any] = []

    def worker() -> None:
        with psycopg.connect(db_url, autocommit=True) as c:
            for _ in range(5):
                results.append(get(c, ctx, s.id))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cache.close()
    assert results == [Success(s)] * 40


def test_an_owed_invalidation_is_paid_without_waiting_for_the_next_use(server: RedisServer) -> None:
    """Other processes may read what a lost invalidation should have removed only until Redis is
    reachable again from the owing process, not until that process happens to use the cache."""
    cache = redis_backend(server.url, "white-cross", timeout=0.1,
                          breaker=CircuitBreaker(cooldown=0.05, max_cooldown=0.2))
    admin = redis.Redis.from_url(server.url)
    try:
        tag = cache.keys.tag_id("row:Student:1")
        key = f"white-cross:student:1:{'a' * 64}"
        assert cache.set(key, "old", tags=[tag], entity="Student")
        admin.execute_command("CLIENT", "PAUSE", "600", "ALL")
        cache.invalidate([tag])  # times out: owed
        assert cache.in_debt
        assert poll(lambda: admin.exists(key) == 0 and not cache.in_debt)  # no cache call here
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
        cache.close()
