"""Immunizations: the generic data functions bound to the ``immunizations`` entity."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column, due_within
from wxdata.schema.health import IMMUNIZATIONS, Immunization

ENTITY = IMMUNIZATIONS
ops = bind_entity(IMMUNIZATIONS)
find_by_id = ops.find_by_id
find_one = ops.find_one
find_many = ops.find_many
find_after = ops.find_after
count = ops.count
exists = ops.exists
create = ops.create
update = ops.update
delete = ops.delete
restore = ops.restore
bulk_create = ops.bulk_create
stream = ops.stream

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
