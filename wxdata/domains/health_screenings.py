"""Health screenings: the domain's finders, and ``ops`` (the generic functions on ``health_screenings``)."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column
from wxdata.schema.student_health import HEALTH_SCREENINGS, HealthScreening

ENTITY = HEALTH_SCREENINGS
ops = bind_entity(HEALTH_SCREENINGS)

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
    "find_by_student",
    "find_by_type",
    "find_requiring_follow_up",
    "ops",
]
