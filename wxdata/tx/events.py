"""Write events: what a committed write changed, delivered to listeners only after COMMIT.

The CRUD functions announce every write here. Inside a unit of work the event is queued as an
after-commit hook (dropped if its scope rolls back); outside one the statement has already committed
when it returns, so the event is delivered at once. The cache layer listens to invalidate.

A listener may have an async twin (``add_write_listener(listener, async_twin=...)``): the writes
of an async unit of work then await the twin after COMMIT, in the event loop, instead of calling
the listener (the async driver awaits its hooks), so its I/O never blocks the loop. A write
announced outside a unit of work from inside a plan does the same when it announces with
``yield from announce_plan(conn, event)``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import attrs
import psycopg

from wxdata.core.effects import Hooks, Plan
from wxdata.safelog import log_error
from wxdata.tx.scope import current_scope

log = logging.getLogger("wxdata.tx")


@attrs.frozen(slots=True)
class WriteEvent:
    """Entity ``entity`` rows ``ids`` (of students ``subjects``) were changed by ``action``."""

    entity: str
    action: str
    ids: tuple[UUID, ...] = ()
    subjects: tuple[UUID, ...] = ()


WriteListener = Callable[[WriteEvent], None]
AsyncWriteListener = Callable[[WriteEvent], Awaitable[None]]
_LISTENERS: list[WriteListener] = []
_TWINS: dict[WriteListener, AsyncWriteListener] = {}
_OWED: list[Callable[[], None]] = []


def owe_listeners(subscribe_owed: Callable[[], None]) -> None:
    """Register ``subscribe_owed`` (idempotent), called before every write is announced to
    subscribe the listeners the settings owe and that nothing subscribed yet. The cache layer
    registers one: a process whose settings name a cache shared with other processes must
    invalidate it also when it never read through it (it only writes)."""
    if subscribe_owed not in _OWED:
        _OWED.append(subscribe_owed)


def _settle() -> None:
    for subscribe_owed in _OWED:
        try:
            subscribe_owed()
        except Exception as exc:  # noqa: BLE001 - logged PHI-safely; never fails a write
            log_error(log, "a write listener owed by the settings could not be subscribed", exc)


def add_write_listener(listener: WriteListener, *,
                       async_twin: AsyncWriteListener | None = None) -> None:
    """Subscribe to committed writes (idempotent); ``async_twin`` is awaited instead of
    ``listener`` for the writes of async units of work."""
    if listener not in _LISTENERS:
        _LISTENERS.append(listener)
    if async_twin is not None:
        _TWINS[listener] = async_twin


def remove_write_listener(listener: WriteListener) -> None:
    """Unsubscribe a listener (no error if absent)."""
    if listener in _LISTENERS:
        _LISTENERS.remove(listener)
    _TWINS.pop(listener, None)


def _deliver(event: WriteEvent) -> None:
    for listener in tuple(_LISTENERS):
        try:
            listener(event)
        except Exception as exc:  # noqa: BLE001 - logged PHI-safely; a listener must never fail the write that already committed
            log_error(log, "write listener failed for %s", exc, event.entity)


async def _adeliver(event: WriteEvent) -> None:
    for listener in tuple(_LISTENERS):
        twin = _TWINS.get(listener)
        try:
            if twin is None:
                listener(event)
            else:
                await twin(event)
        except Exception as exc:  # noqa: BLE001 - logged PHI-safely; a listener must never fail the write that already committed
            log_error(log, "write listener failed for %s", exc, event.entity)


def unheard(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """True when announcing a write on ``conn`` would change nothing: no listener is subscribed
    and no unit of work is open to be marked written (outside one a write is delivered at once,
    here to no one), so the caller need not build the event. The listeners the settings owe
    (:func:`owe_listeners`) are subscribed first."""
    _settle()
    return not _LISTENERS and current_scope(conn) is None


def announce_write(
    conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any], event: WriteEvent
) -> None:
    """Mark the entity written in the open scope and deliver the event after COMMIT (to the
    listeners subscribed then, the ones the settings owe included)."""
    _settle()
    scope = current_scope(conn)
    if scope is None:
        _deliver(event)
        return
    scope.mark_written(event.entity)
    if isinstance(conn, psycopg.AsyncConnection):
        scope.after_commit(lambda: _adeliver(event))  # awaited by the async driver
    else:
        scope.after_commit(lambda: _deliver(event))


def announce_plan(
    conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any], event: WriteEvent
) -> Plan[None]:
    """:func:`announce_write` as a plan step: outside a unit of work on an async connection the
    delivery is a hook the async driver awaits (async twins run in the event loop) before the
    plan goes on; everything else as :func:`announce_write`."""
    if isinstance(conn, psycopg.AsyncConnection) and current_scope(conn) is None:
        _settle()
        yield Hooks((lambda: _adeliver(event),))
        return
    announce_write(conn, event)
