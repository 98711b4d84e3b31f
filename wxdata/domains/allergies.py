"""Allergies: every generic operation on ``allergies`` at module level, and the domain's finders."""

from __future__ import annotations

from uuid import UUID

from returns.pipeline import is_successful
from returns.result import Result

from wxdata.context import ExecutionContext
from wxdata.core import crud as plans
from wxdata.core.effects import Plan
from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column, disclosed_fact, finder
from wxdata.errors import DataError
from wxdata.query.filters import Pattern, escape_like
from wxdata.query.paging import DEFAULT_LIMIT, Page
from wxdata.schema.student_health import ALLERGIES, Allergy, AllergySeverity, AllergyType
from wxdata.tx.scope import AnyConn

ENTITY = ALLERGIES
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

_BY_ALLERGEN = (("allergen", "asc"),)
find_by_student = by_column(ALLERGIES, "student_id", order_by=_BY_ALLERGEN, fixed={"active": True},
                            doc="A student's active allergies, by allergen.")
find_by_severity = by_column(ALLERGIES, "severity", order_by=_BY_ALLERGEN, fixed={"active": True},
                             doc="Active allergies of one severity, across the caller's students.")


@finder(ALLERGIES)
def find_by_allergen(
    conn: AnyConn, ctx: ExecutionContext, text: str, *, page: int = 1, limit: int = DEFAULT_LIMIT
) -> Plan[Result[Page[Allergy], DataError]]:
    """Active allergies whose allergen contains ``text`` (literal, case-insensitive)."""
    return plans.find_many(conn, ctx, ALLERGIES, {"allergen": {"ilike": text}, "active": True},
                           order_by=_BY_ALLERGEN, page=page, limit=limit)


@finder(ALLERGIES)
def is_duplicate(
    conn: AnyConn, ctx: ExecutionContext, student_id: UUID | str, allergen: str
) -> Plan[Result[bool, DataError]]:
    """Whether the student already has this allergen active (``create`` refuses it: Conflict).

    Either answer is a fact about the student's health, so it is recorded as a READ of the
    allergen naming the student; when that record cannot be written the answer is a Failure."""
    exact = {"ilike": Pattern(escape_like(allergen.strip()))}
    found = yield from plans.exists(conn, ctx, ALLERGIES,
                                    {"student_id": student_id, "active": True, "allergen": exact},
                                    recorded=True)
    disclosed = (yield from disclosed_fact(
        conn, ctx, ALLERGIES, student_id, ("allergen", "active"), "is_duplicate")
    ) if is_successful(found) else found
    return Result.do(duplicate for duplicate in found for _ in disclosed)


__all__ = [
    "ENTITY",
    "Allergy",
    "AllergySeverity",
    "AllergyType",
    "bulk_create",
    "count",
    "create",
    "delete",
    "exists",
    "find_after",
    "find_by_allergen",
    "find_by_id",
    "find_by_severity",
    "find_by_student",
    "find_many",
    "find_one",
    "find_projected",
    "is_duplicate",
    "ops",
    "record_disclosure",
    "restore",
    "stream",
    "update",
    "update_ids",
    "update_where",
]
