"""Emergency contacts: every generic operation on ``emergency_contacts``, and the finders."""

from __future__ import annotations

from uuid import UUID

from returns.result import Result

from wxdata.context import ExecutionContext
from wxdata.core import crud as plans
from wxdata.core.effects import Plan
from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column, finder
from wxdata.errors import DataError
from wxdata.schema.emergency import (
    EMERGENCY_CONTACTS,
    ContactPriority,
    EmergencyContact,
    VerificationStatus,
)
from wxdata.tx.scope import AnyConn

ENTITY = EMERGENCY_CONTACTS
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

_PRIORITY = {p.value: i for i, p in enumerate(ContactPriority)}
find_by_priority = by_column(EMERGENCY_CONTACTS, "priority", order_by=[("last_name", "asc")],
                             fixed={"is_active": True},
                             doc="Active contacts of one priority, by name.")


def _call_order(contact: EmergencyContact) -> tuple[int, str]:
    return _PRIORITY.get(contact.priority, len(_PRIORITY)), contact.last_name


@finder(EMERGENCY_CONTACTS)
def find_by_student(
    conn: AnyConn, ctx: ExecutionContext, student_id: UUID | str
) -> Plan[Result[tuple[EmergencyContact, ...], DataError]]:
    """A student's active contacts in call order: PRIMARY, SECONDARY, EMERGENCY_ONLY."""
    page = yield from plans.find_many(conn, ctx, EMERGENCY_CONTACTS,
                                      {"student_id": student_id, "is_active": True}, limit=100)
    return page.map(lambda found: tuple(sorted(found.data, key=_call_order)))


__all__ = [
    "ENTITY",
    "ContactPriority",
    "EmergencyContact",
    "VerificationStatus",
    "bulk_create",
    "count",
    "create",
    "delete",
    "exists",
    "find_after",
    "find_by_id",
    "find_by_priority",
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
