"""Generic data access over any entity spec: each function is ``(conn, ctx, entity, ...) -> Result``.

The sync shell: every function runs the plan of the same name in :mod:`wxdata.core.crud` (where
each decision is made: validation, compiled SQL, the audit record riding in the statement, the
lane-2 records of failures and denials) on a :class:`psycopg.Connection`. :mod:`wxdata.aio.crud`
runs the same plans on a :class:`psycopg.AsyncConnection`. Expected outcomes are values
(``Failure(NotFound())``, ``Failure(Conflict())``...), never exceptions.

Audit rides with the data: a write's record, or a PHI read's disclosure record, is part of the same
SQL statement (a data-modifying CTE), so outside a unit of work one round trip is atomic and inside
one the record commits or rolls back with the change. Reads are disclosures even when their
transaction later rolls back, so a rolled-back scope replays its read records on audit lane 2.
Every committed write is announced to :mod:`wxdata.tx.events` (cache invalidation) after COMMIT.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
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
from wxdata.core.crud import ALL_FIELDS, MAX_BULK, STREAM_BATCH, Where
from wxdata.core.crud import _announce as _announce
from wxdata.core.crud import _ordered as _ordered
from wxdata.core.crud import _reads_audited as _reads_audited
from wxdata.core.crud import _record as _record
from wxdata.core.crud import _ride_params as _ride_params
from wxdata.core.crud import _subjects as _subjects
from wxdata.core.crud import _write_params as _write_params
from wxdata.core.drive import run
from wxdata.core.effects import Plan
from wxdata.errors import DataError
from wxdata.query.paging import DEFAULT_LIMIT, KeysetPage, Page, SortSpec
from wxdata.schema.spec import Entity
from wxdata.telemetry import traced, traced_shell

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")
Conn = psycopg.Connection[Any]

__all__ = [
    "ALL_FIELDS",
    "MAX_BULK",
    "STREAM_BATCH",
    "Ops",
    "Where",
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
) -> Callable[Concatenate[Conn, P], T]:
    """The sync function of a plan: same name, parameters and docstring; traced."""
    call = functools.wraps(plan)(traced_shell(plan.__name__, plan, run))
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


@traced("stream")
def stream(
    conn: Conn,
    ctx: ExecutionContext,
    entity: Entity[R],
    consume: Callable[[Iterator[R]], T],
    where: Where = None,
    *,
    order_by: SortSpec = None,
    batch_size: int = STREAM_BATCH,
    include_deleted: bool = False,
) -> Result[T, DataError]:
    """Feed every matching row to ``consume`` through a server-side cursor; return its result.

    The rows are read in a read-only transaction of their own (or the open unit of work) in
    batches, so memory stays flat on large exports. One EXPORT record lists every subject read.
    In a read-only transaction that record goes to audit lane 2; if it cannot be committed the
    answer is ``Failure(Unavailable)``, not ``consume``'s result (``consume`` has seen the rows by
    then: keep it free of side effects that disclose).
    Soft-deleted rows are left out unless ``include_deleted``.
    """
    result: Result[T, DataError] = run(conn, plans.stream(
        conn, ctx, entity, consume, where, order_by=order_by, batch_size=batch_size,
        include_deleted=include_deleted))
    return result
record_disclosure = _shell(plans.record_disclosure)


# --- binding ----------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Ops(Generic[R]):
    """The generic functions with the entity bound: ``students.ops.find_by_id(conn, ctx, id)``.

    One method per name of :data:`wxdata._operations.OPERATIONS`, each the function of the same
    name with ``entity`` filled in (same parameters, defaults and answer; a test compares them).
    """

    entity: Entity[R]

    @row_read
    def find_by_id(
        self, conn: Conn, ctx: ExecutionContext, id: UUID | str, *, include_deleted: bool = False
    ) -> Result[R, DataError]:
        """The row with this id (NotFound if absent, soft-deleted or outside the caller's scope)."""
        return find_by_id(conn, ctx, self.entity, id, include_deleted=include_deleted)

    def find_one(
        self, conn: Conn, ctx: ExecutionContext, where: Where, *, order_by: SortSpec = None,
        include_deleted: bool = False,
    ) -> Result[R, DataError]:
        """The first row matching ``where`` in ``order_by`` order (NotFound if none)."""
        return find_one(conn, ctx, self.entity, where, order_by=order_by,
                        include_deleted=include_deleted)

    def find_many(
        self, conn: Conn, ctx: ExecutionContext, where: Where = None, *,
        order_by: SortSpec = None, page: int = 1, limit: int = DEFAULT_LIMIT,
        include_deleted: bool = False,
    ) -> Result[Page[R], DataError]:
        """A page of rows and the total count, in one round trip."""
        return find_many(conn, ctx, self.entity, where, order_by=order_by, page=page,
                         limit=limit, include_deleted=include_deleted)

    def find_projected(
        self, conn: Conn, ctx: ExecutionContext, select: Sequence[str], where: Where = None, *,
        order_by: SortSpec = None, page: int = 1, limit: int = DEFAULT_LIMIT,
        include_deleted: bool = False,
    ) -> Result[Page[dict[str, Any]], DataError]:
        """A page of only the selected columns (minimum necessary), as dicts, with the total."""
        return find_projected(conn, ctx, self.entity, select, where, order_by=order_by,
                              page=page, limit=limit, include_deleted=include_deleted)

    def find_after(
        self, conn: Conn, ctx: ExecutionContext, where: Where = None, *,
        order_by: SortSpec = None, after: str | None = None, limit: int = DEFAULT_LIMIT,
        include_deleted: bool = False,
    ) -> Result[KeysetPage[R], DataError]:
        """A keyset page after an opaque cursor."""
        return find_after(conn, ctx, self.entity, where, order_by=order_by, after=after,
                          limit=limit, include_deleted=include_deleted)

    def count(
        self, conn: Conn, ctx: ExecutionContext, where: Where = None, *,
        include_deleted: bool = False, recorded: bool = False,
    ) -> Result[int, DataError]:
        """How many rows match. A filter naming rows or students is recorded as a read of them (unless
        ``recorded``: the caller records it)."""
        return count(conn, ctx, self.entity, where, include_deleted=include_deleted,
                     recorded=recorded)

    def exists(
        self, conn: Conn, ctx: ExecutionContext, where: Where = None, *,
        include_deleted: bool = False, recorded: bool = False,
    ) -> Result[bool, DataError]:
        """Whether any row matches. A filter naming rows or students is recorded as a read of them (unless
        ``recorded``: the caller records it)."""
        return exists(conn, ctx, self.entity, where, include_deleted=include_deleted,
                     recorded=recorded)

    def create(
        self, conn: Conn, ctx: ExecutionContext, values: Mapping[str, Any]
    ) -> Result[R, DataError]:
        """Insert a validated row and return it as stored (defaults included)."""
        return create(conn, ctx, self.entity, values)

    def update(
        self, conn: Conn, ctx: ExecutionContext, id: UUID | str, changes: Mapping[str, Any], *,
        expected_version: int | None = None,
    ) -> Result[R, DataError]:
        """Apply a partial update; a stale ``expected_version`` is a Conflict."""
        return update(conn, ctx, self.entity, id, changes, expected_version=expected_version)

    def delete(self, conn: Conn, ctx: ExecutionContext, id: UUID | str) -> Result[None, DataError]:
        """Delete (softly where the entity soft-deletes) a row; audited either way."""
        return delete(conn, ctx, self.entity, id)

    def restore(self, conn: Conn, ctx: ExecutionContext, id: UUID | str) -> Result[R, DataError]:
        """Undo a soft delete and return the row."""
        return restore(conn, ctx, self.entity, id)

    def bulk_create(
        self, conn: Conn, ctx: ExecutionContext, rows: Sequence[Mapping[str, Any]]
    ) -> Result[tuple[UUID, ...], DataError]:
        """Insert many validated rows with COPY, all or nothing; the new ids in input order."""
        return bulk_create(conn, ctx, self.entity, rows)

    def update_where(
        self, conn: Conn, ctx: ExecutionContext, where: Where, changes: Mapping[str, Any], *,
        max_rows: int = 10_000,
    ) -> Result[tuple[UUID, ...], DataError]:
        """Apply the same changes to every live row matching ``where`` (at most ``max_rows``)."""
        return update_where(conn, ctx, self.entity, where, changes, max_rows=max_rows)

    def update_ids(
        self, conn: Conn, ctx: ExecutionContext, ids: Sequence[UUID | str],
        changes: Mapping[str, Any],
    ) -> Result[BulkOutcome, DataError]:
        """Apply the same changes to the live rows with these ids, in one transaction."""
        return update_ids(conn, ctx, self.entity, ids, changes)

    def stream(
        self, conn: Conn, ctx: ExecutionContext, consume: Callable[[Iterator[R]], T],
        where: Where = None, *, order_by: SortSpec = None, batch_size: int = STREAM_BATCH,
        include_deleted: bool = False,
    ) -> Result[T, DataError]:
        """Feed every matching row to ``consume`` through a server-side cursor (one EXPORT)."""
        return stream(conn, ctx, self.entity, consume, where, order_by=order_by,
                      batch_size=batch_size, include_deleted=include_deleted)

    def record_disclosure(
        self, conn: Conn, ctx: ExecutionContext, action: AuditAction = AuditAction.READ, *,
        ids: tuple[UUID, ...] = (), subjects: tuple[UUID, ...] = (), fields: tuple[str, ...] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> Result[None, DataError]:
        """Record that a hand-written read disclosed this entity's data about ``subjects``."""
        return record_disclosure(conn, ctx, self.entity, action, ids=ids, subjects=subjects,
                                 fields=fields, metadata=metadata)


def bind_entity(entity: Entity[R]) -> Ops[R]:
    """The generic functions bound to one entity."""
    return Ops(entity)
