"""Medication administration logs: every generic operation on ``medication_logs``, and the finders."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import attrs
from returns.pipeline import is_successful
from returns.result import Result

from wxdata.cache import register_value_type
from wxdata.context import ExecutionContext
from wxdata.core import crud as plans
from wxdata.core.effects import Plan
from wxdata.crud import bind_entity
from wxdata.domains.finders import disclosed_fact, finder, in_range
from wxdata.errors import DataError
from wxdata.query.paging import DEFAULT_LIMIT, Page
from wxdata.schema.medication import MEDICATION_LOGS, MedicationLog, MedicationLogStatus
from wxdata.tx.scope import AnyConn

ENTITY = MEDICATION_LOGS
ops = bind_entity(ENTITY)
find_by_id = ops.find_by_id
find_one = ops.find_one
find_many = ops.find_many
find_projected = ops.find_projected
find_after = ops.find_after
count = ops.count
exists = ops.exists
create = ops.create
update = ops.update
delete = ops.delete
restore = ops.restore
bulk_create = ops.bulk_create
update_where = ops.update_where
update_ids = ops.update_ids
stream = ops.stream
record_disclosure = ops.record_disclosure

find_by_date_range = in_range(MEDICATION_LOGS, "administered_at",
                              order_by=[("administered_at", "desc")],
                              doc="Logs administered within [start, end], newest first.")


@finder(MEDICATION_LOGS)
def find_pending(
    conn: AnyConn, ctx: ExecutionContext, *, student_id: UUID | str | None = None, page: int = 1,
    limit: int = DEFAULT_LIMIT,
) -> Plan[Result[Page[MedicationLog], DataError]]:
    """Doses still pending, soonest scheduled first (optionally for one student)."""
    where: dict[str, object] = {"status": MedicationLogStatus.PENDING.value}
    if student_id is not None:
        where["student_id"] = student_id
    return plans.find_many(conn, ctx, MEDICATION_LOGS, where,
                           order_by=(("scheduled_at", "asc"),), page=page, limit=limit)


@register_value_type
@attrs.frozen(slots=True)
class Adherence:
    """Scheduled vs administered doses, the rate in percent (None when nothing scheduled), and
    the student they concern (which the record of a cached answer's hit names)."""

    scheduled: int
    administered: int
    rate: int | None
    student_id: UUID | None = None


@finder(MEDICATION_LOGS, cache=True)
def adherence_rate(
    conn: AnyConn, ctx: ExecutionContext, student_id: UUID | str, *,
    medication_id: UUID | str | None = None, start: datetime | None = None,
    end: datetime | None = None,
) -> Plan[Result[Adherence, DataError]]:
    """Adherence over scheduled doses, counted in SQL (never by loading the rows).

    The answer is a fact about the student's medication, so it is recorded as a READ of the
    doses' schedule and status naming the student (whatever the counts, none included); when that
    record cannot be written the answer is a Failure and no counts."""
    where: dict[str, object] = {"student_id": student_id, "scheduled_at": None}
    where["scheduled_at"] = {"is_null": False}
    if medication_id is not None:
        where["medication_id"] = medication_id
    if start is not None:
        where["and"] = [{"scheduled_at": {"gte": start}}]
    if end is not None:
        where.setdefault("and", [])
        where["and"] = [*where["and"], {"scheduled_at": {"lte": end}}]  # type: ignore[misc]
    scheduled = yield from plans.count(conn, ctx, MEDICATION_LOGS, where, recorded=True)
    given = (yield from plans.count(conn, ctx, MEDICATION_LOGS, {
        **where, "status": MedicationLogStatus.ADMINISTERED.value,
    }, recorded=True)) if is_successful(scheduled) else scheduled
    counted = Result.do(Adherence(total, done, round(100 * done / total) if total else None)
                        for total in scheduled for done in given)
    if not is_successful(counted):
        return counted
    fields = ("scheduled_at", "status") + (("medication_id",) if medication_id is not None else ())
    disclosed = yield from disclosed_fact(
        conn, ctx, MEDICATION_LOGS, student_id, fields, "adherence_rate")
    return Result.do(attrs.evolve(adherence, student_id=sid)
                     for adherence in counted for sid in disclosed)


__all__ = [
    "ENTITY",
    "Adherence",
    "MedicationLog",
    "MedicationLogStatus",
    "adherence_rate",
    "bulk_create",
    "count",
    "create",
    "delete",
    "exists",
    "find_after",
    "find_by_date_range",
    "find_by_id",
    "find_many",
    "find_one",
    "find_pending",
    "find_projected",
    "ops",
    "record_disclosure",
    "restore",
    "stream",
    "update",
    "update_ids",
    "update_where",
]
