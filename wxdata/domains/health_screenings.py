"""Health screenings: every generic operation on ``health_screenings``, and the finders."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column
from wxdata.schema.student_health import HEALTH_SCREENINGS, HealthScreening

ENTITY = HEALTH_SCREENINGS
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

find_by_student = by_column(HEALTH_SCREENINGS, "student_id", order_by=[("screening_date", "desc")],
                            doc="A student's screenings, latest first.")
find_by_type = by_column(HEALTH_SCREENINGS, "screening_type", order_by=[("screening_date", "desc")],
                         doc="Screenings of one type, latest first.")
find_requiring_follow_up = by_column(HEALTH_SCREENINGS, "follow_up_required",
                                     order_by=[("screening_date", "asc")],
                                     doc="Screenings flagged (key True) or not for follow-up.")


__all__ = [
    "ENTITY",
    "HealthScreening",
    "bulk_create",
    "count",
    "create",
    "delete",
    "exists",
    "find_after",
    "find_by_id",
    "find_by_student",
    "find_by_type",
    "find_many",
    "find_one",
    "find_projected",
    "find_requiring_follow_up",
    "ops",
    "record_disclosure",
    "restore",
    "stream",
    "update",
    "update_ids",
    "update_where",
]
