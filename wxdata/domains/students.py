"""Students: every generic operation on ``students`` at module level, and the domain's finders.

Every finder is one plan run by both shells (``students.search`` here, ``.aio`` or
:mod:`wxdata.aio.domains` on an AsyncConnection), school-scoped by row-level security and audited
as a disclosure by the generic plans it is built from (one record per call, listing every student
returned).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from returns.result import Result

from wxdata.bulk import BulkOutcome
from wxdata.context import ExecutionContext
from wxdata.core import crud as plans
from wxdata.core.effects import Plan
from wxdata.crud import bind_entity
from wxdata.domains.finders import finder
from wxdata.errors import DataError
from wxdata.query.paging import DEFAULT_LIMIT, Page
from wxdata.schema.students import STUDENTS, Gender, Student
from wxdata.tx.scope import AnyConn

ENTITY = STUDENTS
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

SEARCH_LIMIT = 50
_BY_NAME = (("last_name", "asc"), ("first_name", "asc"))


@finder(STUDENTS, cache=True)
def find_by_student_number(
    conn: AnyConn, ctx: ExecutionContext, number: str
) -> Plan[Result[Student, DataError]]:
    """The student with this student number."""
    return plans.find_one(conn, ctx, STUDENTS, {"student_number": number})


@finder(STUDENTS)
def find_by_medical_record_number(
    conn: AnyConn, ctx: ExecutionContext, mrn: str
) -> Plan[Result[Student, DataError]]:
    """The student with this medical record number."""
    return plans.find_one(conn, ctx, STUDENTS, {"medical_record_num": mrn})


@finder(STUDENTS)
def find_by_grade(
    conn: AnyConn, ctx: ExecutionContext, grade: str, *, page: int = 1,
    limit: int = DEFAULT_LIMIT,
) -> Plan[Result[Page[Student], DataError]]:
    """Active students of a grade, by name."""
    return plans.find_many(conn, ctx, STUDENTS, {"grade": grade, "is_active": True},
                           order_by=_BY_NAME, page=page, limit=limit)


@finder(STUDENTS)
def find_by_nurse(
    conn: AnyConn, ctx: ExecutionContext, nurse_id: UUID | str, *, page: int = 1,
    limit: int = DEFAULT_LIMIT,
) -> Plan[Result[Page[Student], DataError]]:
    """Active students assigned to a nurse, by name."""
    return plans.find_many(conn, ctx, STUDENTS, {"nurse_id": nurse_id, "is_active": True},
                           order_by=_BY_NAME, page=page, limit=limit)


@finder(STUDENTS)
def search(
    conn: AnyConn, ctx: ExecutionContext, text: str, *, limit: int = SEARCH_LIMIT
) -> Plan[Result[Page[Student], DataError]]:
    """Active students whose name, number or MRN contains ``text`` (literal, case-insensitive).

    Wildcards in ``text`` are escaped; the trigram indexes serve the infix match.
    """
    where: dict[str, Any] = {
        "is_active": True,
        "or": [{"first_name": {"ilike": text}}, {"last_name": {"ilike": text}},
               {"student_number": {"ilike": text}}, {"medical_record_num": {"ilike": text}}],
    }
    return plans.find_many(conn, ctx, STUDENTS, where, order_by=_BY_NAME, limit=limit)


@finder(STUDENTS)
def active_count(conn: AnyConn, ctx: ExecutionContext) -> Plan[Result[int, DataError]]:
    """How many active students the caller can see (a count discloses no PHI)."""
    return plans.count(conn, ctx, STUDENTS, {"is_active": True})


@finder(STUDENTS)
def bulk_assign_to_nurse(
    conn: AnyConn, ctx: ExecutionContext, student_ids: Sequence[UUID | str],
    nurse_id: UUID | str,
) -> Plan[Result[BulkOutcome, DataError]]:
    """Assign many students to one nurse at once; one BULK_UPDATE record lists them all.

    The outcome says which students were reassigned and which were not (absent, deleted or
    outside the caller's schools); ``Failure(NotFound)`` when none was (see :mod:`wxdata.bulk`).
    """
    return plans.update_ids(conn, ctx, STUDENTS, student_ids, {"nurse_id": nurse_id})


__all__ = [
    "ENTITY",
    "BulkOutcome",
    "Gender",
    "Student",
    "active_count",
    "bulk_assign_to_nurse",
    "bulk_create",
    "count",
    "create",
    "delete",
    "exists",
    "find_after",
    "find_by_grade",
    "find_by_id",
    "find_by_medical_record_number",
    "find_by_nurse",
    "find_by_student_number",
    "find_many",
    "find_one",
    "find_projected",
    "ops",
    "record_disclosure",
    "restore",
    "search",
    "stream",
    "update",
    "update_ids",
    "update_where",
]
