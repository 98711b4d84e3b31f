"""Vaccinations: the domain's finders, and ``ops`` (the generic functions on ``vaccinations``)."""

from __future__ import annotations

from uuid import UUID

import attrs
from returns.result import Failure, Result, Success

from wxdata import crud
from wxdata.cache import cached, register_value_type
from wxdata.context import ExecutionContext
from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column, due_within
from wxdata.errors import DataError
from wxdata.schema.student_health import VACCINATIONS, Vaccination, VaccineType

ENTITY = VACCINATIONS
ops = bind_entity(VACCINATIONS)

Conn = crud.Conn
find_by_student = by_column(VACCINATIONS, "student_id", order_by=[("administration_date", "desc")],
                            doc="A student's vaccinations, latest first.")
find_upcoming_due = due_within(VACCINATIONS, "next_due_date",
                               doc="Vaccinations whose next dose is due within N days.")


@register_value_type
@attrs.frozen(slots=True)
class Compliance:
    """A student's vaccination compliance: counts per status, and whether all are compliant."""

    by_status: tuple[tuple[str, int], ...]
    compliant: bool


@cached(entity=VACCINATIONS)
def compliance(
    conn: Conn, ctx: ExecutionContext, student_id: UUID | str
) -> Result[Compliance, DataError]:
    """Counts of a student's vaccinations per compliance status (statuses counted in SQL)."""
    counts: list[tuple[str, int]] = []
    statuses = VACCINATIONS.by_name["compliance_status"].rules.choices or ()
    for status in statuses:
        n = crud.count(conn, ctx, VACCINATIONS,
                       {"student_id": student_id, "compliance_status": status})
        if isinstance(n, Failure):
            return n
        if n.unwrap():
            counts.append((status, n.unwrap()))
    ok = all(s in ("COMPLIANT", "EXEMPT") for s, _ in counts)
    return Success(Compliance(tuple(counts), ok))


__all__ = [
    "ENTITY",
    "Compliance",
    "Vaccination",
    "VaccineType",
    "compliance",
    "find_by_student",
    "find_upcoming_due",
    "ops",
]
