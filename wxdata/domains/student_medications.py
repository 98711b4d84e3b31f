"""Student medications: the generic data functions bound to the ``student_medications`` entity."""

from __future__ import annotations

from uuid import UUID

from returns.result import Result

from wxdata import crud
from wxdata.context import ExecutionContext
from wxdata.crud import bind_entity
from wxdata.domains.finders import today
from wxdata.errors import DataError
from wxdata.query.paging import DEFAULT_LIMIT, Page
from wxdata.schema.medication import STUDENT_MEDICATIONS, StudentMedication

ENTITY = STUDENT_MEDICATIONS
ops = bind_entity(STUDENT_MEDICATIONS)
find_by_id = ops.find_by_id
find_one = ops.find_one
find_many = ops.find_many
find_after = ops.find_after
count = ops.count
exists = ops.exists
create = ops.create
update = ops.update
delete = ops.delete
restore = ops.restore
bulk_create = ops.bulk_create
stream = ops.stream

Conn = crud.Conn


def find_active_by_student(
    conn: Conn, ctx: ExecutionContext, student_id: UUID | str, *, page: int = 1,
    limit: int = DEFAULT_LIMIT,
) -> Result[Page[StudentMedication], DataError]:
    """A student's medications in effect today (active, not ended), newest start first."""
    where = {"student_id": student_id, "is_active": True,
             "or": [{"end_date": None}, {"end_date": {"gte": today()}}]}
    return crud.find_many(conn, ctx, STUDENT_MEDICATIONS, where,
                          order_by=[("start_date", "desc")], page=page, limit=limit)


def discontinue(
    conn: Conn, ctx: ExecutionContext, id: UUID | str, *, expected_version: int | None = None
) -> Result[StudentMedication, DataError]:
    """Stop a medication today (inactive, end date today); audited as an UPDATE with its diff."""
    return crud.update(conn, ctx, STUDENT_MEDICATIONS, id,
                       {"is_active": False, "end_date": today()},
                       expected_version=expected_version)


__all__ = [
    "ENTITY",
    "StudentMedication",
    "discontinue",
    "find_active_by_student",
    "ops",
]
