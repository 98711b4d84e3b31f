"""Medication administration logs: finders, and ``ops`` (the generic functions on ``medication_logs``)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import attrs
from returns.result import Failure, Result, Success

from wxdata import crud
from wxdata.cache import cached, register_value_type
from wxdata.context import ExecutionContext
from wxdata.crud import bind_entity
from wxdata.domains.finders import in_range
from wxdata.errors import DataError
from wxdata.query.paging import DEFAULT_LIMIT, Page
from wxdata.schema.medication import MEDICATION_LOGS, MedicationLog, MedicationLogStatus

ENTITY = MEDICATION_LOGS
ops = bind_entity(MEDICATION_LOGS)

Conn = crud.Conn
find_by_date_range = in_range(MEDICATION_LOGS, "administered_at",
                              order_by=[("administered_at", "desc")],
                              doc="Logs administered within [start, end], newest first.")


def find_pending(
    conn: Conn, ctx: ExecutionContext, *, student_id: UUID | str | None = None, page: int = 1,
    limit: int = DEFAULT_LIMIT,
) -> Result[Page[MedicationLog], DataError]:
    """Doses still pending, soonest scheduled first (optionally for one student)."""
    where: dict[str, object] = {"status": MedicationLogStatus.PENDING.value}
    if student_id is not None:
        where["student_id"] = student_id
    return crud.find_many(conn, ctx, MEDICATION_LOGS, where, order_by=[("scheduled_at", "asc")],
                          page=page, limit=limit)


@register_value_type
@attrs.frozen(slots=True)
class Adherence:
    """Scheduled vs administered doses, and the rate in percent (None when nothing scheduled)."""

    scheduled: int
    administered: int
    rate: int | None


@cached(entity=MEDICATION_LOGS)
def adherence_rate(
    conn: Conn, ctx: ExecutionContext, student_id: UUID | str, *,
    medication_id: UUID | str | None = None, start: datetime | None = None,
    end: datetime | None = None,
) -> Result[Adherence, DataError]:
    """Adherence over scheduled doses, counted in SQL (never by loading the rows)."""
    where: dict[str, object] = {"student_id": student_id, "scheduled_at": None}
    where["scheduled_at"] = {"is_null": False}
    if medication_id is not None:
        where["medication_id"] = medication_id
    if start is not None:
        where["and"] = [{"scheduled_at": {"gte": start}}]
    if end is not None:
        where.setdefault("and", [])
        where["and"] = [*where["and"], {"scheduled_at": {"lte": end}}]  # type: ignore[misc]
    scheduled = crud.count(conn, ctx, MEDICATION_LOGS, where)
    if isinstance(scheduled, Failure):
        return scheduled
    given = crud.count(conn, ctx, MEDICATION_LOGS,
                       {**where, "status": MedicationLogStatus.ADMINISTERED.value})
    if isinstance(given, Failure):
        return given
    total, done = scheduled.unwrap(), given.unwrap()
    return Success(Adherence(total, done, round(100 * done / total) if total else None))


__all__ = [
    "ENTITY",
    "Adherence",
    "MedicationLog",
    "MedicationLogStatus",
    "adherence_rate",
    "find_by_date_range",
    "find_pending",
    "ops",
]
