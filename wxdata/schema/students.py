"""Students: the subject of every clinical record (FERPA education record with PHI fields)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any
from uuid import UUID

from wxdata.errors import FieldError
from wxdata.schema.base import AuthoredSoftDeleted
from wxdata.schema.spec import (
    CacheTTL,
    DataClass,
    col,
    entity,
    pk,
    reads,
    row,
)
from wxdata.schema.validate import utc_today

PHI, FERPA = DataClass.PHI, DataClass.FERPA


class Gender(enum.StrEnum):
    """Gender as recorded by the original system."""

    MALE = "MALE"
    FEMALE = "FEMALE"
    OTHER = "OTHER"
    PREFER_NOT_TO_SAY = "PREFER_NOT_TO_SAY"


MRN_PATTERN = r"[A-Z0-9]{2,4}-?[A-Z0-9]{4,8}"


@row
class Student(AuthoredSoftDeleted):
    """A student enrolled at a school."""

    id: UUID = pk()
    student_number: str = col(FERPA, max_length=50, unique=True)
    first_name: str = col(PHI, max_length=100)
    last_name: str = col(PHI, max_length=100)
    date_of_birth: date = col(PHI, not_future=True)
    grade: str = col(FERPA, max_length=10)
    gender: str = col(FERPA, max_length=20, choices=Gender)
    photo: str | None = col(PHI, max_length=500, filterable=False, sortable=False)
    medical_record_num: str | None = col(PHI, max_length=50, unique=True, pattern=MRN_PATTERN)
    is_active: bool = col(FERPA, has_default=True)
    enrollment_date: date = col(FERPA, not_future=True)
    nurse_id: UUID | None = col(FERPA, references="users")
    school_id: UUID | None = col(FERPA, references="schools")
    district_id: UUID | None = col(FERPA, references="districts")


@reads("date_of_birth")
def _age_in_range(values: Mapping[str, Any]) -> Iterable[FieldError]:
    born = values.get("date_of_birth")
    if isinstance(born, date):
        today = utc_today()  # the day ``not_future`` is checked against
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        if not 3 <= age <= 22:
            yield FieldError("date_of_birth", "age must be between 3 and 22")


STUDENTS = entity(
    Student,
    table="students",
    subject="id",
    school="school_id",
    validators=(_age_in_range,),
    cache_ttl=CacheTTL.LONG,
)
