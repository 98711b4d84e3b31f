"""In-process backend: a bounded, thread-safe, true-LRU cache with per-entry TTL (cachetools TLRU).

Entries expire at their own deadline; when full, the least recently *used* live entry is evicted
(expired ones first) — not FIFO as in the original. One lock guards every change: the store, the
tag index and the invalidation sequence. Hits take no lock: they read a mirror of the live entries
(one dict lookup and a deadline check) and append the entry to a read buffer; the buffer is replayed
into the TLRU's recency order (``move_to_end``) before any eviction decision, so evictions follow
exact LRU order (the technique of Caffeine's read buffers). An invalidation removes the entry from
the mirror under the lock before it returns, so no hit that starts afterwards can see it. Hits
are counted when the buffer is replayed (``stats()`` replays it first).

Values are shared only when deeply immutable, otherwise copied in and out
(:mod:`wxdata.cache.serde`). Tag records are bounded: when the oldest are dropped, the *floor*
rises so a fill older than a forgotten invalidation is refused rather than trusted.

A memory backend on its own is coherent within one process only: run several processes with the
``tiered`` backend, whose invalidations reach every process's memory tier.
"""

from __future__ import annotations

import contextlib
import fnmatch
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from cachetools import TLRUCache
from returns.result import Success

from wxdata.cache.backends.base import ANY_TAG, MISS, Miss, SingleFlight
from wxdata.cache.keys import KeyBuilder
from wxdata.cache.serde import Unserialisable, estimate_size, is_frozen, thaw
from wxdata.cache.stats import CacheStats, Counters, snapshot

MAX_TAG_RECORDS = 200_000


DRAIN_AT = 256  # replay the read buffer once it holds this many keys
DRAIN_FORCED = 65_536  # ... and block for it beyond this many


class _Entry:
    __slots__ = ("entity", "expires", "key", "result", "shared", "size", "tags", "value")

    def __init__(self, key: str, value: Any, shared: bool, expires: float,
                 tags: tuple[str, ...], entity: str, size: int) -> None:
        self.key = key
        self.value = value
        self.shared = shared
        self.result: Success[Any] | None = Success(value) if shared else None
        self.expires = expires
        self.tags = tags
        self.entity = entity
        self.size = size


def _ttu(_key: str, entry: _Entry, now: float) -> float:
    return entry.expires


class _Store(TLRUCache[str, _Entry]):
    """TLRU cache that reports evictions and expirations (to keep the tag index exact)."""

    def __init__(self, maxsize: int, on_drop: Callable[[str, _Entry, str], None],
                 timer: Callable[[], float]) -> None:
        super().__init__(maxsize, _ttu, timer=timer)
        self._on_drop = on_drop

    def popitem(self) -> tuple[str, _Entry]:
        key, entry = super().popitem()
        self._on_drop(key, entry, "evictions")
        return key, entry

    def expire(self, time: float | None = None) -> list[tuple[str, _Entry]]:
        expired = list(super().expire(time))
        for key, entry in expired:
            self._on_drop(key, entry, "expirations")
        return expired


class MemoryCache:
    """Bounded LRU + per-entry TTL, tag invalidation, fill tokens, single flight; thread-safe."""

    name = "memory"

    def __init__(self, keys: KeyBuilder, *, max_size: int = 10_000, default_ttl: float = 900,
                 timer: Callable[[], float] = time.monotonic) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.keys = keys
        self.default_ttl = float(default_ttl)
        self._lock = threading.Lock()
        self.counters = Counters()
        self.flights = SingleFlight()
        self._timer = timer
        self._store = _Store(max_size, self._dropped, timer)
        self._live: dict[str, _Entry] = {}
        self._reads: deque[_Entry] = deque()
        self._index: dict[str, set[str]] = {}
        self._seq = 0
        self._floor = 0
        self._tag_seq: OrderedDict[str, int] = OrderedDict()

    @property
    def accepts_sensitive(self) -> bool:
        """In-process memory may hold PHI (it never leaves the process)."""
        return True

    @property
    def local(self) -> bool:
        """A hit never leaves the process."""
        return True

    @property
    def max_size(self) -> int:
        """Capacity in entries."""
        return int(self._store.maxsize)

    # --- internals (lock held) -------------------------------------------------------------

    def _dropped(self, key: str, entry: _Entry, why: str) -> None:
        if self._live.get(key) is entry:
            del self._live[key]
        self._unindex(key, entry)
        self.counters.add(entry.entity, why)

    def _drain(self) -> None:
        """Replay buffered hits: count them, and move each key read to the LRU's recent end
        in the order of its last read (lock held)."""
        reads = self._reads
        batch: list[_Entry] = []
        while True:
            try:
                batch.append(reads.popleft())
            except IndexError:
                break
        if not batch:
            return
        hits: dict[str, int] = {}
        for e in batch:
            hits[e.entity] = hits.get(e.entity, 0) + 1
        for entity, n in hits.items():
            self.counters.add_many(entity, {"hits": n, "hits_memory": n})
        store, live = self._store, self._live
        for key in reversed(dict.fromkeys(e.key for e in reversed(batch))):
            if key in live:
                with contextlib.suppress(KeyError):
                    store[key]  # TLRU __getitem__: marks it most recently used

    def _unindex(self, key: str, entry: _Entry) -> None:
        for t in entry.tags:
            keys = self._index.get(t)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._index[t]

    def _remove(self, key: str) -> bool:
        entry = self._store.pop(key, None)
        if entry is None:
            return False
        self._live.pop(key, None)
        self._unindex(key, entry)
        self.counters.add(entry.entity, "deletes")
        return True

    def _put(self, key: str, value: Any, ttl: float, tags: tuple[str, ...], entity: str) -> bool:
        shared = is_frozen(value)
        try:
            stored = value if shared else thaw(value)
        except Unserialisable:
            self.counters.add(entity, "not_cacheable")
            return False
        self._remove_quiet(key)
        self._drain()  # exact LRU order before the store may evict
        entry = _Entry(key, stored, shared, self._timer() + ttl, tags, entity,
                       estimate_size(value))
        self._store[key] = entry
        if key in self._store:
            self._live[key] = entry
            for t in tags:
                keys = self._index.get(t)
                if keys is None:
                    self._index[t] = {key}
                else:
                    keys.add(key)
            self.counters.add(entity, "sets")
        return True

    def _remove_quiet(self, key: str) -> None:
        entry = self._store.pop(key, None)
        self._live.pop(key, None)
        if entry is not None:
            self._unindex(key, entry)

    def _empty(self) -> None:
        self._live.clear()
        self._store = _Store(int(self._store.maxsize), self._dropped, self._timer)
        self._index.clear()
        self._reads.clear()

    def _accepts(self, token: int, tag_ids: Collection[str]) -> bool:
        if token < self._floor:
            return False
        seqs = self._tag_seq
        return all(seqs.get(t, 0) <= token for t in tag_ids)

    # --- decorator face -------------------------------------------------------------------

    def lookup(self, key: str, entity: str, sensitive: bool, count_miss: bool = True) -> Any:
        """``Success(value)``, or a :class:`Miss` whose token is the current invalidation sequence."""
        entry = self._live.get(key)  # no lock: the mirror of live entries; the read is buffered
        if entry is not None and self._timer() < entry.expires:
            reads = self._reads
            reads.append(entry)
            if len(reads) > DRAIN_AT and self._lock.acquire(blocking=len(reads) > DRAIN_FORCED):
                try:
                    self._drain()
                finally:
                    self._lock.release()
        else:
            token = self._seq  # read before any fill can start: older than what it may miss
            if count_miss:
                self.counters.add(entity, "misses")
            return Miss(token)
        result = entry.result  # counted when the read buffer is replayed
        return result if result is not None else Success(thaw(entry.value))

    def token(self) -> int:
        """The current invalidation sequence (a fill token taken without a lookup)."""
        with self._lock:
            return self._seq

    def fill(self, key: str, value: Any, *, ttl: float, tag_ids: Collection[str], token: Any,
             entity: str, sensitive: bool) -> bool:
        """Store unless a tag was invalidated after ``token``."""
        with self._lock:
            if not self._accepts(int(token), tag_ids):
                self.counters.add(entity, "stale_fills_refused")
                return False
            return self._put(key, value, ttl, tuple(tag_ids), entity)

    def invalidate(self, tag_ids: Collection[str]) -> int:
        """Record the tags as invalidated now and drop their entries."""
        removed = 0
        with self._lock:
            self._seq += 1
            seq = self._seq
            seqs = self._tag_seq
            for t in tag_ids:
                if t == ANY_TAG:
                    self._floor = seq
                    removed += len(self._store)
                    self._empty()
                    continue
                seqs[t] = seq
                seqs.move_to_end(t)
                for key in tuple(self._index.pop(t, ())):
                    removed += self._remove(key)
            while len(seqs) > MAX_TAG_RECORDS:
                _, old = seqs.popitem(last=False)
                self._floor = max(self._floor, old)
        return removed

    def drop_keys(self, keys: Iterable[str]) -> int:
        """Remove entries by key (no invalidation record)."""
        with self._lock:
            return sum(self._remove(k) for k in keys)

    def drop_pattern(self, pattern: str) -> int:
        """Remove entries whose key matches the anchored glob."""
        with self._lock:
            matches = [k for k in list(self._store.keys()) if fnmatch.fnmatchcase(k, pattern)]
            return sum(self._remove(k) for k in matches)

    def reset(self) -> None:
        """Forget everything and refuse every fill started before now (lost invalidations)."""
        with self._lock:
            self._seq += 1
            self._floor = self._seq
            self._empty()
            self._tag_seq.clear()

    # --- manager face ---------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """The value under ``key`` or MISS."""
        got = self.lookup(key, "_", False, count_miss=False)
        return MISS if type(got) is Miss else got.unwrap()

    def set(self, key: str, value: Any, ttl: float | None = None, *, tags: Iterable[str] = (),
            sensitive: bool = False, entity: str = "_") -> bool:
        """Store unconditionally (``tags`` are tag ids)."""
        with self._lock:
            return self._put(key, value, float(ttl if ttl is not None else self.default_ttl),
                             tuple(tags), entity)

    def delete(self, key: str) -> bool:
        """Remove one entry."""
        with self._lock:
            return self._remove(key)

    def delete_pattern(self, pattern: str) -> int:
        """Remove entries matching an anchored glob (metacharacters are glob, never regex)."""
        return self.drop_pattern(pattern)

    def delete_tag(self, tag: str) -> int:
        """Invalidate a tag by its text."""
        return self.invalidate((self.keys.tag_id(tag),))

    def exists(self, key: str) -> bool:
        """Whether a live entry exists (no LRU reordering, no stats)."""
        entry = self._live.get(key)
        return entry is not None and self._timer() < entry.expires

    def mget(self, keys: Sequence[str]) -> list[Any]:
        """Values or MISS, in order."""
        return [self.get(k) for k in keys]

    def mset(self, entries: Iterable[tuple[str, Any, float | None]]) -> None:
        """Store several entries."""
        for key, value, ttl in entries:
            self.set(key, value, ttl)

    def clear(self) -> None:
        """Remove everything (and refuse fills that started before)."""
        self.invalidate((ANY_TAG,))

    def __len__(self) -> int:
        with self._lock:
            self._store.expire()
            return len(self._store)

    def raw_counters(self) -> dict[str, dict[str, int]]:
        """Every counter, buffered hits included."""
        with self._lock:
            self._drain()
        return self.counters.raw()

    def facts(self) -> tuple[int, int, dict[str, int], dict[str, int]]:
        """(key count, bytes, keys per entity, bytes per entity) of live entries."""
        with self._lock:
            self._drain()
            self._store.expire()
            keys: dict[str, int] = {}
            size: dict[str, int] = {}
            total = 0
            for entry in self._store.values():
                keys[entry.entity] = keys.get(entry.entity, 0) + 1
                size[entry.entity] = size.get(entry.entity, 0) + entry.size
                total += entry.size
            return len(self._store), total, keys, size

    def stats(self) -> CacheStats:
        """Counters plus key count and memory estimate, per entity."""
        count, total, keys, size = self.facts()
        return snapshot(self.name, self.raw_counters(), keys=count, memory_bytes=total,
                        keys_by_entity=keys, bytes_by_entity=size,
                        details={"max_size": self.max_size})

    def close(self) -> None:
        """Stop receiving write events (nothing else to release)."""
        from wxdata.cache.invalidation import unsubscribe

        unsubscribe(self)
