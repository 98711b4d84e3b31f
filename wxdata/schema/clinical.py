"""Clinical domain: clinic visits, clinical (SOAP) notes, treatment plans and clinical protocols.

Visits, notes and plans are PHI about one student and soft-delete; protocols are reference data.
Enum-typed columns whose member list lives outside the original models (note type, treatment
status, protocol status) are free ``varchar(50)`` here rather than guessed closed sets.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any
from uuid import UUID

from wxdata.schema.base import Authored, AuthoredSoftDeleted
from wxdata.schema.rules import not_before, required_if
from wxdata.schema.spec import (
    CacheTTL,
    DataClass,
    col,
    entity,
    pk,
    row,
)

P, G = DataClass.PHI, DataClass.GENERAL


class VisitDisposition(enum.StrEnum):
    """Where the student went after a clinic visit."""

    RETURN_TO_CLASS = "RETURN_TO_CLASS"
    SENT_HOME = "SENT_HOME"
    EMERGENCY_TRANSPORT = "EMERGENCY_TRANSPORT"
    OTHER = "OTHER"


@row
class ClinicVisit(AuthoredSoftDeleted):
    """A student's visit to the school clinic, from check-in to check-out."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    check_in_time: datetime = col(P, not_future=True)
    check_out_time: datetime | None = col(P)
    reason_for_visit: list[Any] = col(P)
    symptoms: list[Any] | None = col(P)
    treatment: str | None = col(P, sql="text", clinical_text=True)
    disposition: str = col(P, max_length=50, choices=VisitDisposition)
    classes_missed: list[Any] | None = col(P)
    minutes_missed: int | None = col(P, minimum=0)
    attended_by: UUID = col(P, references="users")
    follow_up_required: bool = col(P, has_default=True)
    follow_up_date: date | None = col(P)
    notes: str | None = col(P, sql="text", clinical_text=True)


CLINIC_VISITS = entity(
    ClinicVisit, table="clinic_visits", subject="student_id", cache_ttl=CacheTTL.SHORT,
    validators=(not_before("check_out_time", "check_in_time"),),
)


@row
class TreatmentPlan(AuthoredSoftDeleted):
    """A treatment plan for a diagnosis (plan details as JSON)."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    diagnosis: str = col(P, sql="text", clinical_text=True)
    plan_details: dict[str, Any] = col(P)
    start_date: date = col(P)
    end_date: date | None = col(P)
    status: str = col(P, max_length=50)
    prescribed_by: UUID = col(P, references="users")


TREATMENT_PLANS = entity(
    TreatmentPlan, table="treatment_plans", subject="student_id",
    validators=(not_before("end_date", "start_date"),),
)


@row
class ClinicalNote(AuthoredSoftDeleted):
    """A clinical note, optionally in SOAP form; signing and amendment are tracked."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    visit_id: UUID | None = col(P, references="clinic_visits")
    type: str = col(P, max_length=50, has_default=True)
    author_id: UUID = col(P, references="users")
    title: str = col(P, max_length=255)
    content: str = col(P, sql="text", clinical_text=True)
    subjective: str | None = col(P, sql="text", clinical_text=True)
    objective: str | None = col(P, sql="text", clinical_text=True)
    assessment: str | None = col(P, sql="text", clinical_text=True)
    plan: str | None = col(P, sql="text", clinical_text=True)
    tags: list[str] | None = col(P)
    is_confidential: bool = col(P, has_default=True)
    is_signed: bool = col(P, has_default=True)
    signed_at: datetime | None = col(P)
    amended: bool = col(P, has_default=True)
    amendment_reason: str | None = col(P, sql="text", clinical_text=True)


CLINICAL_NOTES = entity(ClinicalNote, table="clinical_notes", subject="student_id",
                        cache_ttl=CacheTTL.SHORT, validators=(required_if("amended", "amendment_reason"),))


@row
class ClinicalProtocol(Authored):
    """A nursing protocol: indications, ordered steps and decision points (reference data).

    The original's protocol ``version`` string is ``protocol_version`` here: ``version`` is the
    optimistic-concurrency counter on every mutable table.
    """

    id: UUID = pk()
    name: str = col(G, max_length=255)
    code: str = col(G, max_length=50, unique=True)
    protocol_version: str = col(G, max_length=20)
    category: str = col(G, max_length=100)
    description: str = col(G, sql="text")
    indications: list[Any] = col(G)
    contraindications: list[Any] | None = col(G)
    steps: list[Any] = col(G)
    decision_points: list[Any] | None = col(G)
    required_equipment: list[Any] | None = col(G)
    medications: list[Any] | None = col(G)
    status: str = col(G, max_length=50, has_default=True)
    approved_by: UUID | None = col(G, references="users")
    approved_date: datetime | None = col(G)
    effective_date: date | None = col(G)
    review_date: date | None = col(G)
    citations: list[Any] | None = col(G)
    tags: list[Any] | None = col(G)


CLINICAL_PROTOCOLS = entity(ClinicalProtocol, table="clinical_protocols", cache_ttl=CacheTTL.HOUR)
