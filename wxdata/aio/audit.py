"""Async audit: ``audited`` for ``async def`` functions and the explicit ``log_*`` calls.

The same plans as :mod:`wxdata.audit.decorator` and :mod:`wxdata.audit.log` (one record per call,
lanes chosen by the connection's state, fail closed when a disclosure cannot be recorded), driven
on an AsyncConnection. Lane-2 records are written on the process's bounded lane pool from a worker
thread, so the event loop never blocks on it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from returns.result import Result

from wxdata.audit import log as plans
from wxdata.audit.decorator import Audit, Extract
from wxdata.audit.disclosures import DisclosureRecord, disclosure_record
from wxdata.audit.record import AuditAction, AuditRecord
from wxdata.context import ExecutionContext
from wxdata.core.drive import arun
from wxdata.core.effects import Plan
from wxdata.errors import DataError
from wxdata.schema.spec import Entity
from wxdata.tx.decorators import tx_options

P = ParamSpec("P")
T = TypeVar("T")
AConn = psycopg.AsyncConnection[Any]
AFn = Callable[Concatenate[AConn, ExecutionContext, P], Awaitable[Result[T, DataError]]]

__all__ = [
    "audited",
    "log_access_denied",
    "log_bulk",
    "log_create",
    "log_delete",
    "log_export",
    "log_failure",
    "log_read",
    "log_transaction",
    "log_update",
    "record_disclosure_to",
    "write_disclosure",
    "write_record",
    "write_surviving",
]


def audited(
    entity: Entity[Any],
    action: AuditAction = AuditAction.READ,
    *,
    ids: Extract | None = None,
    subjects: Extract | None = None,
    fields: Sequence[str] | None = None,
    name: str | None = None,
) -> Callable[[AFn[P, T]], AFn[P, T]]:
    """Audit every call of an ``async def f(conn, ctx, ...) -> Result`` (see
    :func:`wxdata.audit.audited`: same records, same lanes, same fail-closed rule)."""
    action = AuditAction(action)

    def decorate(fn: AFn[P, T]) -> AFn[P, T]:
        audit = Audit(entity, action, name or f"{fn.__module__}.{fn.__qualname__}",
                      tx_options(fn), ids, subjects, fields)

        @functools.wraps(fn)
        async def wrapper(
            conn: AConn, ctx: ExecutionContext, /, *args: P.args, **kwargs: P.kwargs
        ) -> Result[T, DataError]:
            result: Result[T, DataError] = await arun(
                conn, audit.call(conn, ctx, lambda: fn(conn, ctx, *args, **kwargs)))
            return result

        return wrapper

    return decorate


def _shell(
    plan: Callable[Concatenate[Any, P], Plan[T]],
) -> Callable[Concatenate[AConn, P], Coroutine[Any, Any, T]]:
    @functools.wraps(plan)
    async def call(conn: AConn, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await arun(conn, plan(conn, *args, **kwargs))

    call.__module__ = __name__
    return call


log_create = _shell(plans.create_plan)
log_read = _shell(plans.read_plan)
log_update = _shell(plans.update_plan)
log_delete = _shell(plans.delete_plan)
log_bulk = _shell(plans.bulk_plan)
log_export = _shell(plans.export_plan)
log_transaction = _shell(plans.transaction_plan)
log_failure = _shell(plans.failure_plan)
log_access_denied = _shell(plans.denied_plan)


async def write_record(
    conn: AConn, ctx: ExecutionContext, record: AuditRecord, *, disclosure: bool = False
) -> Result[None, DataError]:
    """Write a success-path record on the lane the connection's state calls for."""
    return await arun(conn, plans.record_plan(conn, ctx, record, disclosure=disclosure))


async def write_disclosure(conn: AConn, ctx: ExecutionContext, due: plans.DueRecord
                           ) -> Result[None, DataError]:
    """Write a due record (the twin of :func:`wxdata.audit.log.write_disclosure`)."""
    return await arun(conn, plans.due_plan(conn, ctx, due))


async def record_disclosure_to(
    conn: AConn, ctx: ExecutionContext, entity: Entity[Any], disclosure: DisclosureRecord
) -> Result[None, DataError]:
    """Record a disclosure to (or a request from) an outside party: the twin of
    :func:`wxdata.audit.disclosures.record_disclosure_to` (always recorded, same lanes)."""
    return await write_record(conn, ctx, disclosure_record(ctx, entity, disclosure),
                              disclosure=True)


async def write_surviving(
    conn: AConn, ctx: ExecutionContext, record: AuditRecord
) -> Result[None, DataError]:
    """Write a record on audit lane 2 (committed at once); ``Failure(Unavailable)`` if lost."""
    return await arun(conn, plans.surviving_plan(conn, ctx, record))
