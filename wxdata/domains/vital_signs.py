"""Vital signs: every generic operation on ``vital_signs``, and the finders."""

from __future__ import annotations

from uuid import UUID

from returns.result import Result

from wxdata.context import ExecutionContext
from wxdata.core import crud as plans
from wxdata.core.effects import Plan
from wxdata.crud import bind_entity
from wxdata.domains.finders import finder, in_range
from wxdata.errors import DataError
from wxdata.query.paging import Page
from wxdata.schema.student_health import VITAL_SIGNS, VitalSigns
from wxdata.tx.scope import AnyConn

ENTITY = VITAL_SIGNS
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

_NEWEST = (("measurement_date", "desc"),)
find_by_date_range = in_range(VITAL_SIGNS, "measurement_date", order_by=_NEWEST,
                              doc="Measurements within [start, end], newest first.")


@finder(VITAL_SIGNS)
def find_latest(
    conn: AnyConn, ctx: ExecutionContext, student_id: UUID | str, *, count: int = 10
) -> Plan[Result[Page[VitalSigns], DataError]]:
    """A student's latest ``count`` measurements (1-100), newest first."""
    return plans.find_many(conn, ctx, VITAL_SIGNS, {"student_id": student_id},
                           order_by=_NEWEST, limit=count)


__all__ = [
    "ENTITY",
    "VitalSigns",
    "bulk_create",
    "count",
    "create",
    "delete",
    "exists",
    "find_after",
    "find_by_date_range",
    "find_by_id",
    "find_latest",
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
