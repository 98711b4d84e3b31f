"""Clinic visits: every generic operation on ``clinic_visits``, and the finders."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column
from wxdata.schema.clinical import CLINIC_VISITS, ClinicVisit, VisitDisposition

ENTITY = CLINIC_VISITS
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

find_by_student = by_column(CLINIC_VISITS, "student_id", order_by=[("check_in_time", "desc")],
                            doc="A student's clinic visits, latest first.")
find_by_attendant = by_column(CLINIC_VISITS, "attended_by", order_by=[("check_in_time", "desc")],
                              doc="Visits attended by one staff member, latest first.")
find_requiring_follow_up = by_column(CLINIC_VISITS, "follow_up_required",
                                     order_by=[("follow_up_date", "asc")],
                                     doc="Visits flagged (key True) or not for follow-up.")


__all__ = [
    "ENTITY",
    "ClinicVisit",
    "VisitDisposition",
    "bulk_create",
    "count",
    "create",
    "delete",
    "exists",
    "find_after",
    "find_by_attendant",
    "find_by_id",
    "find_by_student",
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
