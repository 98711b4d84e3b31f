"""Allergies: the domain's finders, and ``ops`` (the generic functions on ``allergies``)."""

from __future__ import annotations

from uuid import UUID

from returns.result import Result

from wxdata import crud
from wxdata.context import ExecutionContext
from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column
from wxdata.errors import DataError
from wxdata.query.filters import Pattern, escape_like
from wxdata.query.paging import DEFAULT_LIMIT, Page
from wxdata.schema.student_health import ALLERGIES, Allergy, AllergySeverity, AllergyType

ENTITY = ALLERGIES
ops = bind_entity(ALLERGIES)

Conn = crud.Conn
_BY_ALLERGEN = (("allergen", "asc"),)
find_by_student = by_column(ALLERGIES, "student_id", order_by=_BY_ALLERGEN, fixed={"active": True},
                            doc="A student's active allergies, by allergen.")
find_by_severity = by_column(ALLERGIES, "severity", order_by=_BY_ALLERGEN, fixed={"active": True},
                             doc="Active allergies of one severity, across the caller's students.")


def find_by_allergen(
    conn: Conn, ctx: ExecutionContext, text: str, *, page: int = 1, limit: int = DEFAULT_LIMIT
) -> Result[Page[Allergy], DataError]:
    """Active allergies whose allergen contains ``text`` (literal, case-insensitive)."""
    return crud.find_many(conn, ctx, ALLERGIES, {"allergen": {"ilike": text}, "active": True},
                          order_by=_BY_ALLERGEN, page=page, limit=limit)


def is_duplicate(
    conn: Conn, ctx: ExecutionContext, student_id: UUID | str, allergen: str
) -> Result[bool, DataError]:
    """Whether the student already has this allergen active (``create`` refuses it: Conflict)."""
    exact = {"ilike": Pattern(escape_like(allergen.strip()))}
    return crud.exists(conn, ctx, ALLERGIES,
                       {"student_id": student_id, "active": True, "allergen": exact})


__all__ = [
    "ENTITY",
    "Allergy",
    "AllergySeverity",
    "AllergyType",
    "find_by_allergen",
    "find_by_severity",
    "find_by_student",
    "is_duplicate",
    "ops",
]
