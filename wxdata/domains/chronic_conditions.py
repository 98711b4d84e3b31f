"""Chronic conditions: every generic operation on ``chronic_conditions``, and the finders."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column
from wxdata.schema.student_health import CHRONIC_CONDITIONS, ChronicCondition, ConditionStatus

ENTITY = CHRONIC_CONDITIONS
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

find_by_student = by_column(CHRONIC_CONDITIONS, "student_id",
                            order_by=[("diagnosed_date", "desc")], fixed={"is_active": True},
                            doc="A student's active chronic conditions, most recent first.")
find_by_status = by_column(CHRONIC_CONDITIONS, "status", order_by=[("next_review_date", "asc")],
                           fixed={"is_active": True},
                           doc="Active conditions in one status, next review first.")


__all__ = [
    "ENTITY",
    "ChronicCondition",
    "ConditionStatus",
    "bulk_create",
    "count",
    "create",
    "delete",
    "exists",
    "find_after",
    "find_by_id",
    "find_by_status",
    "find_by_student",
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
