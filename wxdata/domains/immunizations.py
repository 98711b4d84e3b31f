"""Immunizations: the domain's finders, and ``ops`` (the generic functions on ``immunizations``)."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column, due_within
from wxdata.schema.student_health import IMMUNIZATIONS, Immunization

ENTITY = IMMUNIZATIONS
ops = bind_entity(IMMUNIZATIONS)

find_by_student = by_column(IMMUNIZATIONS, "student_id", order_by=[("administered_date", "desc")],
                            doc="A student's immunizations, latest first.")
find_upcoming_due = due_within(IMMUNIZATIONS, "next_due_date",
                               doc="Immunizations whose next dose is due within N days.")


__all__ = [
    "ENTITY",
    "Immunization",
    "find_by_student",
    "find_upcoming_due",
    "ops",
]
