"""Cache statistics: counters per entity, and the snapshot ``stats()`` returns.

``hit_rate`` is a fraction in [0, 1] (hits / (hits + misses); 0.0 before any lookup) — never a
percentage (the original used both). ``errors`` counts backend faults (Redis down or slow,
undecryptable or corrupt entries): each such read was served by PostgreSQL instead. ``bypasses``
counts reads that did not consult the cache (inside a transaction that wrote the entity, in a
REPEATABLE READ/SERIALIZABLE unit of work, or with the cache disabled). ``stale_fills_refused``
counts fills dropped because a write was invalidated while the value was being read;
``unavailable`` counts operations skipped while the Redis circuit breaker was open;
``coalesced`` counts misses served by another caller's computation of the same key (single flight);
``calls_instead`` counts calls that ran the function rather than look the cache up, because a hit
owing its disclosure record was measured dearer than the call (or to measure the call again:
:mod:`wxdata.cache.costs`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

COUNTERS: tuple[str, ...] = (
    "hits", "misses", "sets", "deletes", "evictions", "expirations", "errors", "bypasses",
    "stale_fills_refused", "not_cacheable", "hits_memory", "hits_redis", "audited_hits",
    "unavailable", "coalesced", "calls_instead",
)


@attrs.frozen(slots=True)
class EntityStats:
    """Counters of one entity (or ``"*"`` for the total)."""

    name: str
    hits: int = 0
    misses: int = 0
    sets: int = 0
    deletes: int = 0
    evictions: int = 0
    expirations: int = 0
    errors: int = 0
    bypasses: int = 0
    stale_fills_refused: int = 0
    not_cacheable: int = 0
    hits_memory: int = 0
    hits_redis: int = 0
    audited_hits: int = 0
    unavailable: int = 0
    coalesced: int = 0
    calls_instead: int = 0
    keys: int = 0
    memory_bytes: int = 0

    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses), a fraction in [0, 1]; 0.0 before any lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counters including ``hit_rate``."""
        body = attrs.asdict(self)
        body["hit_rate"] = round(self.hit_rate, 6)
        return body


@attrs.frozen(slots=True)
class CacheStats:
    """A snapshot: totals, per entity, and backend facts (key count, memory estimate, state)."""

    backend: str
    total: EntityStats
    entities: Mapping[str, EntityStats]
    keys: int = 0
    memory_bytes: int = 0
    details: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def hit_rate(self) -> float:
        """Overall hit rate, a fraction in [0, 1]."""
        return self.total.hit_rate

    @property
    def hits(self) -> int:
        """Total hits."""
        return self.total.hits

    @property
    def misses(self) -> int:
        """Total misses."""
        return self.total.misses

    @property
    def errors(self) -> int:
        """Total backend faults absorbed."""
        return self.total.errors

    def summary(self) -> dict[str, Any]:
        """The headline figures, flat: backend, hits, misses, hit rate, sets, deletes, evictions,
        errors, keys, memory bytes."""
        t = self.total
        return {
            "backend": self.backend, "hits": t.hits, "misses": t.misses,
            "hit_rate": round(t.hit_rate, 4), "sets": t.sets, "deletes": t.deletes,
            "evictions": t.evictions, "errors": t.errors, "keys": self.keys,
            "memory_bytes": self.memory_bytes,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready snapshot."""
        return {
            "backend": self.backend,
            "keys": self.keys,
            "memory_bytes": self.memory_bytes,
            "total": self.total.to_dict(),
            "entities": {k: v.to_dict() for k, v in sorted(self.entities.items())},
            "details": dict(self.details),
        }


class Counters:
    """Thread-safe counters per entity label."""

    __slots__ = ("_by", "_lock")

    def __init__(self, lock: threading.Lock | None = None) -> None:
        self._lock = lock or threading.Lock()
        self._by: dict[str, dict[str, int]] = {}

    def add_locked(self, entity: str, counter: str, n: int = 1) -> None:
        """Like :meth:`add`, for a caller already holding the lock passed at construction."""
        row = self._by.get(entity)
        if row is None:
            row = self._by[entity] = dict.fromkeys(COUNTERS, 0)
        row[counter] += n

    def add(self, entity: str, counter: str, n: int = 1) -> None:
        """Add ``n`` to one counter of one entity."""
        with self._lock:
            row = self._by.get(entity)
            if row is None:
                row = self._by[entity] = dict.fromkeys(COUNTERS, 0)
            row[counter] += n

    def row_locked(self, entity: str) -> dict[str, int]:
        """The mutable counter row of an entity, for a caller holding the construction lock."""
        row = self._by.get(entity)
        if row is None:
            row = self._by[entity] = dict.fromkeys(COUNTERS, 0)
        return row

    def add_many(self, entity: str, counts: Mapping[str, int]) -> None:
        """Add several counters at once."""
        with self._lock:
            row = self._by.get(entity)
            if row is None:
                row = self._by[entity] = dict.fromkeys(COUNTERS, 0)
            for k, n in counts.items():
                row[k] += n

    def raw(self) -> dict[str, dict[str, int]]:
        """A copy of every counter."""
        with self._lock:
            return {k: dict(v) for k, v in self._by.items()}

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._by.clear()


def merge(rows: Iterable[Mapping[str, Mapping[str, int]]]) -> dict[str, dict[str, int]]:
    """Sum several raw counter tables."""
    out: dict[str, dict[str, int]] = {}
    for table in rows:
        for entity, counts in table.items():
            row = out.setdefault(entity, dict.fromkeys(COUNTERS, 0))
            for k, n in counts.items():
                if k in row:
                    row[k] += int(n)
    return out


def snapshot(
    backend: str, raw: Mapping[str, Mapping[str, int]], *, keys: int = 0, memory_bytes: int = 0,
    keys_by_entity: Mapping[str, int] | None = None,
    bytes_by_entity: Mapping[str, int] | None = None, details: Mapping[str, Any] | None = None,
) -> CacheStats:
    """Build a :class:`CacheStats` from raw counters and backend facts."""
    keys_by_entity = keys_by_entity or {}
    bytes_by_entity = bytes_by_entity or {}
    names = set(raw) | set(keys_by_entity)
    entities = {
        name: EntityStats(
            name=name,
            **{k: int(v) for k, v in raw.get(name, {}).items() if k in COUNTERS},
            keys=keys_by_entity.get(name, 0),
            memory_bytes=bytes_by_entity.get(name, 0),
        )
        for name in names
    }
    totals = dict.fromkeys(COUNTERS, 0)
    for e in entities.values():
        for k in COUNTERS:
            totals[k] += getattr(e, k)
    total = EntityStats(name="*", **totals, keys=keys, memory_bytes=memory_bytes)
    return CacheStats(backend, total, entities, keys, memory_bytes, details or {})
