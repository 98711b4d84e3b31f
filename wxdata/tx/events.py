"""Write events: what a committed write changed, delivered to listeners only after COMMIT.

The CRUD functions announce every write here. Inside a unit of work the event is queued as an
after-commit hook (dropped if its scope rolls back); outside one the statement has already committed
when it returns, so the event is delivered at once. The cache layer listens to invalidate.

A listener may have an async twin (``add_write_listener(listener, async_twin=...)``): the writes
of an async unit of work then await the twin after COMMIT, in the event loop, instead of calling
the listener (the async driver awaits its hooks), so its I/O never blocks the loop. A write
announced outside a unit of work from inside a plan does the same when it announces with
``yield from announce_plan(conn, event)``.

A write announced on a connection inside a transaction wxdata did not open (a connection not in
autocommit, a ``conn.transaction()`` block) cannot wait for that transaction's COMMIT, which
wxdata does not see: it is delivered at once, and again once that transaction has ended. Until
then the connection's events stay *pending* (:data:`foreign_writes`): :func:`settle_foreign`
delivers again the events of every pending connection now idle (committed or rolled back), closed
or gone, and :func:`pending_foreign` answers the events still pending, so the cache stores no value
read meanwhile that they may change.
"""

from __future__ import annotations

import logging
import threading
import weakref
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
    """Entity ``entity`` rows ``ids`` (of students ``subjects``) were changed by ``action``;
    ``columns``: the columns the write set, when its announcer names them (None: any may have
    changed)."""

    entity: str
    action: str
    ids: tuple[UUID, ...] = ()
    subjects: tuple[UUID, ...] = ()
    columns: tuple[str, ...] | None = None


WriteListener = Callable[[WriteEvent], None]
AsyncWriteListener = Callable[[WriteEvent], Awaitable[None]]
_LISTENERS: list[WriteListener] = []
_TWINS: dict[WriteListener, AsyncWriteListener] = {}
_OWED: list[Callable[[], None]] = []
_IDLE = psycopg.pq.TransactionStatus.IDLE
_ENDED = (psycopg.pq.TransactionStatus.IDLE, psycopg.pq.TransactionStatus.UNKNOWN)
_foreign_lock = threading.Lock()
#: The connections with writes announced inside a transaction wxdata did not open, that wxdata
#: has not seen idle since: (weak reference to the connection, its events). Empty (falsy) almost
#: always: the cache tests it before asking anything else.
foreign_writes: list[tuple[weakref.ref[Any], list[WriteEvent]]] = []


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


def _owe_again(conn: Any, event: WriteEvent) -> None:
    """Keep ``event``, announced inside a transaction wxdata did not open on ``conn``, to be
    delivered again once that transaction has ended."""
    with _foreign_lock:
        for ref, events in foreign_writes:
            if ref() is conn:
                events.append(event)
                return
        foreign_writes.append((weakref.ref(conn), [event]))


def settle_foreign() -> None:
    """Deliver again the events of every pending connection whose transaction has ended (it is
    idle, closed or gone), and forget them. Cheap when nothing is pending (callers test
    :data:`foreign_writes` first)."""
    ended: list[WriteEvent] = []
    with _foreign_lock:
        kept = []
        for ref, events in foreign_writes:
            conn = ref()
            if conn is None or conn.pgconn.transaction_status in _ENDED:
                ended.extend(events)
            else:
                kept.append((ref, events))
        foreign_writes[:] = kept
    for event in ended:
        _deliver(event)


def pending_foreign() -> tuple[WriteEvent, ...]:
    """The events announced inside transactions wxdata did not open that are still open (after
    :func:`settle_foreign`): what they change may yet be committed."""
    settle_foreign()
    with _foreign_lock:
        return tuple(e for _, events in foreign_writes for e in events)


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
    if foreign_writes:
        settle_foreign()
    scope = current_scope(conn)
    if scope is None:
        if conn.pgconn.transaction_status != _IDLE:
            _owe_again(conn, event)  # before the first delivery: no fill slips between them
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
        if foreign_writes:
            settle_foreign()
        if conn.pgconn.transaction_status != _IDLE:
            _owe_again(conn, event)  # before the first delivery: no fill slips between them
        yield Hooks((lambda: _adeliver(event),))
        return
    announce_write(conn, event)
