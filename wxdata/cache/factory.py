"""Building caches from settings, and the process-wide default cache ``cached`` uses.

``build_cache(settings)`` honours ``CACHE_ENABLED`` (off: ``None``, every ``cached`` call goes
straight to the function), ``CACHE_BACKEND`` (memory | redis | tiered), ``CACHE_DEFAULT_TTL``,
``CACHE_MAX_SIZE`` (entries in the memory tier), ``CACHE_ENCRYPT_PHI``, ``CACHE_KEY`` and
``REDIS_URL`` (one server, a Redis Cluster or Sentinel: :mod:`wxdata.redis_url`), and refuses
(``CachePolicyError``) a Redis or tiered cache that would hold PHI unencrypted. Call
:func:`init_cache` at start-up to surface that error before the first read.

The process cache is built on first use: the first cached read, :func:`init_cache`, or, when the
settings name a cache shared with other processes, the process's first write (so a process that
only writes still invalidates what the others cached).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from wxdata.cache.backends.base import CacheManager
from wxdata.cache.backends.memory import MemoryCache
from wxdata.cache.backends.redis import CircuitBreaker, RedisCache, make_client
from wxdata.cache.backends.tiered import TieredCache
from wxdata.cache.crypto import Envelope, key_hash_key
from wxdata.cache.invalidation import subscribe, unsubscribe
from wxdata.cache.keys import PREFIX, KeyBuilder
from wxdata.cache.policy import CachePolicyError, check_settings
from wxdata.config import Settings, settings
from wxdata.tx.events import owe_listeners


def build_cache(
    config: Settings | None = None,
    *,
    phi: str = "encrypt",
    prefix: str = PREFIX,
    subscribe_writes: bool = True,
    client: Any = None,
    breaker: CircuitBreaker | None = None,
    lease: float = 1.0,
    ping_every: float = 0.2,
    publish_stats_every: float | None = 5.0,
) -> CacheManager | None:
    """A cache for the settings (None when disabled); subscribed to committed writes by default.

    ``phi="bypass"`` (explicit opt-out) lets a Redis/tiered cache run without PHI encryption:
    sensitive reads then never touch the cache.
    """
    config = config or settings()
    check_settings(config, phi=phi)
    if not config.cache_enabled:
        return None
    keys = KeyBuilder(key_hash_key(config.cache_key), prefix)
    ttl = float(config.cache_default_ttl)
    cache: CacheManager
    if config.cache_backend == "memory":
        cache = MemoryCache(keys, max_size=config.cache_max_size, default_ttl=ttl)
    else:
        if config.cache_key is None or config.redis_url is None:  # check_settings refuses it
            raise CachePolicyError("CACHE_KEY and REDIS_URL are required for a Redis cache")
        envelope = Envelope(config.cache_key, encrypt=config.cache_encrypt_phi and phi == "encrypt")
        redis_cache = RedisCache(
            client if client is not None else make_client(config.redis_url), keys, envelope,
            default_ttl=ttl, breaker=breaker, publish_stats_every=publish_stats_every,
        )
        if config.cache_backend == "redis":
            cache = redis_cache
        else:
            memory = MemoryCache(keys, max_size=config.cache_max_size, default_ttl=ttl)
            cache = TieredCache(memory, redis_cache, lease=lease, ping_every=ping_every)
    if subscribe_writes:
        subscribe(cache)
    return cache


_lock = threading.Lock()
_default: list[CacheManager | None] = []


def default_cache() -> CacheManager | None:
    """The process cache built from settings on first use (None when caching is off)."""
    if _default:
        return _default[0]
    with _lock:
        if not _default:
            _default.append(build_cache())
        return _default[0]


def _shared_cache_owed() -> None:
    """Build the process cache, before a write is announced, when none is built and the settings
    name a cache shared with other processes (Redis, tiered).

    A process that only writes (a worker, an import job) never builds its cache on a read; its
    committed writes must still invalidate the entries other processes keep in Redis, or they
    serve the row as it was until the entry expires. A memory cache is the process's own: one
    never built holds nothing to invalidate, so nothing is built for it. An unsafe configuration
    raises here (:class:`CachePolicyError`, logged by the caller without failing the write): a
    process refuses to build a cache on those settings, so no process caches with them.
    """
    if _default:
        return
    config = settings()
    if config.cache_enabled and config.cache_backend != "memory":
        default_cache()


owe_listeners(_shared_cache_owed)


def init_cache(config: Settings | None = None) -> CacheManager | None:
    """Build the process cache now (start-up), raising CachePolicyError on an unsafe configuration."""
    cache = build_cache(config)
    configure_cache(cache)
    return cache


def configure_cache(cache: CacheManager | None, *, close_previous: bool = True) -> CacheManager | None:
    """Replace the process cache (tests, embedding applications); returns the previous one.

    The new cache receives write events (a process cache is never left uninvalidated, also when
    a cache replaced earlier is put back); the one replaced stops receiving them. To replace it
    for a while and put back exactly what was there, use :func:`using_cache`.
    """
    if cache is not None:
        subscribe(cache)
    with _lock:
        previous = _default[0] if _default else None
        _default[:] = [cache]
    if previous is not None and previous is not cache:
        unsubscribe(previous)
        if close_previous:
            previous.close()
    return previous


@contextlib.contextmanager
def using_cache(cache: CacheManager | None, *, close: bool = False) -> Iterator[CacheManager | None]:
    """Make ``cache`` the process cache inside the block (None: caching off); on leaving, put back
    exactly what was there: the cache it replaced, caching off, or no cache built yet (the next use
    builds one from the settings).

    :func:`configure_cache` answers None both when caching was off and when no cache had been
    built, so configuring its answer back after a test can leave caching off for the rest of the
    process; this cannot. ``cache`` receives write events inside the block only, and is closed on
    leaving when ``close``.
    """
    with _lock:
        before = list(_default)
    configure_cache(cache, close_previous=False)
    try:
        yield cache
    finally:
        if before:
            configure_cache(before[0], close_previous=False)
        else:
            reset_default(close_previous=False)
        if cache is not None and cache is not (before[0] if before else None):
            unsubscribe(cache)  # also when the block replaced it with yet another cache
            if close:
                cache.close()


def reset_default(*, close_previous: bool = True) -> None:
    """Forget the process cache (the next use rebuilds it from settings); the one forgotten stops
    receiving write events and is closed unless ``close_previous`` is False."""
    with _lock:
        previous = _default[0] if _default else None
        _default.clear()
    if previous is not None:
        unsubscribe(previous)
        if close_previous:
            previous.close()
