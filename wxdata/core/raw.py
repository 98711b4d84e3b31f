"""Plans for hand-written SQL: a scoped statement, and the disclosure record of its result."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from returns.result import Failure, Result, Success

from wxdata.audit.log import detached_plan
from wxdata.audit.record import (
    AuditAction,
)
from wxdata.audit.sql import record_insert
from wxdata.context import ExecutionContext
from wxdata.core.auditing import (
    _reads_audited,
    _record,
)
from wxdata.core.effects import Detached, Plan
from wxdata.core.execute import (
    _Err,
    _run_named,
)
from wxdata.errors import DataError
from wxdata.schema.spec import Entity
from wxdata.tx.decorators import UNRECORDED
from wxdata.tx.scope import (
    AnyConn,
    current_scope,
)


def fetch(
    conn: AnyConn,
    ctx: ExecutionContext,
    sql: str,
    params: Mapping[str, Any] | None = None,
    *,
    entity: Entity[Any] | None = None,
) -> Plan[Result[list[tuple[Any, ...]], DataError]]:
    """Run a hand-written, parameterised statement with the context applied; rows as tuples.

    For queries the generic functions do not cover (aggregates, joins). School scoping applies
    (row-level security); auditing a PHI result is the caller's ``audited`` decorator's job.
    """
    try:
        rows = yield from _run_named(conn, ctx, entity.name if entity else "", sql, params or {})
    except _Err as err:
        return Failure(err.error)
    return Success(rows)


def record_disclosure(
    conn: AnyConn,
    ctx: ExecutionContext,
    entity: Entity[Any],
    action: AuditAction = AuditAction.READ,
    *,
    ids: tuple[UUID, ...] = (),
    subjects: tuple[UUID, ...] = (),
    fields: tuple[str, ...] = (),
    metadata: Mapping[str, Any] | None = None,
) -> Plan[Result[None, DataError]]:
    """Record that a hand-written read disclosed ``entity`` data about ``subjects``.

    Skipped when an ``audited`` decorator owns the call or reads are not audited. Inside a unit
    of work the record rides lane 1 and is replayed on lane 2 if the scope rolls back (the data
    was disclosed regardless); in a read-only scope it goes to lane 2 directly.
    """
    if not _reads_audited(entity, ctx):
        return Success(None)
    record = _record(ctx, entity, action, entity_ids=ids, subjects=subjects, fields=fields,
                     metadata=metadata)
    scope = current_scope(conn)
    if scope is not None and scope.read_only:
        if (yield Detached(ctx, record)):
            return Success(None)
        return Failure(UNRECORDED)
    try:
        yield from _run_named(conn, ctx, "AuditLog", *record_insert(ctx, record))
    except _Err as err:
        return Failure(err.error)
    if scope is not None:
        scope.replay_on_rollback(lambda: detached_plan(ctx, record))
    return Success(None)
