"""Configuration (build_cache honours every CACHE_* setting, refuses PHI in clear) and the CLI."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterator

import pytest

from tests.cache_support import prefix, wipe
from wxdata.cache import (
    CachePolicyError,
    MemoryCache,
    RedisCache,
    TieredCache,
    build_cache,
    configure_cache,
    default_cache,
    reset_default,
)
from wxdata.cache.invalidation import subscribed
from wxdata.cli import main
from wxdata.config import ConfigError, configure, load_settings

KEY = base64.b64encode(os.urandom(32)).decode()


def env(redis_url: str, **extra: str) -> dict[str, str]:
    return {"REDIS_URL": redis_url, "CACHE_KEY": KEY, "CACHE_ENCRYPT_PHI": "true", **extra}


def test_memory_settings() -> None:
    cache = build_cache(load_settings({"CACHE_MAX_SIZE": "123", "CACHE_DEFAULT_TTL": "77"}),
                        subscribe_writes=False)
    assert isinstance(cache, MemoryCache) and cache.max_size == 123 and cache.default_ttl == 77
    assert cache.accepts_sensitive
    assert build_cache(load_settings({"CACHE_ENABLED": "false"})) is None


def test_redis_and_tiered_settings(redis_url: str) -> None:
    ns = prefix()
    r = build_cache(load_settings(env(redis_url, CACHE_BACKEND="redis")), prefix=ns,
                    subscribe_writes=False, publish_stats_every=None)
    t = build_cache(load_settings(env(redis_url, CACHE_BACKEND="tiered", CACHE_MAX_SIZE="50")),
                    prefix=ns, subscribe_writes=False, publish_stats_every=None)
    try:
        assert isinstance(r, RedisCache) and r.accepts_sensitive
        assert isinstance(t, TieredCache) and t.memory.max_size == 50 and t.accepts_sensitive
        assert r.keys.tag_id("entity:Student") == t.keys.tag_id("entity:Student")  # same CACHE_KEY
    finally:
        assert r is not None and t is not None
        r.close()
        t.close()
        wipe(redis_url, ns)


def test_refuses_phi_in_redis_without_encryption(redis_url: str) -> None:
    for backend in ("redis", "tiered"):
        no_encryption = load_settings({"REDIS_URL": redis_url, "CACHE_KEY": KEY,
                                       "CACHE_BACKEND": backend})
        with pytest.raises(CachePolicyError, match="CACHE_ENCRYPT_PHI"):
            build_cache(no_encryption)
        with pytest.raises(CachePolicyError, match="CACHE_KEY"):
            build_cache(load_settings({"REDIS_URL": redis_url, "CACHE_BACKEND": backend}))
    assert issubclass(CachePolicyError, ConfigError)
    ns = prefix()
    explicit = build_cache(load_settings({"REDIS_URL": redis_url, "CACHE_KEY": KEY,
                                          "CACHE_BACKEND": "redis"}),
                           phi="bypass", prefix=ns, subscribe_writes=False,
                           publish_stats_every=None)
    assert explicit is not None and not explicit.accepts_sensitive
    explicit.close()


@pytest.fixture
def restore_settings() -> Iterator[None]:
    previous = configure(load_settings({}))
    reset_default()
    yield
    configure(previous)
    reset_default()


def test_default_cache_is_built_once_and_subscribed(restore_settings: None) -> None:
    cache = default_cache()
    assert isinstance(cache, MemoryCache) and default_cache() is cache
    assert cache in subscribed()
    replacement = build_cache(load_settings({}), subscribe_writes=True)
    assert configure_cache(replacement) is cache
    assert cache not in subscribed() and default_cache() is replacement


def test_cli_stats_and_clear(topology_url: str, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    """On every topology: stats count every key (all primaries of a cluster), clear empties them
    and reaches the memory tier of a running process."""
    redis_url = topology_url
    ns = prefix()
    for k, v in env(redis_url, CACHE_BACKEND="redis").items():
        monkeypatch.setenv(k, v)
    cache = build_cache(load_settings(env(redis_url, CACHE_BACKEND="redis")), prefix=ns,
                        subscribe_writes=False, publish_stats_every=None)
    other = build_cache(load_settings(env(redis_url, CACHE_BACKEND="tiered")), prefix=ns,
                        subscribe_writes=False, publish_stats_every=None)
    assert isinstance(cache, RedisCache) and isinstance(other, TieredCache)
    assert other.bus.wait_ready(5)
    try:
        key = f"{ns}:school:list:{'a' * 64}"
        for i in range(29):
            cache.set(f"{ns}:school:{i}:{'c' * 64}", i, entity="School")
        other.memory.set(f"{ns}:school:0:{'c' * 64}", 0)
        cache.set(key, {"x": 1}, entity="School")
        cache.lookup(key, "School", False)
        cache.lookup(f"{ns}:school:list:{'b' * 64}", "School", False)
        cache.publish_stats()
        assert main(["cache", "stats", "--prefix", ns]) == 0
        out = capsys.readouterr().out
        assert "School" in out and "hit rate: 0.500" in out and "keys: 30" in out
        assert main(["cache", "stats", "--json", "--prefix", ns]) == 0
        body = json.loads(capsys.readouterr().out)
        assert body["entities"]["School"]["hits"] == 1 and body["total"]["hit_rate"] == 0.5
        assert body["keys"] == 30
        assert main(["cache", "clear", "--prefix", ns]) == 2
        assert main(["cache", "clear", "--yes", "--prefix", ns]) == 0
        assert "1 process(es) told" in capsys.readouterr().out
        assert cache.get(key) is not None and not cache.exists(key)
        assert cache.stats().keys == 0
        assert poll_until(lambda: other.memory.stats().keys == 0)
    finally:
        other.close()
        cache.close()
        wipe(redis_url, ns)


def poll_until(condition: Callable[[], bool], attempts: int = 400) -> bool:
    """Bounded wait (the CLI's message reaches the other process asynchronously)."""
    for _ in range(attempts):
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_cli_memory_backend_explains(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CACHE_BACKEND", "memory")
    assert main(["cache", "stats"]) == 0
    assert "each application process" in capsys.readouterr().out
