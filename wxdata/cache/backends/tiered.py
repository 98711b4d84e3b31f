"""Two tiers: this process's memory in front of the shared Redis, coherent across processes.

Lookups try memory (only while the process holds its invalidation lease, see
:mod:`wxdata.cache.backends.bus`), then Redis; a Redis hit is promoted into memory with the entry's
own tags and remaining lifetime. A fill is guarded in both tiers by its tokens, and a value Redis
refused as stale is never kept in memory either.

An invalidation is applied in this order: Redis first (so no process can read the old value from
Redis afterwards), then this process's memory (a concurrent local promotion of the old Redis value
carries an older token and is refused or dropped), then broadcast to every other process, waiting
for their acknowledgements or for their leases to run out. When the write's call returns, no tier
of any process can serve the value it replaced.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from returns.result import Success

from wxdata.cache.backends.base import ANY_TAG, MISS, Miss, SingleFlight
from wxdata.cache.backends.bus import InvalidationBus
from wxdata.cache.backends.memory import MemoryCache
from wxdata.cache.backends.redis import RedisCache, RedisUnavailable
from wxdata.cache.stats import CacheStats, Counters, merge, snapshot


class TieredCache:
    """Memory (L1, per process) over Redis (L2, shared), invalidated everywhere before a write returns."""

    name = "tiered"

    def __init__(self, memory: MemoryCache, redis: RedisCache, *, lease: float = 1.0,
                 ping_every: float = 0.2, start: bool = True) -> None:
        if memory.keys is not redis.keys:
            memory.keys = redis.keys  # one key-hashing key: tag ids must match across tiers
        self.memory = memory
        self.redis = redis
        self.keys = redis.keys
        self.counters = Counters()
        self.flights = SingleFlight()
        self.default_ttl = redis.default_ttl
        self.bus = InvalidationBus(redis.raw_client, redis.prefix, on_message=self._apply,
                                   on_reset=memory.reset, lease=lease, ping_every=ping_every,
                                   base=redis.layout.bus_base)
        redis.on_recovered = self._recovered
        redis.stats_source = self._raw
        if start:
            self.bus.start()

    @property
    def accepts_sensitive(self) -> bool:
        """As Redis: PHI/FERPA only when encrypted."""
        return self.redis.accepts_sensitive

    @property
    def local(self) -> bool:
        """A hit may be a round trip to Redis (a miss in this process's memory tier)."""
        return False

    def _raw(self) -> dict[str, dict[str, int]]:
        return merge([self.memory.raw_counters(), self.redis.counters.raw(), self.counters.raw()])

    # --- messages from other processes ------------------------------------------------------

    def _apply(self, body: Mapping[str, Any]) -> None:
        if body.get("c"):
            self.memory.reset()
            return
        tags = body.get("t")
        if tags:
            self.memory.invalidate([str(t) for t in tags])
        keys = body.get("k")
        if keys:
            self.memory.drop_keys(str(k) for k in keys)
        pattern = body.get("p")
        if pattern:
            self.memory.drop_pattern(str(pattern))

    def _recovered(self) -> None:
        """Redis flushed after a missed invalidation: empty every memory tier too."""
        self.memory.reset()
        self.bus.broadcast({"c": True})

    # --- decorator face -------------------------------------------------------------------

    def lookup(self, key: str, entity: str, sensitive: bool) -> Any:
        """``Success`` from memory (with a lease) or Redis; a Miss carries both tiers' tokens."""
        r1 = self.memory_first(key, entity, sensitive)
        if type(r1) is Success:
            return r1
        try:
            r2 = self.redis.lookup_entry(key, entity, sensitive)
        except RedisUnavailable:
            r2 = None
        return self.from_redis(key, r1, r2, entity, sensitive)

    def memory_first(self, key: str, entity: str, sensitive: bool) -> Any:
        """A memory hit (``Success``, only under a lease), else the memory token (None: no lease)."""
        if self.bus.lease_valid():
            r1 = self.memory.lookup(key, entity, sensitive, count_miss=False)
            if type(r1) is not Miss:
                return r1
            return r1.token
        return None

    def from_redis(self, key: str, t1: int | None, r2: Any, entity: str, sensitive: bool) -> Any:
        """The answer from Redis's (``r2``: an entry, a Miss, or None on a fault), promoting a hit
        into memory with its own tags and remaining lifetime."""
        if r2 is None:
            self.counters.add(entity, "misses")
            return Miss((t1, None))
        if isinstance(r2, Miss):
            return Miss((t1, r2.token))
        value, tag_ids, expires = r2
        remaining = expires - time.time()
        if t1 is not None and remaining > 0.5 and self.bus.lease_valid():
            self.memory.fill(key, value, ttl=remaining, tag_ids=tag_ids, token=t1, entity=entity,
                             sensitive=sensitive)
        return Success(value)

    def fill(self, key: str, value: Any, *, ttl: float, tag_ids: Collection[str], token: Any,
             entity: str, sensitive: bool) -> bool:
        """Guarded fill of Redis then memory; True when at least one tier accepted it as fresh."""
        t1, t2 = token
        status = "skipped"
        if t2 is not None:
            status = self.redis.fill_status(key, value, ttl=ttl, tag_ids=tag_ids, token=t2,
                                            entity=entity, sensitive=sensitive)
        return self.then_memory(status, key, value, ttl=ttl, tag_ids=tag_ids, t1=t1,
                                entity=entity, sensitive=sensitive)

    def then_memory(self, status: str, key: str, value: Any, *, ttl: float,
                    tag_ids: Collection[str], t1: int | None, entity: str, sensitive: bool) -> bool:
        """The memory half of a fill, after Redis answered ``status`` (never after ``stale``)."""
        if status == "stale":
            return False
        stored1 = False
        if t1 is not None and self.bus.lease_valid():
            stored1 = self.memory.fill(key, value, ttl=ttl, tag_ids=tag_ids, token=t1,
                                       entity=entity, sensitive=sensitive)
        return status == "stored" or stored1

    def invalidate(self, tag_ids: Collection[str]) -> int:
        """Redis, then this process's memory, then every other process (acknowledged)."""
        tags = list(tag_ids)
        removed = 0
        removed += self.redis.invalidate(tags)  # on a fault Redis owes a flush before reuse
        removed += self.memory.invalidate(tags)
        self.broadcast_invalidation(tags)
        return removed

    def broadcast_invalidation(self, tags: list[str]) -> None:
        """Tell every other process (their memory tiers) and wait for them (or their leases)."""
        self.bus.broadcast({"c": True} if ANY_TAG in tags else {"t": tags})

    # --- manager face ---------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """Memory (with a lease), then Redis."""
        if self.bus.lease_valid():
            value = self.memory.get(key)
            if value is not MISS:
                return value
        return self.redis.get(key)

    def set(self, key: str, value: Any, ttl: float | None = None, *, tags: Iterable[str] = (),
            sensitive: bool = False, entity: str = "_") -> bool:
        """Store in both tiers (guarded by the current tokens)."""
        life = float(ttl if ttl is not None else self.default_ttl)
        tag_ids = tuple(tags)
        try:
            t2: int | None = self.redis.token(entity, key)
        except RedisUnavailable:
            t2 = None
        return self.fill(key, value, ttl=life, tag_ids=tag_ids, token=(self.memory.token(), t2),
                         entity=entity, sensitive=sensitive)

    def delete(self, key: str) -> bool:
        """Remove from Redis, memory and every other process's memory."""
        found = self.redis.delete(key)
        found = self.memory.delete(key) or found
        self.bus.broadcast({"k": [key]})
        return found

    def delete_pattern(self, pattern: str) -> int:
        """Glob delete in Redis (SCAN), here, and in every other process."""
        n = self.redis.delete_pattern(pattern)
        n += self.memory.drop_pattern(pattern)
        self.bus.broadcast({"p": pattern})
        return n

    def delete_tag(self, tag: str) -> int:
        """Invalidate a tag everywhere."""
        return self.invalidate((self.keys.tag_id(tag),))

    def exists(self, key: str) -> bool:
        """Whether either tier holds the key."""
        return (self.bus.lease_valid() and self.memory.exists(key)) or self.redis.exists(key)

    def mget(self, keys: Sequence[str]) -> list[Any]:
        """Values or MISS, in order."""
        return [self.get(k) for k in keys]

    def mset(self, entries: Iterable[tuple[str, Any, float | None]]) -> None:
        """Store several entries in both tiers."""
        for key, value, ttl in entries:
            self.set(key, value, ttl)

    def clear(self) -> None:
        """Clear Redis and every process's memory tier."""
        self.redis.clear()
        self.memory.reset()
        self.bus.broadcast({"c": True})

    def stats(self) -> CacheStats:
        """Merged counters; memory facts of this process and Redis facts in ``details``."""
        mem = self.memory.stats()
        red = self.redis.stats()
        details = {
            "lease_valid": self.bus.lease_valid(),
            "bus_reconnects": self.bus.reconnects,
            "ack_timeouts": self.bus.timeouts,
            "memory": {"keys": mem.keys, "memory_bytes": mem.memory_bytes},
            **{f"redis_{k}": v for k, v in red.details.items()},
        }
        keys_by = {k: v.keys for k, v in red.entities.items()}
        bytes_by = {k: v.memory_bytes for k, v in red.entities.items()}
        return snapshot(self.name, self._raw(), keys=red.keys, memory_bytes=red.memory_bytes,
                        keys_by_entity=keys_by, bytes_by_entity=bytes_by, details=details)

    def close(self) -> None:
        """Stop receiving write events, stop the bus, close Redis."""
        from wxdata.cache.invalidation import unsubscribe

        unsubscribe(self)
        self.bus.close()
        self.redis.close()
