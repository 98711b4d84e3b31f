"""Scope denials: the trace a cross-school attempt leaves.

Row-level security hides another school's rows, so a by-id read, update, delete or restore of one
simply finds nothing and the caller gets ``NotFound`` (the API is no existence oracle). After such
a miss -- never on the success path -- wxdata asks the database function
``wxdata_outside_scope(table, ids)`` (migration ``0204_scope_denials.sql``) whether any of the ids
exists outside the caller's scope; if so it writes one ACCESS_DENIED record on audit lane 2
(surviving any rollback) with the reason :data:`OUTSIDE_SCOPE` and the attempted action. The record
holds ids only: no row values, no subject.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from wxdata.audit.record import AuditAction, AuditRecord, AuditSeverity, compliance_of
from wxdata.context import ExecutionContext
from wxdata.schema.spec import Entity

#: Reason recorded on an ACCESS_DENIED record for an id that exists outside the caller's scope.
OUTSIDE_SCOPE = "outside school scope"

#: One boolean: does any of the ids exist outside the caller's school scope?
OUTSIDE_SCOPE_SQL = "SELECT wxdata_outside_scope(%(_table)s::regclass, %(_ids)s::uuid[])"


def may_hide(entity: Entity[Any], ctx: ExecutionContext) -> bool:
    """Whether row-level security could have hidden a row of ``entity`` from ``ctx``.

    False for tables without a school or student link (not school-scoped) and for contexts that
    bypass scoping (system, break-glass): a miss there is a plain absence.
    """
    if ctx.is_system or ctx.is_break_glass:
        return False
    return entity.table == "students" or "school_id" in entity.by_name or (
        "student_id" in entity.by_name)


def check_params(entity: Entity[Any], ids: tuple[UUID, ...]) -> dict[str, Any]:
    """Bound parameters of :data:`OUTSIDE_SCOPE_SQL`."""
    return {"_table": entity.table, "_ids": list(ids)}


def denial_record(
    entity: Entity[Any], action: AuditAction, ids: tuple[UUID, ...]
) -> AuditRecord:
    """The ACCESS_DENIED record of an attempt at ``action`` on ids outside the caller's scope."""
    return AuditRecord(
        action=AuditAction.ACCESS_DENIED,
        entity_type=entity.name,
        entity_id=ids[0] if len(ids) == 1 else None,
        entity_ids=ids,
        is_phi=entity.is_phi,
        compliance_type=compliance_of(entity),
        severity=AuditSeverity.HIGH,
        success=False,
        error_message=OUTSIDE_SCOPE,
        metadata={"attempted": action.value, "reason": OUTSIDE_SCOPE},
    )
