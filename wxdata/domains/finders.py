"""Finder factories: the shapes most domain finders share, built once and bound per entity.

A finder is a plain ``(conn, ctx, ...) -> Result`` function made of the generic CRUD calls, so it
is school-scoped by row-level security and audits its own disclosures. Dates like "today" are
computed per call, never frozen at import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol, TypeVar
from uuid import UUID

from returns.result import Failure, Result

from wxdata import crud
from wxdata.context import ExecutionContext
from wxdata.errors import DataError, InvalidQuery
from wxdata.query.paging import DEFAULT_LIMIT, Page, SortSpec
from wxdata.schema.spec import Entity, Kind

R = TypeVar("R")
T = TypeVar("T")
Conn = crud.Conn


class ByKey(Protocol[T]):
    """``(conn, ctx, key, *, page, limit) -> Result[Page[R]]``."""

    def __call__(
        self, conn: Conn, ctx: ExecutionContext, key: Any, /, *, page: int = 1,
        limit: int = DEFAULT_LIMIT,
    ) -> Result[Page[T], DataError]: ...


class InRange(Protocol[T]):
    """``(conn, ctx, start, end, *, student_id, page, limit) -> Result[Page[R]]``."""

    def __call__(
        self, conn: Conn, ctx: ExecutionContext, start: date | datetime, end: date | datetime, /,
        *, student_id: UUID | str | None = None, page: int = 1, limit: int = DEFAULT_LIMIT,
    ) -> Result[Page[T], DataError]: ...


class DueWithin(Protocol[T]):
    """``(conn, ctx, *, days, page, limit) -> Result[Page[R]]``."""

    def __call__(
        self, conn: Conn, ctx: ExecutionContext, /, *, days: int = 30, page: int = 1,
        limit: int = DEFAULT_LIMIT,
    ) -> Result[Page[T], DataError]: ...


def _frozen_filters(fixed: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """Fixed filters as a tuple of pairs: a finder closes over immutable values only (cacheable)."""
    return tuple(sorted((fixed or {}).items()))


def _frozen_sort(order_by: SortSpec) -> SortSpec:
    """A sort spec as a tuple (a list held by a finder could be changed after it was built)."""
    return None if order_by is None else tuple(order_by)


def by_column(
    entity: Entity[R], column: str, *, order_by: SortSpec = None,
    fixed: Mapping[str, Any] | None = None, doc: str = "",
) -> ByKey[R]:
    """A finder of rows whose ``column`` equals the key (plus fixed filters), in ``order_by``."""
    extra = _frozen_filters(fixed)
    order_by = _frozen_sort(order_by)
    if column not in entity.by_name or any(k not in entity.by_name for k, _ in extra):
        raise ValueError(f"{entity.name}: unknown column in finder")

    def find(
        conn: Conn, ctx: ExecutionContext, key: Any, /, *, page: int = 1,
        limit: int = DEFAULT_LIMIT,
    ) -> Result[Page[R], DataError]:
        return crud.find_many(conn, ctx, entity, {column: key, **dict(extra)},
                              order_by=order_by, page=page, limit=limit)

    find.__doc__ = doc or f"{entity.name} rows by {column}."
    return find


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

    def find(
        conn: Conn, ctx: ExecutionContext, start: date | datetime, end: date | datetime, /, *,
        student_id: UUID | str | None = None, page: int = 1, limit: int = DEFAULT_LIMIT,
    ) -> Result[Page[R], DataError]:
        low, high = _bounds(kind, start, end)
        if low > high:
            return Failure(InvalidQuery("start", "must not be after end"))
        where: dict[str, Any] = {column: {"between": [low, high]}, **dict(extra)}
        if student_id is not None:
            if entity.subject is None:
                return Failure(InvalidQuery("student_id", f"{entity.name} has no student"))
            where[entity.subject] = student_id
        return crud.find_many(conn, ctx, entity, where, order_by=order_by, page=page,
                              limit=limit)

    find.__doc__ = doc or f"{entity.name} rows with {column} in a range."
    return find


def due_within(
    entity: Entity[R], column: str, *, fixed: Mapping[str, Any] | None = None, doc: str = "",
) -> DueWithin[R]:
    """A finder of rows whose ``column`` falls between now and ``days`` ahead, soonest first."""
    extra = _frozen_filters(fixed)
    kind = entity.by_name[column].kind

    def find(
        conn: Conn, ctx: ExecutionContext, /, *, days: int = 30, page: int = 1,
        limit: int = DEFAULT_LIMIT,
    ) -> Result[Page[R], DataError]:
        if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 3650:
            return Failure(InvalidQuery("days", "must be an integer from 0 to 3650"))
        now = datetime.now(UTC)
        low: date | datetime = now if kind is Kind.DATETIME else now.date()
        high: date | datetime = low + timedelta(days=days)
        where = {column: {"between": [low, high]}, **dict(extra)}
        return crud.find_many(conn, ctx, entity, where,
                              order_by=[(column, "asc")], page=page, limit=limit)

    find.__doc__ = doc or f"{entity.name} rows due within N days."
    return find


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


Finder = Callable[..., Result[Any, DataError]]
