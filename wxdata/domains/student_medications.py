"""Student medications: finders, and ``ops`` (the generic functions on ``student_medications``)."""

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
