"""The cache manager protocol every backend implements, and the pieces backends share.

Two faces. The *manager* face is the original ``ICacheManager`` (get, set with a per-entry TTL,
delete, delete_pattern, delete_tag, exists, mget, mset, clear, stats) for direct use. The
*decorator* face is what :func:`wxdata.cache.cached` needs to stay coherent with PostgreSQL:

- ``lookup`` returns ``Success(value)`` or a :class:`Miss` carrying a fill *token* — the
  backend's invalidation sequence at the time of the miss (the memory tier hands out one prebuilt
  ``Success`` per immutable entry, so a hit allocates nothing);
- ``fill`` stores the value only if none of its tags was invalidated after that token (so a reader
  that fetched a row before a writer's commit can never store it after the writer's invalidation);
- ``invalidate`` marks tags invalidated and drops their entries.

Tags reach backends only as opaque ids (keyed hashes, :meth:`KeyBuilder.tag_id`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any, Final, Protocol, runtime_checkable

from wxdata.cache.flights import ThreadFlights
from wxdata.cache.keys import KeyBuilder
from wxdata.cache.stats import CacheStats, Counters


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISS"

    def __bool__(self) -> bool:
        return False


#: What ``get`` returns for an absent, expired or unreadable entry.
MISS: Final = _Missing()


class Miss:
    """A lookup that found nothing; ``token`` is what ``fill`` checks invalidations against."""

    __slots__ = ("token",)

    def __init__(self, token: Any) -> None:
        self.token = token

    def __repr__(self) -> str:
        return f"Miss({self.token!r})"


ANY_TAG = "*"  # the pseudo-tag every fill checks: clear() and fault recovery invalidate it


@runtime_checkable
class CacheManager(Protocol):
    """A cache backend (memory, Redis, tiered, null)."""

    name: str
    keys: KeyBuilder
    counters: Counters
    flights: SingleFlight

    @property
    def accepts_sensitive(self) -> bool:
        """Whether PHI/FERPA values may be stored (Redis only with encryption)."""
        ...

    @property
    def local(self) -> bool:
        """Whether every hit is served from this process's memory (no round trip)."""
        ...

    def get(self, key: str) -> Any:
        """The value under ``key`` or :data:`MISS`."""
        ...

    def set(self, key: str, value: Any, ttl: float | None = None, *, tags: Iterable[str] = (),
            sensitive: bool = False, entity: str = "_") -> bool:
        """Store ``value`` for ``ttl`` seconds (default TTL if None) under tag ids ``tags``."""
        ...

    def delete(self, key: str) -> bool:
        """Remove one entry; True if it existed."""
        ...

    def delete_pattern(self, pattern: str) -> int:
        """Remove entries whose key matches the glob (anchored; ``*``, ``?``, ``[...]``)."""
        ...

    def delete_tag(self, tag: str) -> int:
        """Invalidate a tag (its text, e.g. ``entity:Student``); returns entries removed."""
        ...

    def exists(self, key: str) -> bool:
        """Whether a live entry is stored under ``key``."""
        ...

    def mget(self, keys: Sequence[str]) -> list[Any]:
        """Values (or :data:`MISS`) for several keys, in order."""
        ...

    def mset(self, entries: Iterable[tuple[str, Any, float | None]]) -> None:
        """Store several ``(key, value, ttl)`` entries."""
        ...

    def clear(self) -> None:
        """Remove every entry of this cache's namespace."""
        ...

    def stats(self) -> CacheStats:
        """Counters and backend facts."""
        ...

    def lookup(self, key: str, entity: str, sensitive: bool) -> Any:
        """``Success(value)``, or a :class:`Miss` with the fill token."""
        ...

    def fill(self, key: str, value: Any, *, ttl: float, tag_ids: Collection[str], token: Any,
             entity: str, sensitive: bool) -> bool:
        """Store a value read after ``token`` unless one of its tags was invalidated since."""
        ...

    def invalidate(self, tag_ids: Collection[str]) -> int:
        """Invalidate tags now (after a COMMIT); returns entries removed."""
        ...

    def close(self) -> None:
        """Release connections and threads."""
        ...


class SingleFlight(ThreadFlights):
    """One computation per key at a time in this process; concurrent threads wait for its value."""

    __slots__ = ()
