"""Invalidation: committed writes become tag invalidations in every subscribed cache.

CRUD announces each write as a :class:`~wxdata.tx.events.WriteEvent`; :mod:`wxdata.tx.events`
delivers it only after the outermost COMMIT (at once for a single statement outside a unit of work)
and drops it if its scope or savepoint rolls back. So an invalidation never precedes the commit it
describes, and a rolled-back write invalidates nothing. Each event invalidates, synchronously and
before the write's call returns:

- ``entity:<Name>`` — every list, search and summary of the entity;
- ``row:<Name>:<id>`` for each row written (creates included: a cached "absent" answer is stale);
- ``student:<id>`` for each subject student of the rows written.

A listener error is logged and never fails the write (it has committed); the backend then owes a
flush (see the Redis backend) so no stale entry outlives the fault.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable

from wxdata.cache.backends.base import CacheManager
from wxdata.cache.keys import entity_tag, row_tag, student_tag
from wxdata.safelog import log_error
from wxdata.tx.events import WriteEvent, add_write_listener, remove_write_listener

log = logging.getLogger("wxdata.cache")

_lock = threading.Lock()
_CACHES: weakref.WeakSet[CacheManager] = weakref.WeakSet()


def tags_for(event: WriteEvent) -> list[str]:
    """The tags a committed write invalidates."""
    tags = [entity_tag(event.entity)]
    tags.extend(row_tag(event.entity, i) for i in event.ids)
    tags.extend(student_tag(s) for s in event.subjects)
    return list(dict.fromkeys(tags))


def invalidate_tags(cache: CacheManager, tags: Iterable[str]) -> int:
    """Invalidate tags (by their text) in one cache now."""
    return cache.invalidate([cache.keys.tag_id(t) for t in dict.fromkeys(tags)])


def on_write(event: WriteEvent) -> None:
    """Write listener: invalidate the event's tags in every subscribed cache."""
    tags = tags_for(event)
    with _lock:
        caches = list(_CACHES)
    for cache in caches:
        try:
            invalidate_tags(cache, tags)
        except Exception as exc:  # noqa: BLE001 - logged PHI-safely; never fail a committed write; the backend records what it owes
            log_error(log, "cache invalidation failed for %s", exc, event.entity)


def subscribe(cache: CacheManager) -> CacheManager:
    """Have committed writes invalidate ``cache`` (held weakly); returns it."""
    with _lock:
        _CACHES.add(cache)
    add_write_listener(on_write)
    return cache


def unsubscribe(cache: CacheManager) -> None:
    """Stop invalidating ``cache`` from write events."""
    with _lock:
        _CACHES.discard(cache)
        empty = not _CACHES
    if empty:
        remove_write_listener(on_write)


def subscribed() -> list[CacheManager]:
    """Caches currently receiving write events."""
    with _lock:
        return list(_CACHES)
