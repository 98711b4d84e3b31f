"""Finders, defined once and run on either shell; and the factories of the shapes most share.

A finder is written once, as a *plan*: a function ``(conn, ctx, ...)`` returning what the generic
plans of :mod:`wxdata.core.crud` return (``return plans.find_many(conn, ctx, ENTITY, where)``),
or a generator running several of them with ``yield from`` (counts, a read then its disclosure
record, a bulk update). :func:`finder` turns it into the sync function (``allergies.find_by_allergen(conn,
ctx, "pea")``) and its async twin (``allergies.find_by_allergen.aio``, also published as
``wxdata.aio.domains.allergies.find_by_allergen``): both drive the same plan, so both decide
the same, are school-scoped by row-level security and audit their own disclosures. A cached
finder is cached on each shell with the same entity and options (the sync cache and the async one,
which a committed write of either shell invalidates). Dates like "today" are computed per call,
never frozen at import.
"""

from __future__ import annotations

import collections.abc as abc
import functools
import inspect
import typing
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast
from uuid import UUID

import psycopg
from returns.result import Failure, Result

from wxdata.audit.record import AuditAction
from wxdata.cache.keys import KeyShape
from wxdata.context import ExecutionContext
from wxdata.core import crud as plans
from wxdata.core import effects
from wxdata.core.drive import arun, run
from wxdata.core.effects import Plan
from wxdata.errors import DataError, InvalidQuery
from wxdata.query.paging import DEFAULT_LIMIT, Page, SortSpec
from wxdata.schema.spec import Entity, Kind
from wxdata.telemetry import atraced_shell, traced_shell

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Conn = psycopg.Connection[Any]
AConn = psycopg.AsyncConnection[Any]

__all__ = [
    "ByKey",
    "DueWithin",
    "Finder",
    "InRange",
    "by_column",
    "disclosed_fact",
    "due_within",
    "finder",
    "in_range",
    "is_finder",
    "today",
]


class Finder(Protocol[P, T_co]):
    """A finder: called on a sync connection; ``aio`` is its twin on an AsyncConnection and
    ``plan`` the one plan both run (to compose it into another finder with ``yield from``)."""

    def __call__(self, conn: Conn, /, *args: P.args, **kwargs: P.kwargs) -> T_co: ...

    @property
    def aio(self) -> Callable[Concatenate[AConn, P], Coroutine[Any, Any, T_co]]:
        """The async twin: same parameters, awaited."""
        ...

    @property
    def plan(self) -> Callable[Concatenate[Any, P], Plan[T_co]]:
        """The plan both shells run."""
        ...


def disclosed_fact(
    conn: Any, ctx: ExecutionContext, entity: Entity[Any], student_id: UUID | str,
    fields: tuple[str, ...], operation: str,
) -> Plan[Result[UUID, DataError]]:
    """Record a fact derived from a student's rows (a count, a yes or no) as a READ of
    ``entity``'s ``fields`` naming the student, ``operation`` in its metadata; answers the
    student's id.

    A finder that answers with such a fact hands it out only once this is a ``Success``: the
    answer discloses the student's health as the rows would, whatever it is (none, zero, no). A
    value that carries the student's id in its subject field (``student_id``) is one a cache can
    store: the record of its hit names the student too.
    """
    try:
        sid = student_id if isinstance(student_id, UUID) else UUID(str(student_id))
    except ValueError:
        return Failure(InvalidQuery("student_id", "must be a UUID"))
    recorded = yield from plans.record_disclosure(
        conn, ctx, entity, AuditAction.READ, subjects=(sid,), fields=fields,
        metadata={"operation": operation})
    return recorded.map(lambda _: sid)


def finder(
    entity: Entity[Any],
    *,
    cache: bool = False,
    ttl: float | None = None,
    tags: Callable[..., Iterable[str]] | None = None,
    key: Callable[..., KeyShape] | None = None,
    depends: Sequence[Entity[Any]] = (),
    name: str | None = None,
) -> Callable[[Callable[Concatenate[Any, P], Plan[T]]], Finder[P, T]]:
    """Make a plan ``(conn, ctx, ...) -> Plan[Result]`` a finder of ``entity`` on both shells.

    The sync function runs the plan on a :class:`psycopg.Connection`, ``.aio`` on an
    AsyncConnection; both are traced as the operation ``name`` (default the plan's name) on
    ``entity``.
    ``cache=True`` caches both with :func:`wxdata.cache.cached` and
    :func:`wxdata.cache.aio.cached`, given ``entity`` and the same ``ttl``, ``tags``, ``key``
    and ``depends``; decoration is refused exactly as those decorators refuse it.
    """

    def decorate(plan: Callable[Concatenate[Any, P], Plan[T]]) -> Finder[P, T]:
        operation = name or plan.__name__
        call = traced_shell(operation, plan, run, entity.name)
        acall = atraced_shell(operation, plan, arun, entity.name)
        signature = _signature(plan, required=cache)
        sync: Any = _present(call, plan, signature)
        twin: Any = _present(acall, plan, signature)
        if cache:
            from wxdata.cache import cached
            from wxdata.cache.aio import cached as acached

            sync = cached(entity, ttl=ttl, tags=tags, key=key, depends=depends)(sync)
            twin = acached(entity, ttl=ttl, tags=tags, key=key, depends=depends)(twin)
        twin.plan = plan
        sync.plan = plan
        sync.aio = twin
        return cast(Finder[P, T], sync)

    return decorate


def _signature(plan: Callable[..., Any], *, required: bool) -> inspect.Signature:
    """The plan's signature with its annotations resolved and its answer unwrapped from
    ``Plan[...]``: what the shells' functions take and return (the cache reads it to key calls
    and to check the value type). Unresolvable annotations refuse a cached finder."""
    signature = inspect.signature(plan)
    namespace = {**vars(effects), **plan.__globals__}
    try:
        cells = dict(zip(plan.__code__.co_freevars,
                         (c.cell_contents for c in plan.__closure__ or ()), strict=True))
        hints = typing.get_type_hints(plan, globalns=namespace, localns=cells)
    except Exception as exc:  # noqa: BLE001 - reported as one refusal, names no value
        if required:
            raise TypeError(f"cannot cache {plan.__qualname__}: its annotations cannot be "
                            f"resolved ({type(exc).__name__})") from None
        return signature
    answer = hints.get("return", inspect.Signature.empty)
    if typing.get_origin(answer) is abc.Generator:
        answer = typing.get_args(answer)[2]
    parameters = [p.replace(annotation=hints.get(p.name, p.annotation))
                  for p in signature.parameters.values()]
    return signature.replace(parameters=parameters, return_annotation=answer)


def _present(fn: Callable[..., Any], plan: Callable[..., Any],
             signature: inspect.Signature) -> Callable[..., Any]:
    """``fn`` under the plan's name, docstring and (resolved) signature."""
    functools.update_wrapper(fn, plan)
    del fn.__wrapped__  # type: ignore[attr-defined]  # the signature below is the whole story
    fn.__signature__ = signature  # type: ignore[attr-defined]
    fn.__annotations__ = {
        **{p.name: p.annotation for p in signature.parameters.values()
           if p.annotation is not inspect.Parameter.empty},
        "return": signature.return_annotation,
    }
    return fn


def is_finder(value: Any) -> bool:
    """Whether ``value`` is a finder made by :func:`finder` (a sync function with its twin)."""
    return callable(value) and callable(getattr(value, "aio", None)) and callable(
        getattr(value, "plan", None))


class ByKey(Protocol[T]):
    """``(conn, ctx, key, *, page, limit) -> Result[Page[R]]``; ``aio`` awaited the same way."""

    def __call__(
        self, conn: Conn, ctx: ExecutionContext, key: Any, /, *, page: int = 1,
        limit: int = DEFAULT_LIMIT,
    ) -> Result[Page[T], DataError]: ...

    @property
    def aio(self) -> Callable[..., Coroutine[Any, Any, Result[Page[T], DataError]]]:
        """The async twin."""
        ...


class InRange(Protocol[T]):
    """``(conn, ctx, start, end, *, student_id, page, limit) -> Result[Page[R]]``; ``aio``."""

    def __call__(
        self, conn: Conn, ctx: ExecutionContext, start: date | datetime, end: date | datetime, /,
        *, student_id: UUID | str | None = None, page: int = 1, limit: int = DEFAULT_LIMIT,
    ) -> Result[Page[T], DataError]: ...

    @property
    def aio(self) -> Callable[..., Coroutine[Any, Any, Result[Page[T], DataError]]]:
        """The async twin."""
        ...


class DueWithin(Protocol[T]):
    """``(conn, ctx, *, days, page, limit) -> Result[Page[R]]``; ``aio`` awaited the same way."""

    def __call__(
        self, conn: Conn, ctx: ExecutionContext, /, *, days: int = 30, page: int = 1,
        limit: int = DEFAULT_LIMIT,
    ) -> Result[Page[T], DataError]: ...

    @property
    def aio(self) -> Callable[..., Coroutine[Any, Any, Result[Page[T], DataError]]]:
        """The async twin."""
        ...


def _frozen_filters(fixed: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """Fixed filters as a tuple of pairs: a finder closes over immutable values only (cacheable)."""
    return tuple(sorted((fixed or {}).items()))


def _frozen_sort(order_by: SortSpec) -> SortSpec:
    """A sort spec as a tuple (a list held by a finder could be changed after it was built)."""
    return None if order_by is None else tuple(order_by)


def _named(plan: Callable[..., Any], entity: Entity[Any], doc: str, fallback: str) -> None:
    plan.__doc__ = doc or fallback
    plan.__qualname__ = f"{plan.__qualname__}[{entity.table}]"


def by_column(
    entity: Entity[R], column: str, *, order_by: SortSpec = None,
    fixed: Mapping[str, Any] | None = None, doc: str = "", cache: bool = False,
) -> ByKey[R]:
    """A finder of rows whose ``column`` equals the key (plus fixed filters), in ``order_by``.

    ``cache=True`` caches it on both shells (see :func:`finder`).
    """
    extra = _frozen_filters(fixed)
    order_by = _frozen_sort(order_by)
    if column not in entity.by_name or any(k not in entity.by_name for k, _ in extra):
        raise ValueError(f"{entity.name}: unknown column in finder")

    def by_column(
        conn: Any, ctx: ExecutionContext, key: Any, /, *, page: int = 1,
        limit: int = DEFAULT_LIMIT,
    ) -> Plan[Result[Page[R], DataError]]:
        return plans.find_many(conn, ctx, entity, {column: key, **dict(extra)},
                               order_by=order_by, page=page, limit=limit)

    _named(by_column, entity, doc, f"{entity.name} rows by {column}.")
    return cast(ByKey[R], finder(entity, cache=cache)(by_column))


def in_range(
    entity: Entity[R], column: str, *, order_by: SortSpec = None,
    fixed: Mapping[str, Any] | None = None, doc: str = "",
) -> InRange[R]:
    """A finder of rows whose ``column`` lies in [start, end], optionally for one student."""
    extra = _frozen_filters(fixed)
    order_by = _frozen_sort(order_by)
    kind = entity.by_name[column].kind
    if kind not in (Kind.DATE, Kind.DATETIME):
        raise ValueError(f"{entity.name}.{column} is not a date column")

    def in_range(
        conn: Any, ctx: ExecutionContext, start: date | datetime, end: date | datetime, /, *,
        student_id: UUID | str | None = None, page: int = 1, limit: int = DEFAULT_LIMIT,
    ) -> Plan[Result[Page[R], DataError]]:
        low, high = _bounds(kind, start, end)
        if low > high:
            return Failure(InvalidQuery("start", "must not be after end"))
        where: dict[str, Any] = {column: {"between": [low, high]}, **dict(extra)}
        if student_id is not None:
            if entity.subject is None:
                return Failure(InvalidQuery("student_id", f"{entity.name} has no student"))
            where[entity.subject] = student_id
        return (yield from plans.find_many(conn, ctx, entity, where, order_by=order_by,
                                           page=page, limit=limit))

    _named(in_range, entity, doc, f"{entity.name} rows with {column} in a range.")
    return cast(InRange[R], finder(entity)(in_range))


def due_within(
    entity: Entity[R], column: str, *, fixed: Mapping[str, Any] | None = None, doc: str = "",
) -> DueWithin[R]:
    """A finder of rows whose ``column`` falls between now and ``days`` ahead, soonest first."""
    extra = _frozen_filters(fixed)
    kind = entity.by_name[column].kind

    def due_within(
        conn: Any, ctx: ExecutionContext, /, *, days: int = 30, page: int = 1,
        limit: int = DEFAULT_LIMIT,
    ) -> Plan[Result[Page[R], DataError]]:
        if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 3650:
            return Failure(InvalidQuery("days", "must be an integer from 0 to 3650"))
        now = datetime.now(UTC)
        low: date | datetime = now if kind is Kind.DATETIME else now.date()
        high: date | datetime = low + timedelta(days=days)
        where = {column: {"between": [low, high]}, **dict(extra)}
        return (yield from plans.find_many(conn, ctx, entity, where,
                                           order_by=((column, "asc"),), page=page, limit=limit))

    _named(due_within, entity, doc, f"{entity.name} rows due within N days.")
    return cast(DueWithin[R], finder(entity)(due_within))


def _bounds(kind: Kind, start: date | datetime, end: date | datetime) -> tuple[Any, Any]:
    """Dates widen to whole days for timestamp columns ([start 00:00, end 24:00))."""
    if kind is Kind.DATETIME:
        def at(d: date | datetime, end_of_day: bool) -> datetime:
            if isinstance(d, datetime):
                return d
            moment = datetime(d.year, d.month, d.day, tzinfo=UTC)
            return moment + timedelta(days=1, microseconds=-1) if end_of_day else moment

        return at(start, False), at(end, True)
    return (start.date() if isinstance(start, datetime) else start,
            end.date() if isinstance(end, datetime) else end)


def today() -> date:
    """Today in UTC, computed per call."""
    return datetime.now(UTC).date()

