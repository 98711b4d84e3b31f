"""Students: the generic functions bound to ``students``, and the finders the domain needs.

Every finder is school-scoped by row-level security and audited as a disclosure by the CRUD
functions it is built from (one record per call, listing every student returned).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from returns.result import Result

from wxdata import crud
from wxdata.bulk import BulkOutcome
from wxdata.cache import cached
from wxdata.context import ExecutionContext
from wxdata.errors import DataError
from wxdata.query.paging import DEFAULT_LIMIT, Page
from wxdata.schema.students import STUDENTS, Gender, Student

ENTITY = STUDENTS
ops = crud.bind_entity(STUDENTS)
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

Conn = crud.Conn
SEARCH_LIMIT = 50
_BY_NAME = (("last_name", "asc"), ("first_name", "asc"))


@cached(entity=STUDENTS)
def find_by_student_number(conn: Conn, ctx: ExecutionContext, number: str) -> Result[Student, DataError]:
    """The student with this student number."""
    return crud.find_one(conn, ctx, STUDENTS, {"student_number": number})


def find_by_medical_record_number(
    conn: Conn, ctx: ExecutionContext, mrn: str
) -> Result[Student, DataError]:
    """The student with this medical record number."""
    return crud.find_one(conn, ctx, STUDENTS, {"medical_record_num": mrn})


def find_by_grade(
    conn: Conn, ctx: ExecutionContext, grade: str, *, page: int = 1, limit: int = DEFAULT_LIMIT
) -> Result[Page[Student], DataError]:
    """Active students of a grade, by name."""
    return crud.find_many(conn, ctx, STUDENTS, {"grade": grade, "is_active": True},
                          order_by=_BY_NAME, page=page, limit=limit)


def find_by_nurse(
    conn: Conn, ctx: ExecutionContext, nurse_id: UUID | str, *, page: int = 1,
    limit: int = DEFAULT_LIMIT,
) -> Result[Page[Student], DataError]:
    """Active students assigned to a nurse, by name."""
    return crud.find_many(conn, ctx, STUDENTS, {"nurse_id": nurse_id, "is_active": True},
                          order_by=_BY_NAME, page=page, limit=limit)


def search(
    conn: Conn, ctx: ExecutionContext, text: str, *, limit: int = SEARCH_LIMIT
) -> Result[Page[Student], DataError]:
    """Active students whose name, number or MRN contains ``text`` (literal, case-insensitive).

    Wildcards in ``text`` are escaped; the trigram indexes serve the infix match.
    """
    where: dict[str, Any] = {
        "is_active": True,
        "or": [{"first_name": {"ilike": text}}, {"last_name": {"ilike": text}},
               {"student_number": {"ilike": text}}, {"medical_record_num": {"ilike": text}}],
    }
    return crud.find_many(conn, ctx, STUDENTS, where, order_by=_BY_NAME, limit=limit)


def active_count(conn: Conn, ctx: ExecutionContext) -> Result[int, DataError]:
    """How many active students the caller can see (a count discloses no PHI)."""
    return crud.count(conn, ctx, STUDENTS, {"is_active": True})


def bulk_assign_to_nurse(
    conn: Conn, ctx: ExecutionContext, student_ids: Sequence[UUID | str], nurse_id: UUID | str
) -> Result[BulkOutcome, DataError]:
    """Assign many students to one nurse at once; one BULK_UPDATE record lists them all.

    The outcome says which students were reassigned and which were not (absent, deleted or
    outside the caller's schools); ``Failure(NotFound)`` when none was (see :mod:`wxdata.bulk`).
    """
    return crud.update_ids(conn, ctx, STUDENTS, student_ids, {"nurse_id": nurse_id})


__all__ = [
    "ENTITY",
    "BulkOutcome",
    "Gender",
    "Student",
    "active_count",
    "bulk_assign_to_nurse",
    "find_by_grade",
    "find_by_medical_record_number",
    "find_by_nurse",
    "find_by_student_number",
    "ops",
    "search",
]
