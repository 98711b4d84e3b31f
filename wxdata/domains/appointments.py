"""Appointments: every generic operation on ``appointments``, and the finders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from returns.result import Failure, Result

from wxdata.context import ExecutionContext
from wxdata.core import crud as plans
from wxdata.core.effects import Plan
from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column, finder
from wxdata.errors import DataError, InvalidQuery
from wxdata.query.paging import DEFAULT_LIMIT, Page
from wxdata.schema.scheduling import APPOINTMENTS, Appointment, AppointmentStatus, AppointmentType
from wxdata.tx.scope import AnyConn

ENTITY = APPOINTMENTS
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

find_by_student = by_column(APPOINTMENTS, "student_id", order_by=[("scheduled_at", "desc")],
                            doc="A student's appointments, latest first.")


@finder(APPOINTMENTS)
def find_upcoming_by_nurse(
    conn: AnyConn, ctx: ExecutionContext, nurse_id: UUID | str, *, days: int = 7, page: int = 1,
    limit: int = DEFAULT_LIMIT,
) -> Plan[Result[Page[Appointment], DataError]]:
    """A nurse's scheduled appointments from now to ``days`` ahead, soonest first."""
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 366:
        return Failure(InvalidQuery("days", "must be an integer from 0 to 366"))
    now = datetime.now(UTC)
    where = {"nurse_id": nurse_id, "status": AppointmentStatus.SCHEDULED.value,
             "scheduled_at": {"between": [now, now + timedelta(days=days)]}}
    return (yield from plans.find_many(conn, ctx, APPOINTMENTS, where,
                                       order_by=(("scheduled_at", "asc"),), page=page,
                                       limit=limit))


__all__ = [
    "ENTITY",
    "Appointment",
    "AppointmentStatus",
    "AppointmentType",
    "bulk_create",
    "count",
    "create",
    "delete",
    "exists",
    "find_after",
    "find_by_id",
    "find_by_student",
    "find_many",
    "find_one",
    "find_projected",
    "find_upcoming_by_nurse",
    "ops",
    "record_disclosure",
    "restore",
    "stream",
    "update",
    "update_ids",
    "update_where",
]
