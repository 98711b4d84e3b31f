"""Health records: every clinical event of a student (all fields PHI)."""

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

PHI = DataClass.PHI


class RecordType(enum.StrEnum):
    """Kinds of health record, as in the original model."""

    CHECKUP = "CHECKUP"
    VACCINATION = "VACCINATION"
    ILLNESS = "ILLNESS"
    INJURY = "INJURY"
    SCREENING = "SCREENING"
    PHYSICAL_EXAM = "PHYSICAL_EXAM"
    MENTAL_HEALTH = "MENTAL_HEALTH"
    DENTAL = "DENTAL"
    VISION = "VISION"
    HEARING = "HEARING"
    EXAMINATION = "EXAMINATION"
    ALLERGY_DOCUMENTATION = "ALLERGY_DOCUMENTATION"
    CHRONIC_CONDITION_REVIEW = "CHRONIC_CONDITION_REVIEW"
    GROWTH_ASSESSMENT = "GROWTH_ASSESSMENT"
    VITAL_SIGNS_CHECK = "VITAL_SIGNS_CHECK"
    EMERGENCY_VISIT = "EMERGENCY_VISIT"
    FOLLOW_UP = "FOLLOW_UP"
    CONSULTATION = "CONSULTATION"
    DIAGNOSTIC_TEST = "DIAGNOSTIC_TEST"
    PROCEDURE = "PROCEDURE"
    HOSPITALIZATION = "HOSPITALIZATION"
    SURGERY = "SURGERY"
    COUNSELING = "COUNSELING"
    THERAPY = "THERAPY"
    NUTRITION = "NUTRITION"
    MEDICATION_REVIEW = "MEDICATION_REVIEW"
    IMMUNIZATION = "IMMUNIZATION"
    LAB_RESULT = "LAB_RESULT"
    RADIOLOGY = "RADIOLOGY"
    OTHER = "OTHER"


NPI = r"\d{10}"
ICD10 = r"[A-Z]\d{2}(\.\d{1,4})?"


@row
class HealthRecord(AuthoredSoftDeleted):
    """One clinical event for a student."""

    id: UUID = pk()
    student_id: UUID = col(PHI, references="students")
    record_type: str = col(PHI, max_length=50, choices=RecordType)
    title: str = col(PHI, max_length=200)
    description: str = col(PHI, sql="text", clinical_text=True)
    record_date: date = col(PHI)
    provider: str | None = col(PHI, max_length=200)
    provider_npi: str | None = col(PHI, max_length=20, pattern=NPI)
    facility: str | None = col(PHI, max_length=200)
    facility_npi: str | None = col(PHI, max_length=20, pattern=NPI)
    diagnosis: str | None = col(PHI, sql="text", clinical_text=True)
    diagnosis_code: str | None = col(PHI, max_length=20, pattern=ICD10)
    treatment: str | None = col(PHI, sql="text", clinical_text=True)
    follow_up_required: bool = col(PHI, has_default=True)
    follow_up_date: date | None = col(PHI)
    follow_up_completed: bool = col(PHI, has_default=True)
    attachments: list[Any] = col(PHI, has_default=True)
    metadata: dict[str, Any] | None = col(PHI)
    is_confidential: bool = col(PHI, has_default=True)
    notes: str | None = col(PHI, sql="text", clinical_text=True)


@reads("follow_up_required", "follow_up_date", "record_date")
def _follow_up_consistent(values: Mapping[str, Any]) -> Iterable[FieldError]:
    required = values.get("follow_up_required")
    when = values.get("follow_up_date")
    if required and when is None:
        yield FieldError("follow_up_date", "is required when follow_up_required is true")
    recorded = values.get("record_date")
    if isinstance(when, date) and isinstance(recorded, date) and when < recorded:
        yield FieldError("follow_up_date", "must not be before record_date")


HEALTH_RECORDS = entity(
    HealthRecord,
    table="health_records",
    subject="student_id",
    validators=(_follow_up_consistent,),
    cache_ttl=CacheTTL.SHORT,
)
