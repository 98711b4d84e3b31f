"""Student medications: every generic operation on ``student_medications``, and the finders."""

from __future__ import annotations

from uuid import UUID

from returns.result import Result

from wxdata.context import ExecutionContext
from wxdata.core import crud as plans
from wxdata.core.effects import Plan
from wxdata.crud import bind_entity
from wxdata.domains.finders import finder, today
from wxdata.errors import DataError
from wxdata.query.paging import DEFAULT_LIMIT, Page
from wxdata.schema.medication import STUDENT_MEDICATIONS, StudentMedication
from wxdata.tx.scope import AnyConn

ENTITY = STUDENT_MEDICATIONS
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


@finder(STUDENT_MEDICATIONS)
def find_active_by_student(
    conn: AnyConn, ctx: ExecutionContext, student_id: UUID | str, *, page: int = 1,
    limit: int = DEFAULT_LIMIT,
) -> Plan[Result[Page[StudentMedication], DataError]]:
    """A student's medications in effect today (active, not ended), newest start first."""
    where = {"student_id": student_id, "is_active": True,
             "or": [{"end_date": None}, {"end_date": {"gte": today()}}]}
    return plans.find_many(conn, ctx, STUDENT_MEDICATIONS, where,
                           order_by=(("start_date", "desc"),), page=page, limit=limit)


@finder(STUDENT_MEDICATIONS)
def discontinue(
    conn: AnyConn, ctx: ExecutionContext, id: UUID | str, *, expected_version: int | None = None
) -> Plan[Result[StudentMedication, DataError]]:
    """Stop a medication today (inactive, end date today); audited as an UPDATE with its diff."""
    return plans.update(conn, ctx, STUDENT_MEDICATIONS, id,
                        {"is_active": False, "end_date": today()},
                        expected_version=expected_version)


__all__ = [
    "ENTITY",
    "StudentMedication",
    "bulk_create",
    "count",
    "create",
    "delete",
    "discontinue",
    "exists",
    "find_active_by_student",
    "find_after",
    "find_by_id",
    "find_many",
    "find_one",
    "find_projected",
    "ops",
    "record_disclosure",
    "restore",
    "stream",
    "update",
    "update_ids",
    "update_where",
]
