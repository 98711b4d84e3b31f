"""The audit records of the data plans: riding parameters, lane-2 records of failures and scope
denials, disclosure records of reads (riding, or lane 2 in a read-only unit of work), write events."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any
from uuid import UUID

import attrs
from returns.result import Failure

from wxdata.audit import denials
from wxdata.audit import sql as audit_sql
from wxdata.audit.ownership import note_write, reads_recorded
from wxdata.audit.record import (
    READ,
    AuditAction,
    AuditRecord,
    compliance_of,
    disclosed_fields,
    severity_of,
)
from wxdata.audit.record import params as audit_params
from wxdata.config import settings
from wxdata.context import ExecutionContext
from wxdata.core import ride
from wxdata.core.effects import Detached, Execute, Plan, Rows
from wxdata.core.execute import (
    _Err,
    _run_built,
    _run_named,
)
from wxdata.errors import (
    DataError,
    NotFound,
)
from wxdata.schema.spec import Entity
from wxdata.tx.decorators import UNRECORDED
from wxdata.tx.events import WriteEvent, announce_plan, unheard
from wxdata.tx.scope import (
    AnyConn,
    Scope,
    current_scope,
    disclosed_on_lane_two,
    role_facts,
)

#: Whether a read records its own disclosure (not when an ``audited`` decorator owns it; a
#: break-glass read always, PHI or not): :func:`~wxdata.audit.ownership.reads_recorded` itself.
_reads_audited = reads_recorded


def _writes_audited() -> bool:
    """Whether writes record themselves (always, when auditing is on); tells the owner."""
    if settings().audit_enabled:
        note_write()
        return True
    return False


def _record(
    ctx: ExecutionContext,
    entity: Entity[Any],
    action: AuditAction,
    *,
    success: bool = True,
    error: DataError | None = None,
    fields: tuple[str, ...] = (),
    entity_ids: tuple[UUID, ...] = (),
    subjects: tuple[UUID, ...] = (),
    metadata: Mapping[str, Any] | None = None,
) -> AuditRecord:
    return AuditRecord(
        action=action,
        entity_type=entity.name,
        entity_id=entity_ids[0] if len(entity_ids) == 1 else None,
        entity_ids=entity_ids,
        subject_student_id=subjects[0] if len(set(subjects)) == 1 else None,
        subject_ids=tuple(dict.fromkeys(subjects)),
        fields_disclosed=disclosed_fields(entity, fields),
        is_phi=entity.is_phi,
        compliance_type=compliance_of(entity),
        severity=severity_of(action, entity, ctx, success),
        success=success,
        error_message=error.code if error is not None else None,
        metadata=metadata,
    )


def _riding(
    ctx: ExecutionContext, entity: Entity[Any], action: AuditAction, fields: tuple[str, ...] = ()
) -> audit_sql.RecordTemplate:
    """The record of a riding statement, its shape and its free-form parameters: ids and subjects
    come from SQL and who acts is bound per statement (``.params(ctx)``), so the rest depends
    only on the entity, the action, the fields and the break-glass flag (built once for all)."""
    return audit_sql.record_template(ctx, _riding_record, entity, action, fields)


def _riding_record(ctx: ExecutionContext, entity: Entity[Any], action: AuditAction,
                   fields: tuple[str, ...]) -> AuditRecord:
    """The record a riding statement's template is made from (its ids come from SQL)."""
    return _record(ctx, entity, action, fields=fields)


def _ride_params(ctx: ExecutionContext, record: AuditRecord) -> dict[str, Any]:
    return audit_params(ctx, record)


def _subjects(entity: Entity[Any], rows: Iterable[Any]) -> tuple[UUID, ...]:
    if entity.subject is None:
        return ()
    out = []
    for r in rows:
        value = r.get(entity.subject) if isinstance(r, Mapping) else getattr(r, entity.subject)
        if value is not None:
            out.append(value)
    return tuple(out)


def _ids(entity: Entity[Any], rows: Iterable[Any]) -> tuple[UUID, ...]:
    return tuple(r[entity.pk] if isinstance(r, Mapping) else getattr(r, entity.pk) for r in rows)


def _outside_scope(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], ids: tuple[UUID, ...]
) -> Plan[bool]:
    """After a miss: whether any of ``ids`` exists outside the caller's school scope.

    Asked only when row-level security could have hidden the rows (an RLS-subject connection, a
    school-scoped entity, a non-bypassing context). A failure to ask counts as "no" (the caller's
    answer is NotFound either way).
    """
    if not ids or not denials.may_hide(entity, ctx):
        return False
    if (yield from role_facts(conn)).privileged:
        return False
    try:
        rows = yield from _run_named(conn, ctx, entity.name, denials.OUTSIDE_SCOPE_SQL,
                                     denials.check_params(entity, ids))
    except _Err:
        return False
    return bool(rows and rows[0][0])


def _note_scope_denial(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], action: AuditAction,
    ids: tuple[UUID, ...],
) -> Plan[bool]:
    """Record ACCESS_DENIED on lane 2 when ``ids`` missed because they are outside the scope."""
    if not settings().audit_enabled:
        return False
    if not (yield from _outside_scope(conn, ctx, entity, ids)):
        return False
    yield Detached(ctx, denials.denial_record(entity, action, ids))
    return True


def _fail_write(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], action: AuditAction,
    error: DataError, entity_id: UUID | None = None,
) -> Plan[Failure[DataError]]:
    """Record a failed or denied write on lane 2 (it survives the rollback), then fail.

    A NotFound for an id outside the caller's school scope is recorded as ACCESS_DENIED
    (reason "outside school scope"); the caller still gets the NotFound.
    """
    if (isinstance(error, NotFound) and entity_id is not None
            and (yield from _note_scope_denial(conn, ctx, entity, action, (entity_id,)))):
        note_write()
        return Failure(error)
    if _writes_audited():
        denied = error.code == "FORBIDDEN"
        record = _record(
            ctx, entity, AuditAction.ACCESS_DENIED if denied else action, success=False,
            error=error, entity_ids=(entity_id,) if entity_id else (),
            metadata={"attempted": action.value} if denied else None,
        )
        yield Detached(ctx, record)
    return Failure(error)


def _read(
    conn: AnyConn,
    ctx: ExecutionContext,
    entity: Entity[Any],
    sql: str,
    params: dict[str, Any],
    out_columns: tuple[str, ...],
    fields: tuple[str, ...],
    *,
    hit: str | None = None,
    one_row: bool = False,
    build: Callable[[Rows], list[Any]],
) -> Plan[list[Any]]:
    """Run a read; when it discloses PHI, its audit record rides in the same statement.

    ``one_row``: the statement returns at most one row (a primary-key lookup), so its record is
    built from that row without aggregating. A read no one records is the statement's own plan
    (no generator of this function between the caller and the driver).
    """
    if not _reads_audited(entity, ctx):
        return _run_built(conn, ctx, entity.name, sql, params, build)
    return _recorded_read(conn, ctx, entity, sql, params, out_columns, fields, hit, one_row, build)


def _recorded_read(
    conn: AnyConn,
    ctx: ExecutionContext,
    entity: Entity[Any],
    sql: str,
    params: dict[str, Any],
    out_columns: tuple[str, ...],
    fields: tuple[str, ...],
    hit: str | None,
    one_row: bool,
    build: Callable[[Rows], list[Any]],
) -> Plan[list[Any]]:
    """:func:`_read` of a read whose disclosure wxdata records."""
    scope = current_scope(conn)
    riding = _riding(ctx, entity, READ, fields)
    if disclosed_on_lane_two(conn, scope):  # no INSERT possible, or none the caller keeps
        rows = yield from _run_built(conn, ctx, entity.name, sql, params, build)
        if rows and not (yield from _detached_read(ctx, entity, riding.base, rows)):
            raise _Err(UNRECORDED)  # no record, no data
        return rows
    # outside a unit of work the read is its own transaction: its record's commit may be relaxed
    relaxed = scope is None and audit_sql.relaxed_commit(settings().audit_read_commit,
                                                         conn.autocommit)
    ridden = ride.read(entity, sql, out_columns, hit, riding.shape, one_row, relaxed)
    merged = riding.params(ctx)  # the record's ``a_*`` parameters; the read's own never start "a_"
    merged.update(params)
    rows = yield from _run_built(conn, ctx, entity.name, ridden, merged, build)
    if scope is not None and rows:
        base = riding.base
        scope.replay_on_rollback(lambda: _detached_read(ctx, entity, base, rows))
    return rows


def _detached_read(
    ctx: ExecutionContext, entity: Entity[Any], base: AuditRecord, rows: list[Any]
) -> Plan[bool]:
    """Write a read's disclosure record on lane 2; whether it was committed."""
    record = attrs.evolve(base, **_read_ids(_ids(entity, rows), _subjects(entity, rows)))
    kept: bool = yield Detached(ctx, record)
    return kept


def _read_ids(ids: tuple[UUID, ...], subjects: tuple[UUID, ...]) -> dict[str, Any]:
    """The id fields of the record of a read that returned rows with these ids and (non-NULL)
    subjects: every id, the one id when there is one row, every subject once, the one subject
    when there is exactly one. A record riding in the read's statement aggregates the same
    (:func:`wxdata.audit.sql._aggregated`), its arrays in an order of the server's choosing."""
    distinct = tuple(dict.fromkeys(subjects))
    return {"entity_id": ids[0] if len(ids) == 1 else None, "entity_ids": ids,
            "subject_student_id": distinct[0] if len(distinct) == 1 else None,
            "subject_ids": distinct}


def _write_record(
    conn: AnyConn, ctx: ExecutionContext, scope: Scope, record: AuditRecord
) -> Plan[bool]:
    """Insert a record in the open scope (lane 1), or on lane 2 when the scope is read-only;
    whether it was written (lane 1 raises on error)."""
    if scope.read_only:
        kept: bool = yield Detached(ctx, record)
        return kept
    yield Execute(*audit_sql.record_insert(ctx, record), settings().prepare, "audit")
    return True


def _announce(conn: AnyConn, entity: Entity[Any], action: str, ids: tuple[UUID, ...],
              subjects: tuple[UUID, ...] = (), *, row: Any = None,
              columns: tuple[str, ...] | None = None) -> Plan[None]:
    """Announce a write (cache invalidation after COMMIT); on an async connection outside a unit
    of work the async driver awaits the listeners (the async Redis client) before going on.
    ``row``: the one row written, whose subject the event names (read only when announced).
    ``columns``: the columns an update set (None: any may have changed).
    A write nobody hears (:func:`~wxdata.tx.events.unheard`) builds no event."""
    if unheard(conn):
        return
    if row is not None:
        subjects = _subjects(entity, (row,))
    yield from announce_plan(
        conn, WriteEvent(entity.name, action, ids, tuple(dict.fromkeys(subjects)), columns))
