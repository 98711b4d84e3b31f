"""Medication domain: the drug catalog and formulary (reference data), the medications a student
takes, each administration, prescriptions, drug allergies and drug-drug interactions.

Catalog rows (``drug_catalog``, ``medications``, ``drug_interactions``) hold no student data and
are GENERAL; everything linked to a student is PHI and soft-deletes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from wxdata.errors import FieldError
from wxdata.schema.base import AuthoredSoftDeleted, SoftDeleted, Versioned
from wxdata.schema.rules import distinct, not_before, only_if
from wxdata.schema.spec import (
    CacheTTL,
    DataClass,
    col,
    created_at,
    created_by,
    deleted_at,
    entity,
    pk,
    reads,
    row,
    updated_at,
    version,
)

P, G = DataClass.PHI, DataClass.GENERAL
NDC = r"\d{4,5}-\d{3,4}-\d{1,2}"
DEA_SCHEDULES = ("I", "II", "III", "IV", "V")


@row
class DrugCatalog(Versioned):
    """A drug of the RxNorm-based catalog (reference data)."""

    id: UUID = pk()
    rxnorm_id: str | None = col(G, max_length=50, unique=True)
    rxnorm_code: str | None = col(G, max_length=50, unique=True)
    generic_name: str = col(G, max_length=255)
    brand_names: list[str] | None = col(G)
    drug_class: str | None = col(G, max_length=100)
    fda_approved: bool = col(G, has_default=True)
    common_doses: dict[str, Any] | None = col(G)
    side_effects: list[str] | None = col(G)
    contraindications: list[str] | None = col(G)
    warnings: list[str] | None = col(G)
    is_active: bool = col(G, has_default=True)


DRUG_CATALOG = entity(DrugCatalog, table="drug_catalog", cache_ttl=CacheTTL.DAY)


@row
class Medication(AuthoredSoftDeleted):
    """A medication of the school formulary (not student-linked)."""

    id: UUID = pk()
    name: str = col(G, max_length=255)
    generic_name: str | None = col(G, max_length=255)
    dosage_form: str = col(G, max_length=255)
    strength: str = col(G, max_length=255)
    manufacturer: str | None = col(G, max_length=255)
    ndc: str | None = col(G, max_length=255, unique=True, pattern=NDC)
    is_controlled: bool = col(G, has_default=True)
    dea_schedule: str | None = col(G, max_length=5, choices=DEA_SCHEDULES)
    requires_witness: bool = col(G, has_default=True)
    is_active: bool = col(G, has_default=True)


MEDICATIONS = entity(Medication, table="medications", cache_ttl=CacheTTL.LONG,
                     validators=(only_if("is_controlled", "dea_schedule"),))


@row
class StudentMedication(AuthoredSoftDeleted):
    """A medication a student is prescribed to take at school."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    medication_id: UUID = col(P, references="medications")
    dosage: str = col(P, max_length=255)
    frequency: str = col(P, max_length=255)
    route: str = col(P, max_length=255)
    instructions: str | None = col(P, sql="text", clinical_text=True)
    start_date: date = col(P)
    end_date: date | None = col(P)
    is_active: bool = col(P, has_default=True)
    prescribed_by: str = col(P, max_length=255)
    prescription_number: str | None = col(P, max_length=255)
    refills_remaining: int | None = col(P, minimum=0, has_default=True)


STUDENT_MEDICATIONS = entity(
    StudentMedication, table="student_medications", subject="student_id",
    cache_ttl=CacheTTL.SHORT, validators=(not_before("end_date", "start_date"),),
)


class MedicationLogStatus(enum.StrEnum):
    """Outcome of a scheduled administration."""

    PENDING = "PENDING"
    ADMINISTERED = "ADMINISTERED"
    MISSED = "MISSED"
    CANCELLED = "CANCELLED"
    REFUSED = "REFUSED"


@row
class MedicationLog:
    """One administration (or non-administration) of a medication to a student."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    medication_id: UUID = col(P, references="medications")
    dosage: Decimal = col(P, sql="numeric(10,2)", minimum=0)
    dosage_unit: str = col(P, max_length=255)
    route: str = col(P, max_length=255)
    scheduled_at: datetime | None = col(P)
    administered_at: datetime = col(P)
    administered_by: str = col(P, max_length=255)
    status: str | None = col(P, max_length=50, choices=MedicationLogStatus, has_default=True)
    notes: str | None = col(P, sql="text", clinical_text=True)
    was_given: bool = col(P, has_default=True)
    reason_not_given: str | None = col(P, sql="text", clinical_text=True)
    version: int = version()
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()
    created_by: str | None = created_by()
    deleted_at: datetime | None = deleted_at()


MEDICATION_LOGS = entity(MedicationLog, table="medication_logs", subject="student_id",
                         cache_ttl=CacheTTL.SHORT)


@reads("refills_used", "refills_authorized", "quantity_filled", "quantity")
def _refills(values: Mapping[str, Any]) -> Iterable[FieldError]:
    for used, allowed in (("refills_used", "refills_authorized"), ("quantity_filled", "quantity")):
        a, b = values.get(used, 0), values.get(allowed, 0)  # absent counters default to 0
        if isinstance(a, int) and isinstance(b, int) and a > b:
            yield FieldError(used, f"must not exceed {allowed}")


@row
class Prescription(AuthoredSoftDeleted):
    """A prescription written for a student (status values: PENDING, FILLED, PICKED_UP, ...)."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    visit_id: UUID | None = col(P, references="clinic_visits")
    treatment_plan_id: UUID | None = col(P, references="treatment_plans")
    prescribed_by: UUID = col(P, references="users")
    drug_name: str = col(P, max_length=255)
    drug_code: str | None = col(P, max_length=100, pattern=NDC)
    dosage: str = col(P, max_length=100)
    frequency: str = col(P, max_length=100)
    route: str = col(P, max_length=50)
    quantity: int = col(P, minimum=0)
    quantity_filled: int = col(P, minimum=0, has_default=True)
    refills_authorized: int = col(P, minimum=0, has_default=True)
    refills_used: int = col(P, minimum=0, has_default=True)
    start_date: date = col(P)
    end_date: date | None = col(P)
    instructions: str | None = col(P, sql="text", clinical_text=True)
    status: str = col(P, max_length=50, has_default=True)
    pharmacy_name: str | None = col(P, max_length=255)
    filled_date: datetime | None = col(P)
    picked_up_date: datetime | None = col(P)
    notes: str | None = col(P, sql="text", clinical_text=True)


PRESCRIPTIONS = entity(
    Prescription, table="prescriptions", subject="student_id", cache_ttl=CacheTTL.SHORT,
    validators=(not_before("end_date", "start_date"),
                not_before("picked_up_date", "filled_date"), _refills),
)


@row
class StudentDrugAllergy(SoftDeleted):
    """A student's allergy to a catalog drug (one row per student and drug)."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    drug_id: UUID = col(P, references="drug_catalog")
    allergy_type: str = col(P, max_length=100)
    reaction: str = col(P, sql="text", clinical_text=True)
    severity: str = col(P, max_length=50)
    notes: str | None = col(P, sql="text", clinical_text=True)
    diagnosed_date: date | None = col(P)
    diagnosed_by: str | None = col(P, max_length=255)


STUDENT_DRUG_ALLERGIES = entity(
    StudentDrugAllergy, table="student_drug_allergies", subject="student_id",
    cache_ttl=CacheTTL.LONG, unique_together=(("student_id", "drug_id"),),
)


@row
class DrugInteraction(Versioned):
    """A known interaction between two catalog drugs (reference data)."""

    id: UUID = pk()
    drug1_id: UUID = col(G, references="drug_catalog")
    drug2_id: UUID = col(G, references="drug_catalog")
    severity: str = col(G, max_length=50)
    description: str = col(G, sql="text")
    clinical_effects: str | None = col(G, sql="text")
    management: str | None = col(G, sql="text")
    citations: list[Any] | None = col(G)
    evidence_level: str | None = col(G, max_length=50)


DRUG_INTERACTIONS = entity(
    DrugInteraction, table="drug_interactions", cache_ttl=CacheTTL.DAY,
    validators=(distinct("drug1_id", "drug2_id"),), unique_together=(("drug1_id", "drug2_id"),),
)
