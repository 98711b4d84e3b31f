"""Emergency contacts: the domain's finders, and ``ops`` (the generic functions on ``emergency_contacts``)."""

from __future__ import annotations

from uuid import UUID

from returns.result import Failure, Result, Success

from wxdata import crud
from wxdata.context import ExecutionContext
from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column
from wxdata.errors import DataError
from wxdata.schema.emergency import (
    EMERGENCY_CONTACTS,
    ContactPriority,
    EmergencyContact,
    VerificationStatus,
)

ENTITY = EMERGENCY_CONTACTS
ops = bind_entity(EMERGENCY_CONTACTS)

Conn = crud.Conn
_PRIORITY = {p.value: i for i, p in enumerate(ContactPriority)}
find_by_priority = by_column(EMERGENCY_CONTACTS, "priority", order_by=[("last_name", "asc")],
                             fixed={"is_active": True},
                             doc="Active contacts of one priority, by name.")


def find_by_student(
    conn: Conn, ctx: ExecutionContext, student_id: UUID | str
) -> Result[tuple[EmergencyContact, ...], DataError]:
    """A student's active contacts in call order: PRIMARY, SECONDARY, EMERGENCY_ONLY."""
    page = crud.find_many(conn, ctx, EMERGENCY_CONTACTS,
                          {"student_id": student_id, "is_active": True}, limit=100)
    if isinstance(page, Failure):
        return page
    rows = sorted(page.unwrap().data, key=lambda c: (_PRIORITY.get(c.priority, 99), c.last_name))
    return Success(tuple(rows))


__all__ = [
    "ENTITY",
    "ContactPriority",
    "EmergencyContact",
    "VerificationStatus",
    "find_by_priority",
    "find_by_student",
    "ops",
]
