"""Immunizations: every generic operation on ``immunizations``, and the finders."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column, due_within
from wxdata.schema.student_health import IMMUNIZATIONS, Immunization

ENTITY = IMMUNIZATIONS
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

find_by_student = by_column(IMMUNIZATIONS, "student_id", order_by=[("administered_date", "desc")],
                            doc="A student's immunizations, latest first.")
find_upcoming_due = due_within(IMMUNIZATIONS, "next_due_date",
                               doc="Immunizations whose next dose is due within N days.")


__all__ = [
    "ENTITY",
    "Immunization",
    "bulk_create",
    "count",
    "create",
    "delete",
    "exists",
    "find_after",
    "find_by_id",
    "find_by_student",
    "find_many",
    "find_one",
    "find_projected",
    "find_upcoming_due",
    "ops",
    "record_disclosure",
    "restore",
    "stream",
    "update",
    "update_ids",
    "update_where",
]
