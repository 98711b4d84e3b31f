"""Redis backend against a real Redis: protocol, guarded fills, tag sets, SCAN only, sealing."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from returns.result import Success

from tests.cache_support import prefix, redis_backend, wipe
from tests.conftest import RedisServer
from wxdata.cache.backends.base import MISS, CacheManager, Miss
from wxdata.cache.backends.redis import RedisCache, make_client


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    ns = prefix()
    yield ns
    wipe(redis_url, ns)


@pytest.fixture
def cache(redis_url: str, namespace: str) -> Iterator[RedisCache]:
    c = redis_backend(redis_url, namespace)
    yield c
    c.close()


def raw(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def test_protocol_operations(cache: RedisCache, redis_url: str, namespace: str) -> None:
    assert isinstance(cache, CacheManager)
    k1, k2 = f"{namespace}:school:list:1", f"{namespace}:school:list:2"
    assert cache.set(k1, {"a": 1}, ttl=30) and cache.get(k1) == {"a": 1}
    ttl_ms = raw(redis_url).pttl(k1)
    assert 25_000 < ttl_ms <= 30_000
    cache.mset([(k2, (1, 2), 60.0)])
    assert cache.mget([k1, k2, f"{namespace}:school:list:3"]) == [{"a": 1}, (1, 2), MISS]
    assert cache.exists(k1) and cache.delete(k1) and not cache.exists(k1)
    cache.set(f"{namespace}:school:x:1", 1)
    cache.set(f"{namespace}:student:x:1", 1)
    assert cache.delete_pattern(f"{namespace}:school:*") == 2
    assert cache.get(f"{namespace}:student:x:1") == 1
    with pytest.raises(ValueError, match="pattern"):
        cache.delete_pattern("*")
    cache.clear()
    assert cache.get(f"{namespace}:student:x:1") is MISS


def test_guarded_fill_and_tag_invalidation(cache: RedisCache, redis_url: str,
                                           namespace: str) -> None:
    tag = cache.keys.tag_id("row:Student:1")
    other = cache.keys.tag_id("entity:School")
    k = f"{namespace}:student:id:{'a' * 64}"
    miss = cache.lookup(k, "Student", True)
    assert isinstance(miss, Miss)
    cache.invalidate([tag])  # a writer committed while we were reading PostgreSQL
    assert not cache.fill(k, "old", ttl=60, tag_ids=[tag], token=miss.token, entity="Student",
                          sensitive=True)
    assert raw(redis_url).exists(k) == 0
    fresh = cache.lookup(k, "Student", True)
    assert cache.fill(k, "new", ttl=60, tag_ids=[tag, other], token=fresh.token,
                      entity="Student", sensitive=True)
    assert cache.lookup(k, "Student", True) == Success("new")
    assert raw(redis_url).sismember(cache.tag_set_key(tag), k)
    assert cache.invalidate([other]) == 1
    assert raw(redis_url).exists(k) == 0
    s = cache.stats()
    assert s.entities["Student"].stale_fills_refused == 1 and s.entities["Student"].hits == 1


def test_sensitive_values_are_encrypted_and_refused_without_encryption(
        cache: RedisCache, redis_url: str, namespace: str) -> None:
    k = f"{namespace}:student:id:{'b' * 64}"
    value = {"first_name": "Zebulon", "diagnosis": "Asthma"}
    assert cache.set(k, value, sensitive=True)
    stored = raw(redis_url).get(k)
    assert stored is not None and stored.startswith(b"E") and b"Zebulon" not in stored
    assert b"Asthma" not in stored
    plain = redis_backend(redis_url, namespace, encrypt=False)
    try:
        assert not plain.accepts_sensitive
        assert not plain.set(f"{namespace}:student:id:{'c' * 64}", value, sensitive=True)
        assert plain.stats().total.not_cacheable == 1
    finally:
        plain.close()


def test_corrupt_and_foreign_entries_are_misses_counted_and_removed(
        cache: RedisCache, redis_url: str, namespace: str) -> None:
    r = raw(redis_url)
    garbage = f"{namespace}:school:list:{'d' * 64}"
    r.set(garbage, b"\x00garbage\xff")
    assert isinstance(cache.lookup(garbage, "School", False), Miss)
    assert r.exists(garbage) == 0
    foreign = redis_backend(redis_url, namespace, secret=os.urandom(32))
    try:
        k = f"{namespace}:student:id:{'e' * 64}"
        foreign.set(k, {"x": 1}, sensitive=True)  # sealed under another CACHE_KEY
        assert isinstance(cache.lookup(k, "Student", True), Miss)
    finally:
        foreign.close()
    truncated = f"{namespace}:school:list:{'f' * 64}"
    cache.set(truncated, {"x": 1})
    r.set(truncated, (r.get(truncated) or b"")[:-3])
    assert cache.get(truncated) is MISS
    assert cache.stats().total.errors == 3


def test_never_runs_keys(own_redis: RedisServer) -> None:
    """Pattern deletes, clear and stats use SCAN (KEYS blocks Redis)."""
    c = redis_backend(own_redis.url, "white-cross")
    try:
        for i in range(50):
            c.set(f"white-cross:school:list:{i}", i, tags=[c.keys.tag_id("entity:School")])
        c.delete_pattern("white-cross:school:list:1*")
        c.delete_tag("entity:School")
        c.stats()
        c.clear()
        info: dict[str, Any] = raw(own_redis.url).info("commandstats")
        assert "cmdstat_keys" not in info and "cmdstat_flushdb" not in info
        assert "cmdstat_flushall" not in info and "cmdstat_scan" in info
    finally:
        c.close()


def test_stats_publish_and_shared_counters(cache: RedisCache, namespace: str) -> None:
    k = f"{namespace}:school:list:{'1' * 64}"
    cache.set(k, 1, entity="School")
    cache.lookup(k, "School", False)
    cache.lookup(f"{namespace}:school:list:{'2' * 64}", "School", False)
    cache.publish_stats()
    cache.publish_stats()  # only deltas: publishing twice does not double
    shared = cache.shared_counters()
    assert shared["School"]["hits"] == 1 and shared["School"]["misses"] == 1
    s = cache.stats()
    assert s.keys == 1 and s.entities["School"].keys == 1 and s.memory_bytes > 0


def test_rediss_urls_use_tls() -> None:
    client = make_client("rediss://cache.example:6380/0")
    try:
        assert client.connection_pool.connection_class is redis.SSLConnection
        assert client.connection_pool.connection_kwargs["socket_timeout"] == 0.25
    finally:
        client.close()


def test_unique_namespaces_do_not_interfere(redis_url: str) -> None:
    a, b = prefix(), prefix()
    ca, cb = redis_backend(redis_url, a), redis_backend(redis_url, b)
    try:
        key = uuid.uuid4().hex
        ca.set(f"{a}:school:list:{key}", "a")
        cb.set(f"{b}:school:list:{key}", "b")
        cb.clear()
        assert ca.get(f"{a}:school:list:{key}") == "a"
    finally:
        ca.close()
        cb.close()
        wipe(redis_url, a)
        wipe(redis_url, b)
