"""Invalidation: committed writes become tag invalidations in every subscribed cache.

CRUD announces each write as a :class:`~wxdata.tx.events.WriteEvent`; :mod:`wxdata.tx.events`
delivers it only after the outermost COMMIT (at once for a single statement outside a unit of work)
and drops it if its scope or savepoint rolls back. So an invalidation never precedes the commit it
describes, and a rolled-back write invalidates nothing. Each event invalidates, synchronously and
before the write's call returns:

- ``entity:<Name>`` — every list, search and summary of the entity;
- ``row:<Name>:<id>`` for each row written (creates included: a cached "absent" answer is stale);
- ``student:<id>`` for each subject student of the rows written;
- for a write to ``students`` that changes or may change a student's school (every write but a
  create, unless the event names its columns and ``school_id`` is not among them):
  ``entity:<Name>`` of every entity whose row security goes through ``students`` (a table with a
  ``student_id`` and no ``school_id``, ``sql/0217_scope_through_students_once.sql``): which
  school may see their rows has changed, in every list, summary and total.

A write announced inside a transaction wxdata did not open is delivered at once and again once
that transaction has ended (:mod:`wxdata.tx.events`); until then :func:`held_by_foreign` refuses
the fills its tags name.

A listener error is logged and never fails the write (it has committed); the backend then owes a
flush (see the Redis backend) so no stale entry outlives the fault.

The writes of an async unit of work are delivered to :func:`on_write_async` (awaited after COMMIT
in the event loop): a cache with a registered async face (:func:`wxdata.cache.aio.build_async_cache`,
:func:`~wxdata.cache.aio.configure_async_cache`) is invalidated through it — Redis through its
``redis.asyncio`` client —, any other cache as above.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import pkgutil
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from wxdata.cache.backends.base import CacheManager
from wxdata.cache.keys import entity_tag, row_tag, student_tag
from wxdata.safelog import log_error
from wxdata.schema.spec import registered, registered_count
from wxdata.tx.events import (
    WriteEvent,
    add_write_listener,
    pending_foreign,
    remove_write_listener,
)

log = logging.getLogger("wxdata.cache")

_lock = threading.Lock()
_CACHES: weakref.WeakSet[CacheManager] = weakref.WeakSet()


#: The table through which the row security of every table without a school_id goes, and the
#: column of it that decides which school sees them (sql/0217_scope_through_students_once.sql).
_SCOPING_TABLE = "students"
_SCOPE_COLUMN = "school_id"
#: Writes that cannot move an existing student to another school.
_KEEPS_SCHOOL = frozenset({"CREATE", "BULK_CREATE"})
#: (registered_count, name of the students entity, entity tags of the entities scoped through it)
_scoped: list[tuple[int, str | None, tuple[str, ...]]] = [(-1, None, ())]


@functools.cache
def _load_schema() -> None:
    """Declare every entity of :mod:`wxdata.schema` (once): a process that never imported one
    must still invalidate what other processes cache of it in a shared cache."""
    import wxdata.schema as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")


def scoped_through_students() -> tuple[str | None, tuple[str, ...]]:
    """(the name of the entity of ``students``, the ``entity:`` tags of every entity whose row
    security goes through it): derived once, again only when more entities are declared."""
    memo = _scoped[0]
    if memo[0] == registered_count():
        return memo[1], memo[2]
    _load_schema()
    count = registered_count()
    entities = registered()
    owner = next((e.name for e in entities if e.table == _SCOPING_TABLE), None)
    tags = tuple(entity_tag(e) for e in entities
                 if e.table != _SCOPING_TABLE and _SCOPE_COLUMN not in e.by_name
                 and e.school is None and (e.subject is not None or "student_id" in e.by_name))
    _scoped[0] = (count, owner, tags)
    return owner, tags


def _moves_students(event: WriteEvent) -> bool:
    """Whether the write may have moved students to another school."""
    if event.action in _KEEPS_SCHOOL:
        return False
    return event.columns is None or _SCOPE_COLUMN in event.columns


def tags_for(event: WriteEvent) -> list[str]:
    """The tags a committed write invalidates."""
    tags = [entity_tag(event.entity)]
    tags.extend(row_tag(event.entity, i) for i in event.ids)
    tags.extend(student_tag(s) for s in event.subjects)
    owner, scoped = scoped_through_students()
    if event.entity == owner and _moves_students(event):
        tags.extend(scoped)
    return list(dict.fromkeys(tags))


def held_by_foreign(tags: Iterable[str]) -> bool:
    """Whether a write announced inside a transaction wxdata did not open, still open, names any
    of ``tags``: a value read now may be changed by its COMMIT and must not be stored. Callers
    test :data:`wxdata.tx.events.foreign_writes` first (empty almost always)."""
    pending = pending_foreign()
    if not pending:
        return False
    held = {t for event in pending for t in tags_for(event)}
    return not held.isdisjoint(tags)


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


@functools.cache
def _async_faces() -> Callable[[], Iterable[Any]]:
    """:func:`wxdata.cache.aio.async_faces`, imported on first need (the async cache builds on
    this module) and then held: no import statement runs per write."""
    from wxdata.cache.aio import async_faces

    return async_faces


def _face_of(cache: CacheManager) -> Any:
    """The registered async face wrapping ``cache`` (None: it has none)."""
    for face in _async_faces()():
        if face.sync is cache:
            return face
    return None


async def on_write_async(event: WriteEvent) -> None:
    """Write listener of async units of work: invalidate the event's tags in every subscribed
    cache, through its async face when it has one (the event loop is never blocked on Redis)."""
    tags = tags_for(event)
    with _lock:
        caches = list(_CACHES)
    for cache in caches:
        try:
            face = _face_of(cache)
            if face is not None and await _through(face, cache, tags):
                continue
            if getattr(cache, "name", "") == "memory":
                invalidate_tags(cache, tags)  # no I/O
            else:
                await asyncio.to_thread(invalidate_tags, cache, tags)
        except Exception as exc:  # noqa: BLE001 - logged PHI-safely; never fail a committed write; the backend records what it owes
            log_error(log, "cache invalidation failed for %s", exc, event.entity)


async def _through(face: Any, cache: CacheManager, tags: list[str]) -> bool:
    """Invalidate through the async face; False when the face itself could not be used (a
    client of another event loop...): the caller then invalidates through the sync backend.
    Redis faults are the backend's (it owes a flush): those return True."""
    try:
        await face.invalidate([cache.keys.tag_id(t) for t in dict.fromkeys(tags)])
    except Exception as exc:  # noqa: BLE001 - logged PHI-safely; the sync backend then invalidates
        log_error(log, "cache: async invalidation unusable; invalidating through the sync "
                  "client (%s)", exc, type(face).__name__, level=logging.WARNING)
        return False
    return True


def subscribe(cache: CacheManager) -> CacheManager:
    """Have committed writes invalidate ``cache`` (held weakly); returns it."""
    with _lock:
        _CACHES.add(cache)
    add_write_listener(on_write, async_twin=on_write_async)
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
