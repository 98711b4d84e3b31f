"""The effects a plan may ask of its driver (what to do; the driver knows how, sync or async)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias, TypeVar

import attrs
from psycopg import sql as q

if TYPE_CHECKING:  # the core is imported by the modules these import
    from wxdata.audit.record import AuditRecord
    from wxdata.context import ExecutionContext

T = TypeVar("T")
Rows: TypeAlias = list[tuple[Any, ...]]
Statement: TypeAlias = str | q.SQL | q.Composed
#: A plan: yields effects, receives their answers, returns its value.
Plan: TypeAlias = Generator["Effect", Any, T]  # Effect: defined below


class Execute(NamedTuple):
    """Run one statement on the connection's data cursor; answered with its rows ([] if none).

    ``slot`` names the reused cursor (``"data"`` or ``"context"``); ``prepare`` is psycopg's.

    The one effect of nearly every call, made once or twice per statement: an immutable named
    tuple, which builds in a fraction of what a frozen attrs instance costs (its fields set one by
    one through ``object.__setattr__``). Drivers tell it by ``type(effect) is Execute``.
    """

    sql: Statement
    params: Mapping[str, Any] | Sequence[Any] | None = None
    prepare: bool | None = None
    slot: str = "data"


@attrs.frozen(slots=True)
class FetchOne:
    """Run a one-off statement with ``conn.execute``; answered with its first row (or None)."""

    sql: Statement
    params: Mapping[str, Any] | Sequence[Any] | None = None


@attrs.frozen(slots=True)
class Command:
    """Run a transaction-control statement (BEGIN, COMMIT, SAVEPOINT...); answered with its
    status message (``"COMMIT"``...)."""

    sql: Statement


class Pipeline(NamedTuple):
    """Run statements in one pipeline (one round trip); answered with the last one's rows.

    On any error the driver rolls back a transaction the pipeline left open, then the error is
    thrown into the plan. The effect of every statement the application role sends outside a unit
    of work (its context and the statement): an immutable named tuple, as :class:`Execute` is.
    """

    statements: tuple[Execute, ...]


@attrs.frozen(slots=True)
class Provenance:
    """Answered with where each column of the last result on the cursor of ``slot`` comes from:
    ``(table oid, column number)`` as PostgreSQL describes it, ``(0, 0)`` for a value the statement
    computed (an expression, an aggregate, a function's result)."""

    slot: str = "data"


@attrs.frozen(slots=True)
class Probe:
    """Answered with :class:`ConnFacts`: what the client library knows about the connection."""


@attrs.frozen(slots=True)
class ConnFacts:
    """The connection's client-side state (no round trip)."""

    closed: bool
    idle: bool  # no transaction open
    in_error: bool  # an aborted transaction
    autocommit: bool
    names_statements: bool  # prepare_threshold is not None


@attrs.frozen(slots=True)
class Detached:
    """Write ``record`` on audit lane 2 (committed at once); answered with whether it was."""

    ctx: ExecutionContext
    record: AuditRecord


@attrs.frozen(slots=True)
class Hooks:
    """Call each hook (a sync callable, or one returning an awaitable under the async driver);
    a failing hook is logged, never raised. Answered with None."""

    hooks: tuple[Callable[[], Any], ...]


@attrs.frozen(slots=True)
class Call:
    """Call ``fn()`` and answer with its value: a plan it returns is driven by the same driver,
    an awaitable is awaited (async driver). Exceptions are thrown into the calling plan."""

    fn: Callable[[], Any]


@attrs.frozen(slots=True)
class Sleep:
    """Wait ``seconds`` (``time.sleep`` / ``asyncio.sleep``, or the sleeper given to the driver)."""

    seconds: float


@attrs.frozen(slots=True)
class Copy:
    """``COPY ... FROM STDIN`` of ``rows`` with ``statement``; answered with None. ``types`` (the
    columns' type names, for a binary COPY) are set on the copy before the first row."""

    statement: q.SQL | q.Composed
    rows: Iterable[tuple[Any, ...]]
    types: tuple[str, ...] = ()


@attrs.frozen(slots=True)
class Stream:
    """Run ``sql`` on a named server-side cursor and hand its rows, in batches of ``batch``, to
    ``consume`` (sync: an iterator; async: an async iterator, ``consume`` may return an
    awaitable); every raw row passes through ``shape`` first. Answered with ``consume``'s value."""

    name: str
    sql: Statement
    params: Mapping[str, Any]
    batch: int
    shape: Callable[[tuple[Any, ...]], Any]
    consume: Callable[[Any], Any]




@attrs.frozen(slots=True)
class Suspend:
    """Not an effect: a plan pauses here and hands ``value`` to its driver (a unit of work's
    scope, while the caller's block runs); resumed with None or with the block's exception."""

    value: Any


Effect: TypeAlias = (Execute | FetchOne | Command | Pipeline | Provenance | Probe | Detached | Hooks
                     | Call | Sleep | Copy | Stream | Suspend)
