"""Academic transcripts: a student's grades, GPA, attendance and conduct per term (FERPA)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from wxdata.schema.base import SoftDeleted
from wxdata.schema.spec import (
    CacheTTL,
    DataClass,
    col,
    entity,
    pk,
    row,
)

F = DataClass.FERPA


@row
class AcademicTranscript(SoftDeleted):
    """One term of a student's academic record, usually imported from the SIS.

    One row per (student, academic year, semester); education records soft-delete like PHI.
    """

    id: UUID = pk()
    student_id: UUID = col(F, references="students")
    academic_year: str = col(F, max_length=20)
    semester: str = col(F, max_length=20)
    grade: str = col(F, max_length=10)
    gpa: Decimal = col(F, sql="numeric(3,2)", minimum=0, maximum=5, has_default=True)
    subjects: list[Any] = col(F, has_default=True)
    attendance: dict[str, Any] = col(F, has_default=True)
    behavior: dict[str, Any] = col(F, has_default=True)
    imported_by: UUID | None = col(F, references="users")
    imported_at: datetime | None = col(F)
    import_source: str | None = col(F, max_length=100)
    metadata: dict[str, Any] | None = col(F)


ACADEMIC_TRANSCRIPTS = entity(
    AcademicTranscript, table="academic_transcripts", subject="student_id", cache_ttl=CacheTTL.HOUR,
    unique_together=(("student_id", "academic_year", "semester"),),
)
