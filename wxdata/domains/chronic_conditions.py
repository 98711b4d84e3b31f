"""Chronic conditions: the domain's finders, and ``ops`` (the generic functions on ``chronic_conditions``)."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column
from wxdata.schema.student_health import CHRONIC_CONDITIONS, ChronicCondition, ConditionStatus

ENTITY = CHRONIC_CONDITIONS
ops = bind_entity(CHRONIC_CONDITIONS)

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
                            "find_by_status",
                            "find_by_student",
                            "ops",
]
