"""Clinic visits: the domain's finders, and ``ops`` (the generic functions on ``clinic_visits``)."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column
from wxdata.schema.clinical import CLINIC_VISITS, ClinicVisit, VisitDisposition

ENTITY = CLINIC_VISITS
ops = bind_entity(CLINIC_VISITS)

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
                            "find_by_attendant",
                            "find_by_student",
                            "find_requiring_follow_up",
                            "ops",
]
