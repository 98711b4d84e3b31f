"""Vaccinations: every generic operation on ``vaccinations``, and the finders."""

from __future__ import annotations

from uuid import UUID

import attrs
from returns.result import Failure, Result, Success

from wxdata.cache import register_value_type
from wxdata.context import ExecutionContext
from wxdata.core import crud as plans
from wxdata.core.effects import Plan
from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column, disclosed_fact, due_within, finder
from wxdata.errors import DataError
from wxdata.schema.student_health import VACCINATIONS, Vaccination, VaccineType
from wxdata.tx.scope import AnyConn

ENTITY = VACCINATIONS
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

find_by_student = by_column(VACCINATIONS, "student_id", order_by=[("administration_date", "desc")],
                            doc="A student's vaccinations, latest first.")
find_upcoming_due = due_within(VACCINATIONS, "next_due_date",
                               doc="Vaccinations whose next dose is due within N days.")


@register_value_type
@attrs.frozen(slots=True)
class Compliance:
    """A student's vaccination compliance: counts per status, whether all are compliant, and
    the student it concerns (which the record of a cached answer's hit names)."""

    by_status: tuple[tuple[str, int], ...]
    compliant: bool
    student_id: UUID | None = None


@finder(VACCINATIONS, cache=True)
def compliance(
    conn: AnyConn, ctx: ExecutionContext, student_id: UUID | str
) -> Plan[Result[Compliance, DataError]]:
    """Counts of a student's vaccinations per compliance status (statuses counted in SQL).

    The answer is a fact about the student's health, so it is recorded as a READ of
    ``compliance_status`` naming the student (whatever the counts, none included); when that
    record cannot be written the answer is a Failure and no counts."""
    counts: list[tuple[str, int]] = []
    statuses = VACCINATIONS.by_name["compliance_status"].rules.choices or ()
    for status in statuses:
        match (yield from plans.count(conn, ctx, VACCINATIONS,
                                      {"student_id": student_id, "compliance_status": status},
                                      recorded=True)):
            case Success(0):
                pass
            case Success(n):
                counts.append((status, n))
            case Failure() as failed:
                return failed
    ok = all(s in ("COMPLIANT", "EXEMPT") for s, _ in counts)
    disclosed = yield from disclosed_fact(
        conn, ctx, VACCINATIONS, student_id, ("compliance_status",), "compliance")
    return disclosed.map(lambda sid: Compliance(tuple(counts), ok, sid))

__all__ = [
    "ENTITY",
    "Compliance",
    "Vaccination",
    "VaccineType",
    "bulk_create",
    "compliance",
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
