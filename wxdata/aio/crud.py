"""The generic data functions on an AsyncConnection: ``await find_by_id(conn, ctx, entity, id)``.

Every function runs the plan of the same name in :mod:`wxdata.core.crud` (the one the sync
:mod:`wxdata.crud` runs), so results, errors and guarantees are the same: read records ride in the
same statement, write records in the same statement, the school scope (signed token) is applied
per transaction, failures and denials go to audit lane 2, write events after COMMIT only.

``stream`` hands ``consume`` an *async* iterator of rows; ``consume`` may be a coroutine function.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar
from uuid import UUID

import attrs
import psycopg
from returns.result import Result

from wxdata._operations import row_read
from wxdata.audit.record import AuditAction
from wxdata.bulk import BulkOutcome
from wxdata.context import ExecutionContext
from wxdata.core import crud as plans
from wxdata.core.crud import STREAM_BATCH, Where
from wxdata.core.drive import arun
from wxdata.core.effects import Plan
from wxdata.errors import DataError
from wxdata.query.paging import DEFAULT_LIMIT, KeysetPage, Page, SortSpec
from wxdata.schema.spec import Entity
from wxdata.telemetry import atraced_shell, traced

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")
AConn = psycopg.AsyncConnection[Any]

__all__ = [
    "AsyncOps",
    "bind_entity",
    "bulk_create",
    "count",
    "create",
    "delete",
    "exists",
    "fetch",
    "find_after",
    "find_by_id",
    "find_many",
    "find_one",
    "find_projected",
    "record_disclosure",
    "restore",
    "stream",
    "update",
    "update_ids",
    "update_where",
]


def _shell(
    plan: Callable[Concatenate[Any, P], Plan[T]],
) -> Callable[Concatenate[AConn, P], Coroutine[Any, Any, T]]:
    """The async function of a plan: same name, parameters and docstring; traced."""
    call = functools.wraps(plan)(atraced_shell(plan.__name__, plan, arun))
    call.__module__ = __name__
    return call


find_by_id = row_read(_shell(plans.find_by_id))
find_many = _shell(plans.find_many)
find_projected = _shell(plans.find_projected)
find_one = _shell(plans.find_one)
find_after = _shell(plans.find_after)
count = _shell(plans.count)
exists = _shell(plans.exists)
create = _shell(plans.create)
update = _shell(plans.update)
delete = _shell(plans.delete)
restore = _shell(plans.restore)
bulk_create = _shell(plans.bulk_create)
update_where = _shell(plans.update_where)
update_ids = _shell(plans.update_ids)
fetch = _shell(plans.fetch)
record_disclosure = _shell(plans.record_disclosure)


@traced("stream")
async def stream(
    conn: AConn,
    ctx: ExecutionContext,
    entity: Entity[R],
    consume: Callable[[AsyncIterator[R]], Awaitable[T] | T],
    where: Where = None,
    *,
    order_by: SortSpec = None,
    batch_size: int = STREAM_BATCH,
    include_deleted: bool = False,
) -> Result[T, DataError]:
    """Feed every matching row (an async iterator) to ``consume`` through a server-side cursor;
    its (awaited) value is the answer. See :func:`wxdata.crud.stream`."""
    result: Result[T, DataError] = await arun(conn, plans.stream(
        conn, ctx, entity, consume, where, order_by=order_by, batch_size=batch_size,
        include_deleted=include_deleted))
    return result


@attrs.frozen(slots=True)
class AsyncOps(Generic[R]):
    """The async generic functions with the entity bound: ``await ops.find_by_id(conn, ctx, id)``.

    One coroutine method per name of :data:`wxdata._operations.OPERATIONS`, the twin of the
    method of the same name on :class:`wxdata.crud.Ops` (a test compares them).
    """

    entity: Entity[R]

    @row_read
    async def find_by_id(
        self, conn: AConn, ctx: ExecutionContext, id: UUID | str, *, include_deleted: bool = False
    ) -> Result[R, DataError]:
        """The row with this id (NotFound if absent, soft-deleted or outside the caller's scope)."""
        return await find_by_id(conn, ctx, self.entity, id, include_deleted=include_deleted)

    async def find_one(
        self, conn: AConn, ctx: ExecutionContext, where: Where, *, order_by: SortSpec = None,
        include_deleted: bool = False,
    ) -> Result[R, DataError]:
        """The first row matching ``where`` in ``order_by`` order (NotFound if none)."""
        return await find_one(conn, ctx, self.entity, where, order_by=order_by,
                              include_deleted=include_deleted)

    async def find_many(
        self, conn: AConn, ctx: ExecutionContext, where: Where = None, *,
        order_by: SortSpec = None, page: int = 1, limit: int = DEFAULT_LIMIT,
        include_deleted: bool = False,
    ) -> Result[Page[R], DataError]:
        """A page of rows and the total count, in one round trip."""
        return await find_many(conn, ctx, self.entity, where, order_by=order_by, page=page,
                               limit=limit, include_deleted=include_deleted)

    async def find_projected(
        self, conn: AConn, ctx: ExecutionContext, select: Sequence[str], where: Where = None, *,
        order_by: SortSpec = None, page: int = 1, limit: int = DEFAULT_LIMIT,
        include_deleted: bool = False,
    ) -> Result[Page[dict[str, Any]], DataError]:
        """A page of only the selected columns (minimum necessary), as dicts, with the total."""
        return await find_projected(conn, ctx, self.entity, select, where, order_by=order_by,
                                    page=page, limit=limit, include_deleted=include_deleted)

    async def find_after(
        self, conn: AConn, ctx: ExecutionContext, where: Where = None, *,
        order_by: SortSpec = None, after: str | None = None, limit: int = DEFAULT_LIMIT,
        include_deleted: bool = False,
    ) -> Result[KeysetPage[R], DataError]:
        """A keyset page after an opaque cursor."""
        return await find_after(conn, ctx, self.entity, where, order_by=order_by, after=after,
                                limit=limit, include_deleted=include_deleted)

    async def count(
        self, conn: AConn, ctx: ExecutionContext, where: Where = None, *,
        include_deleted: bool = False, recorded: bool = False,
    ) -> Result[int, DataError]:
        """How many rows match. A filter naming rows or students is recorded as a read of them (unless
        ``recorded``: the caller records it)."""
        return await count(conn, ctx, self.entity, where, include_deleted=include_deleted,
                           recorded=recorded)

    async def exists(
        self, conn: AConn, ctx: ExecutionContext, where: Where = None, *,
        include_deleted: bool = False, recorded: bool = False,
    ) -> Result[bool, DataError]:
        """Whether any row matches. A filter naming rows or students is recorded as a read of them (unless
        ``recorded``: the caller records it)."""
        return await exists(conn, ctx, self.entity, where, include_deleted=include_deleted,
                           recorded=recorded)

    async def create(
        self, conn: AConn, ctx: ExecutionContext, values: Mapping[str, Any]
    ) -> Result[R, DataError]:
        """Insert a validated row and return it as stored (defaults included)."""
        return await create(conn, ctx, self.entity, values)

    async def update(
        self, conn: AConn, ctx: ExecutionContext, id: UUID | str, changes: Mapping[str, Any], *,
        expected_version: int | None = None,
    ) -> Result[R, DataError]:
        """Apply a partial update; a stale ``expected_version`` is a Conflict."""
        return await update(conn, ctx, self.entity, id, changes,
                            expected_version=expected_version)

    async def delete(
        self, conn: AConn, ctx: ExecutionContext, id: UUID | str
    ) -> Result[None, DataError]:
        """Delete (softly where the entity soft-deletes) a row; audited either way."""
        return await delete(conn, ctx, self.entity, id)

    async def restore(
        self, conn: AConn, ctx: ExecutionContext, id: UUID | str
    ) -> Result[R, DataError]:
        """Undo a soft delete and return the row."""
        return await restore(conn, ctx, self.entity, id)

    async def bulk_create(
        self, conn: AConn, ctx: ExecutionContext, rows: Sequence[Mapping[str, Any]]
    ) -> Result[tuple[UUID, ...], DataError]:
        """Insert many validated rows with COPY, all or nothing; the new ids in input order."""
        return await bulk_create(conn, ctx, self.entity, rows)

    async def update_where(
        self, conn: AConn, ctx: ExecutionContext, where: Where, changes: Mapping[str, Any], *,
        max_rows: int = 10_000,
    ) -> Result[tuple[UUID, ...], DataError]:
        """Apply the same changes to every live row matching ``where`` (at most ``max_rows``)."""
        return await update_where(conn, ctx, self.entity, where, changes, max_rows=max_rows)

    async def update_ids(
        self, conn: AConn, ctx: ExecutionContext, ids: Sequence[UUID | str],
        changes: Mapping[str, Any],
    ) -> Result[BulkOutcome, DataError]:
        """Apply the same changes to the live rows with these ids, in one transaction."""
        return await update_ids(conn, ctx, self.entity, ids, changes)

    async def stream(
        self, conn: AConn, ctx: ExecutionContext,
        consume: Callable[[AsyncIterator[R]], Awaitable[T] | T], where: Where = None, *,
        order_by: SortSpec = None, batch_size: int = STREAM_BATCH, include_deleted: bool = False,
    ) -> Result[T, DataError]:
        """Feed every matching row (an async iterator) to ``consume`` (one EXPORT record)."""
        return await stream(conn, ctx, self.entity, consume, where, order_by=order_by,
                            batch_size=batch_size, include_deleted=include_deleted)

    async def record_disclosure(
        self, conn: AConn, ctx: ExecutionContext, action: AuditAction = AuditAction.READ, *,
        ids: tuple[UUID, ...] = (), subjects: tuple[UUID, ...] = (), fields: tuple[str, ...] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> Result[None, DataError]:
        """Record that a hand-written read disclosed this entity's data about ``subjects``."""
        return await record_disclosure(conn, ctx, self.entity, action, ids=ids, subjects=subjects,
                                       fields=fields, metadata=metadata)


def bind_entity(entity: Entity[R]) -> AsyncOps[R]:
    """The async generic functions bound to one entity."""
    return AsyncOps(entity)
