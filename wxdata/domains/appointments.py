"""Appointments: the domain's finders, and ``ops`` (the generic functions on ``appointments``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from returns.result import Failure, Result

from wxdata import crud
from wxdata.context import ExecutionContext
from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column
from wxdata.errors import DataError, InvalidQuery
from wxdata.query.paging import DEFAULT_LIMIT, Page
from wxdata.schema.scheduling import APPOINTMENTS, Appointment, AppointmentStatus, AppointmentType

ENTITY = APPOINTMENTS
ops = bind_entity(APPOINTMENTS)

Conn = crud.Conn
find_by_student = by_column(APPOINTMENTS, "student_id", order_by=[("scheduled_at", "desc")],
                            doc="A student's appointments, latest first.")


def find_upcoming_by_nurse(
    conn: Conn, ctx: ExecutionContext, nurse_id: UUID | str, *, days: int = 7, page: int = 1,
    limit: int = DEFAULT_LIMIT,
) -> Result[Page[Appointment], DataError]:
    """A nurse's scheduled appointments from now to ``days`` ahead, soonest first."""
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 366:
        return Failure(InvalidQuery("days", "must be an integer from 0 to 366"))
    now = datetime.now(UTC)
    where = {"nurse_id": nurse_id, "status": AppointmentStatus.SCHEDULED.value,
             "scheduled_at": {"between": [now, now + timedelta(days=days)]}}
    return crud.find_many(conn, ctx, APPOINTMENTS, where, order_by=[("scheduled_at", "asc")],
                          page=page, limit=limit)


__all__ = [
    "ENTITY",
    "Appointment",
    "AppointmentStatus",
    "AppointmentType",
    "find_by_student",
    "find_upcoming_by_nurse",
    "ops",
]
