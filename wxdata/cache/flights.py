"""Single flight: one computation per key at a time, other callers wait for its value.

One implementation of the bookkeeping with two flavours: :class:`ThreadFlights` (callers are
threads, they wait on a ``threading.Event``) for the sync shell and :class:`TaskFlights` (callers
are tasks of one event loop, they await a future) for the async shell.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Generic, TypeVar

S = TypeVar("S")

class Flight(Generic[S]):
    """One computation of a key: its event, owner, outcome and shareable value."""

    __slots__ = ("event", "ok", "owner", "value")

    def __init__(self, owner: object, event: S) -> None:
        self.owner = owner
        self.event = event
        self.ok = False
        self.value: Any = None


class Flights(Generic[S]):
    """One computation per key at a time; other callers wait for its value.

    Subclasses choose who the caller is (a thread or a task) and what it waits on.
    """

    __slots__ = ("_flights", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, Flight[S]] = {}

    def _me(self) -> object:
        raise NotImplementedError

    def _new_event(self) -> S:
        raise NotImplementedError

    def _wake(self, event: S) -> None:
        raise NotImplementedError

    def join(self, key: str) -> tuple[Flight[S] | None, bool]:
        """``(flight, leader)``; ``(None, False)`` when the caller already leads it (re-entrant)."""
        me = self._me()
        with self._lock:
            flight = self._flights.get(key)
            if flight is None:
                flight = self._flights[key] = Flight(me, self._new_event())
                return flight, True
        if flight.owner == me:
            return None, False
        return flight, False

    def land(self, key: str, flight: Flight[S], value: Any, ok: bool) -> None:
        """Publish the leader's outcome (``ok``: a value followers may use) and wake them."""
        flight.value = value
        flight.ok = ok
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
        self._wake(flight.event)

    def in_flight(self) -> int:
        """How many keys are being computed now."""
        with self._lock:
            return len(self._flights)


class ThreadFlights(Flights[threading.Event]):
    """Single flight across threads (the sync shell)."""

    __slots__ = ()

    def _me(self) -> object:
        return threading.get_ident()

    def _new_event(self) -> threading.Event:
        return threading.Event()

    def _wake(self, event: threading.Event) -> None:
        event.set()


class TaskFlights(Flights["asyncio.Future[None]"]):
    """Single flight across the tasks of one event loop (the async shell)."""

    __slots__ = ()

    def _me(self) -> object:
        return asyncio.current_task()

    def _new_event(self) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()

    def _wake(self, event: asyncio.Future[None]) -> None:
        if not event.done():
            event.set_result(None)


