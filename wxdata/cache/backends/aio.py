"""Async faces of the backends, for ``async def`` reads (:mod:`wxdata.cache.aio`).

Each async backend wraps the sync backend of the same kind and adds only the I/O that must not
block an event loop; every decision (sealing, decoding, guarded fills, tokens, breaker, counters,
promotion between tiers) is the sync backend's own code:

- :class:`AsyncMemoryCache` — the memory backend as is (it never blocks on I/O: a hit is a dict
  lookup), with single flight across tasks;
- :class:`AsyncRedisCache` — lookups (``GET entry``, then the sequence on a miss) and guarded
  fills (the same Lua script)
  through a ``redis.asyncio`` client, same key layout, envelope and topologies (one server,
  Cluster, Sentinel: :func:`~wxdata.cache.backends.clients.make_async_client`);
- :class:`AsyncTieredCache` — the tiered backend's memory tier, lease and bus, with the Redis tier
  reached through :class:`AsyncRedisCache`.

``lookup`` answers at once when it can (a memory hit, returned as ``Success``) and otherwise
returns a coroutine to await; ``fill`` and ``invalidate`` are coroutines. An invalidation on one
Redis server runs the sync backend's script through the ``redis.asyncio`` client (same keys, same
breaker; a fault owes the same flush); where it must wait for a replica's acknowledgement
(Sentinel, Cluster) it runs the sync backend's invalidation in a worker thread
(``asyncio.to_thread``), which carries that wait. The tiered backend then invalidates its memory
tier (no I/O) and waits for the other processes' acknowledgements in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Coroutine
from typing import Any, TypeVar

from returns.result import Success

from wxdata.cache.backends.base import MISS, Miss
from wxdata.cache.backends.clients import FAULTS
from wxdata.cache.backends.memory import MemoryCache
from wxdata.cache.backends.redis import (
    _FILL,
    _INVALIDATE,
    INVALIDATE_CHUNK,
    TAG_RECORD_TTL,
    RedisCache,
    RedisUnavailable,
)
from wxdata.cache.backends.tiered import TieredCache
from wxdata.cache.flights import TaskFlights
from wxdata.cache.keys import KeyBuilder
from wxdata.cache.stats import CacheStats, Counters

T = TypeVar("T")

__all__ = ["AsyncCache", "AsyncMemoryCache", "AsyncRedisCache", "AsyncTieredCache"]


class AsyncMemoryCache:
    """The memory backend for async callers (single flight across tasks)."""

    name = "memory"

    def __init__(self, memory: MemoryCache) -> None:
        self.sync = memory
        self.keys: KeyBuilder = memory.keys
        self.counters: Counters = memory.counters
        self.default_ttl = memory.default_ttl
        self.flights = TaskFlights()

    @property
    def accepts_sensitive(self) -> bool:
        """As the memory backend: PHI never leaves the process."""
        return True

    @property
    def local(self) -> bool:
        """A hit never leaves the process."""
        return True

    def lookup(self, key: str, entity: str, sensitive: bool) -> Any:
        """``Success(value)`` or a :class:`Miss` (never needs awaiting)."""
        return self.sync.lookup(key, entity, sensitive)

    async def fill(self, key: str, value: Any, *, ttl: float, tag_ids: Collection[str],
                   token: Any, entity: str, sensitive: bool) -> bool:
        """The memory backend's guarded fill."""
        return self.sync.fill(key, value, ttl=ttl, tag_ids=tag_ids, token=token, entity=entity,
                              sensitive=sensitive)

    async def invalidate(self, tag_ids: Collection[str]) -> int:
        """Invalidate tags now (no I/O)."""
        return self.sync.invalidate(tag_ids)

    def stats(self) -> CacheStats:
        """The memory backend's stats."""
        return self.sync.stats()

    async def aclose(self) -> None:
        """Stop receiving write events."""
        self.sync.close()


class AsyncRedisCache:
    """The Redis backend with its lookups and fills through a ``redis.asyncio`` client."""

    name = "redis"

    def __init__(self, redis: RedisCache, client: Any) -> None:
        self.sync = redis
        self.client = client
        self.keys: KeyBuilder = redis.keys
        self.counters: Counters = redis.counters
        self.default_ttl = redis.default_ttl
        self.flights = TaskFlights()

    @property
    def accepts_sensitive(self) -> bool:
        """PHI/FERPA values only when they are encrypted."""
        return self.sync.accepts_sensitive

    @property
    def local(self) -> bool:
        """A hit is a round trip to Redis."""
        return False

    async def _run(self, entity: str, op: Callable[[], Awaitable[T]]) -> T:
        """One operation through the shared breaker; faults become RedisUnavailable (counted).

        While the process owes a flush (an invalidation that did not reach Redis) the flush is
        paid first, in a worker thread, or Redis is not used at all.
        """
        core = self.sync
        core.admit(entity)
        if core.in_debt:
            await asyncio.to_thread(core.pay_debt)
        try:
            result = await op()
        except FAULTS as exc:
            raise core.fault(entity, exc) from None
        core.succeeded()
        return result

    async def lookup_entry(self, key: str, entity: str, sensitive: bool) -> Any:
        """``(value, tag ids, expires at)`` or a Miss with the sequence; faults raise."""
        core = self.sync
        rkey = core.layout.entry(key)
        if core.in_debt or not core.breaker.allow():
            blob = await self._run(entity, lambda: self.client.get(rkey))
        else:  # the per-hit path: :meth:`_run` without a closure or a coroutine of its own
            try:
                blob = await self.client.get(rkey)
            except FAULTS as exc:
                raise core.fault(entity, exc) from None
            core.succeeded()
        entry = None
        if blob is not None:
            entry = core.decode(key, blob, sensitive, entity)
            if entry is MISS:  # unreadable (counted): drop it
                with contextlib.suppress(*FAULTS):
                    await self.client.unlink(rkey)
        if core.hit(entry, entity):
            return entry
        seq_key = core.token_key(key)
        return core.missed(await self._run(entity, lambda: self.client.get(seq_key)), entity)

    async def _lookup(self, key: str, entity: str, sensitive: bool) -> Any:
        try:
            entry = await self.lookup_entry(key, entity, sensitive)
        except RedisUnavailable:
            self.counters.add(entity, "misses")
            return Miss(None)
        if isinstance(entry, Miss):
            return entry
        return Success(entry[0])

    def lookup(self, key: str, entity: str, sensitive: bool) -> Coroutine[Any, Any, Any]:
        """A coroutine: ``Success(value)``, or a Miss with the sequence (``Miss(None)``: fault)."""
        return self._lookup(key, entity, sensitive)

    async def fill_status(self, key: str, value: Any, *, ttl: float, tag_ids: Collection[str],
                          token: Any, entity: str, sensitive: bool) -> str:
        """``stored``, ``stale`` (a tag was invalidated after the token) or ``skipped``."""
        core = self.sync
        blob = core.encode(key, value, sensitive, entity, tag_ids, ttl)
        if blob is None or token is None:
            return "skipped"
        keys, args = core.fill_args(key, blob, ttl, tag_ids, token)
        try:
            stored = await self._run(entity, lambda: _FILL.acall(self.client, keys, args))
        except RedisUnavailable:
            return "skipped"
        return core.fill_outcome(stored, entity)

    async def fill(self, key: str, value: Any, *, ttl: float, tag_ids: Collection[str],
                   token: Any, entity: str, sensitive: bool) -> bool:
        """Guarded store (one script); False if refused, not cacheable or Redis failed."""
        return await self.fill_status(key, value, ttl=ttl, tag_ids=tag_ids, token=token,
                                      entity=entity, sensitive=sensitive) == "stored"

    async def invalidate(self, tag_ids: Collection[str]) -> int:
        """Invalidate tags through the async client (the sync backend's script and keys); on a
        fault the backend owes a flush, as the sync invalidation does. Where a replica must
        confirm it, the sync invalidation runs in a worker thread."""
        core = self.sync
        if core.confirms_invalidations:
            return await asyncio.to_thread(core.invalidate, list(tag_ids))
        tags = list(dict.fromkeys(tag_ids))
        removed = 0
        for shard in range(core.layout.shards):
            for i in range(0, len(tags), INVALIDATE_CHUNK):
                part = tags[i : i + INVALIDATE_CHUNK]
                try:
                    removed += await self._invalidate_now(core.invalidation_keys(shard, part),
                                                          len(part))
                except RedisUnavailable:
                    core.owe()
                    return removed
        if removed:
            self.counters.add("_", "deletes", removed)
        return removed

    async def _invalidate_now(self, keys: list[str], n: int) -> int:
        """One invalidation script through the breaker (faults raise RedisUnavailable)."""
        args = [n, TAG_RECORD_TTL]
        _, removed = await self._run("_", lambda: _INVALIDATE.acall(self.client, keys, args))
        return int(removed)

    def stats(self) -> CacheStats:
        """The Redis backend's stats (sync: reads Redis)."""
        return self.sync.stats()

    async def aclose(self) -> None:
        """Close the async client, then the sync backend."""
        await self.client.aclose()
        await asyncio.to_thread(self.sync.close)


class AsyncTieredCache:
    """Memory (per process, under the bus's lease) over Redis reached asynchronously."""

    name = "tiered"

    def __init__(self, tiered: TieredCache, redis: AsyncRedisCache) -> None:
        if redis.sync is not tiered.redis:
            raise ValueError("the async Redis tier must wrap the tiered cache's own Redis backend")
        self.sync = tiered
        self.redis = redis
        self.keys: KeyBuilder = tiered.keys
        self.counters: Counters = tiered.counters
        self.default_ttl = tiered.default_ttl
        self.flights = TaskFlights()

    @property
    def accepts_sensitive(self) -> bool:
        """As Redis: PHI/FERPA only when encrypted."""
        return self.sync.accepts_sensitive

    @property
    def local(self) -> bool:
        """A hit may be a round trip to Redis (a miss in this process's memory tier)."""
        return False

    def lookup(self, key: str, entity: str, sensitive: bool) -> Any:
        """A memory hit at once, else a coroutine asking Redis (and promoting its hit)."""
        r1 = self.sync.memory_first(key, entity, sensitive)
        if type(r1) is Success:
            return r1
        return self._from_redis(key, r1, entity, sensitive)

    async def _from_redis(self, key: str, t1: int | None, entity: str, sensitive: bool) -> Any:
        try:
            r2 = await self.redis.lookup_entry(key, entity, sensitive)
        except RedisUnavailable:
            r2 = None
        return self.sync.from_redis(key, t1, r2, entity, sensitive)

    async def fill(self, key: str, value: Any, *, ttl: float, tag_ids: Collection[str],
                   token: Any, entity: str, sensitive: bool) -> bool:
        """Guarded fill of Redis then memory; True when at least one tier accepted it as fresh."""
        t1, t2 = token
        status = "skipped"
        if t2 is not None:
            status = await self.redis.fill_status(key, value, ttl=ttl, tag_ids=tag_ids,
                                                  token=t2, entity=entity, sensitive=sensitive)
        return self.sync.then_memory(status, key, value, ttl=ttl, tag_ids=tag_ids, t1=t1,
                                     entity=entity, sensitive=sensitive)

    async def invalidate(self, tag_ids: Collection[str]) -> int:
        """Redis (async client), this process's memory, then every other process (their
        acknowledgements awaited in a worker thread)."""
        tags = list(tag_ids)
        removed = await self.redis.invalidate(tags)  # on a fault Redis owes a flush before reuse
        removed += self.sync.memory.invalidate(tags)
        await asyncio.to_thread(self.sync.broadcast_invalidation, tags)
        return removed

    def stats(self) -> CacheStats:
        """The tiered backend's stats."""
        return self.sync.stats()

    async def aclose(self) -> None:
        """Close the async client, then the tiered backend (bus, Redis)."""
        await self.redis.client.aclose()
        await asyncio.to_thread(self.sync.close)


AsyncCache = AsyncMemoryCache | AsyncRedisCache | AsyncTieredCache
