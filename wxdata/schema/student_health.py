"""Health domain: allergies, chronic conditions, vaccinations, immunizations, vital signs, growth,
screenings, lab results, mental-health records, medical history and school health metrics.

Every student-linked row here is PHI in full (a clinical fact about an identified student);
clinical free text is marked ``clinical_text`` so audit diffs mask it. Rows soft-delete.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from wxdata.schema.base import AuthoredSoftDeleted, SoftDeleted
from wxdata.schema.rules import not_before, only_if, required_if
from wxdata.schema.spec import (
    CacheTTL,
    DataClass,
    col,
    created_at,
    entity,
    pk,
    row,
)

P, G = DataClass.PHI, DataClass.GENERAL
ICD10 = r"[A-Z]\d{2}(\.\d{1,4})?"


class AllergyType(enum.StrEnum):
    """Kinds of allergy."""

    FOOD = "FOOD"
    MEDICATION = "MEDICATION"
    ENVIRONMENTAL = "ENVIRONMENTAL"
    INSECT = "INSECT"
    LATEX = "LATEX"
    OTHER = "OTHER"


class AllergySeverity(enum.StrEnum):
    """Severity of an allergic reaction."""

    MILD = "MILD"
    MODERATE = "MODERATE"
    SEVERE = "SEVERE"
    LIFE_THREATENING = "LIFE_THREATENING"


@row
class Allergy(AuthoredSoftDeleted):
    """A student's allergy, with EpiPen details."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    allergen: str = col(P, max_length=255)
    allergy_type: str = col(P, max_length=50, choices=AllergyType, has_default=True)
    severity: str = col(P, max_length=50, choices=AllergySeverity)
    symptoms: str | None = col(P, sql="text", clinical_text=True)
    reactions: dict[str, Any] | None = col(P)
    treatment: str | None = col(P, sql="text", clinical_text=True)
    emergency_protocol: str | None = col(P, sql="text", clinical_text=True)
    onset_date: date | None = col(P)
    diagnosed_date: date | None = col(P)
    diagnosed_by: str | None = col(P, max_length=255)
    verified: bool = col(P, has_default=True)
    verified_by: UUID | None = col(P, references="users")
    verification_date: datetime | None = col(P)
    active: bool = col(P, has_default=True)
    notes: str | None = col(P, sql="text", clinical_text=True)
    epi_pen_required: bool = col(P, has_default=True)
    epi_pen_location: str | None = col(P, max_length=255)
    epi_pen_expiration: date | None = col(P)
    health_record_id: UUID | None = col(P, references="health_records")


ALLERGIES = entity(
    Allergy, table="allergies", subject="student_id", cache_ttl=CacheTTL.LONG,
    validators=(required_if("epi_pen_required", "epi_pen_location"),
                required_if("verified", "verified_by")),
)


class ConditionStatus(enum.StrEnum):
    """Management phase of a chronic condition."""

    ACTIVE = "ACTIVE"
    MANAGED = "MANAGED"
    RESOLVED = "RESOLVED"
    MONITORING = "MONITORING"


@row
class ChronicCondition(AuthoredSoftDeleted):
    """A chronic condition with its care plan and school accommodations."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    health_record_id: UUID | None = col(P, references="health_records")
    condition: str = col(P, max_length=200)
    icd_code: str | None = col(P, max_length=20, pattern=ICD10)
    diagnosed_date: date = col(P, not_future=True)
    diagnosed_by: str | None = col(P, max_length=200)
    status: str = col(P, max_length=50, choices=ConditionStatus, has_default=True)
    severity: str | None = col(P, max_length=50)
    notes: str | None = col(P, sql="text", clinical_text=True)
    care_plan: str | None = col(P, sql="text", clinical_text=True)
    medications: list[Any] = col(P, has_default=True)
    restrictions: list[Any] = col(P, has_default=True)
    triggers: list[Any] = col(P, has_default=True)
    accommodations: list[Any] = col(P, has_default=True)
    emergency_protocol: str | None = col(P, sql="text", clinical_text=True)
    last_review_date: date | None = col(P)
    next_review_date: date | None = col(P)
    requires_iep: bool = col(P, has_default=True)
    requires_504: bool = col(P, has_default=True)
    is_active: bool = col(P, has_default=True)


CHRONIC_CONDITIONS = entity(
    ChronicCondition, table="chronic_conditions", subject="student_id",
    cache_ttl=CacheTTL.MEDIUM,
)


class VaccineType(enum.StrEnum):
    """Vaccine families (CDC schedule)."""

    COVID_19 = "COVID_19"
    FLU = "FLU"
    MEASLES = "MEASLES"
    MUMPS = "MUMPS"
    RUBELLA = "RUBELLA"
    MMR = "MMR"
    POLIO = "POLIO"
    HEPATITIS_A = "HEPATITIS_A"
    HEPATITIS_B = "HEPATITIS_B"
    VARICELLA = "VARICELLA"
    TETANUS = "TETANUS"
    DIPHTHERIA = "DIPHTHERIA"
    PERTUSSIS = "PERTUSSIS"
    TDAP = "TDAP"
    DTAP = "DTAP"
    HIB = "HIB"
    PNEUMOCOCCAL = "PNEUMOCOCCAL"
    ROTAVIRUS = "ROTAVIRUS"
    MENINGOCOCCAL = "MENINGOCOCCAL"
    HPV = "HPV"
    OTHER = "OTHER"


SITES = ("ARM_LEFT", "ARM_RIGHT", "THIGH_LEFT", "THIGH_RIGHT", "DELTOID_LEFT", "DELTOID_RIGHT",
         "BUTTOCK_LEFT", "BUTTOCK_RIGHT", "ORAL", "NASAL", "OTHER")
ROUTES = ("INTRAMUSCULAR", "SUBCUTANEOUS", "INTRADERMAL", "ORAL", "INTRANASAL", "INTRAVENOUS",
          "OTHER")
COMPLIANCE = ("COMPLIANT", "OVERDUE", "PARTIALLY_COMPLIANT", "EXEMPT", "NON_COMPLIANT")


@row
class Vaccination(AuthoredSoftDeleted):
    """A vaccine dose given to a student, with series, exemption and consent details."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    health_record_id: UUID | None = col(P, references="health_records")
    vaccine_name: str = col(P, max_length=200)
    vaccine_type: str | None = col(P, max_length=50, choices=VaccineType)
    manufacturer: str | None = col(P, max_length=100)
    lot_number: str | None = col(P, max_length=50)
    cvx_code: str | None = col(P, max_length=10)
    ndc_code: str | None = col(P, max_length=20)
    dose_number: int | None = col(P, minimum=1)
    total_doses: int | None = col(P, minimum=1)
    series_complete: bool = col(P, has_default=True)
    administration_date: date = col(P, not_future=True)
    administered_by: str = col(P, max_length=200)
    administered_by_role: str | None = col(P, max_length=50)
    facility: str | None = col(P, max_length=200)
    site_of_administration: str | None = col(P, max_length=50, choices=SITES)
    route_of_administration: str | None = col(P, max_length=50, choices=ROUTES)
    dosage_amount: str | None = col(P, max_length=50)
    expiration_date: date | None = col(P)
    next_due_date: date | None = col(P)
    reactions: str | None = col(P, sql="text", clinical_text=True)
    adverse_events: dict[str, Any] | None = col(P)
    exemption_status: bool = col(P, has_default=True)
    exemption_reason: str | None = col(P, sql="text", clinical_text=True)
    exemption_document: str | None = col(P, max_length=500)
    compliance_status: str = col(P, max_length=50, choices=COMPLIANCE, has_default=True)
    vfc_eligibility: bool = col(P, has_default=True)
    vis_provided: bool = col(P, has_default=True)
    vis_date: date | None = col(P)
    consent_obtained: bool = col(P, has_default=True)
    consent_by: str | None = col(P, max_length=200)
    notes: str | None = col(P, sql="text", clinical_text=True)


VACCINATIONS = entity(
    Vaccination, table="vaccinations", subject="student_id", cache_ttl=CacheTTL.MEDIUM,
    validators=(not_before("next_due_date", "administration_date"),),
)


@row
class Immunization(SoftDeleted):
    """An immunization entry (the original's lighter record beside Vaccination)."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    vaccine_name: str = col(P, max_length=255)
    vaccine_code: str | None = col(P, max_length=50)
    administered_date: date = col(P, not_future=True)
    expiration_date: date | None = col(P)
    next_due_date: date | None = col(P)
    dosage: str | None = col(P, max_length=50)
    site: str | None = col(P, max_length=50)
    route: str | None = col(P, max_length=50)
    manufacturer: str | None = col(P, max_length=255)
    lot_number: str | None = col(P, max_length=100)
    administered_by: UUID = col(P, references="users")
    notes: str | None = col(P, sql="text", clinical_text=True)


IMMUNIZATIONS = entity(
    Immunization, table="immunizations", subject="student_id", cache_ttl=CacheTTL.MEDIUM,
    validators=(not_before("next_due_date", "administered_date"),),
)

TEMPERATURE_UNITS = ("F", "C")
WEIGHT_UNITS = ("lbs", "kg")
HEIGHT_UNITS = ("inches", "cm")


@row
class VitalSigns(SoftDeleted):
    """One set of vital-sign measurements."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    measurement_date: datetime = col(P)
    temperature: float | None = col(P, minimum=0, maximum=120)
    temperature_unit: str | None = col(P, max_length=10, choices=TEMPERATURE_UNITS, has_default=True)
    heart_rate: int | None = col(P, minimum=0, maximum=400)
    respiratory_rate: int | None = col(P, minimum=0, maximum=200)
    blood_pressure_systolic: int | None = col(P, minimum=0, maximum=400)
    blood_pressure_diastolic: int | None = col(P, minimum=0, maximum=300)
    oxygen_saturation: float | None = col(P, minimum=0, maximum=100)
    weight: float | None = col(P, minimum=0)
    weight_unit: str | None = col(P, max_length=10, choices=WEIGHT_UNITS, has_default=True)
    height: float | None = col(P, minimum=0)
    height_unit: str | None = col(P, max_length=10, choices=HEIGHT_UNITS, has_default=True)
    bmi: float | None = col(P, minimum=0)
    pain: int | None = col(P, minimum=0, maximum=10)
    is_abnormal: bool = col(P, has_default=True)
    abnormal_flags: list[str] | None = col(P)
    measured_by: str | None = col(P, max_length=255)
    notes: str | None = col(P, sql="text", clinical_text=True)


VITAL_SIGNS = entity(VitalSigns, table="vital_signs", subject="student_id",
                     cache_ttl=CacheTTL.SHORT)


@row
class GrowthTracking(SoftDeleted):
    """A growth measurement with percentiles."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    measurement_date: datetime = col(P)
    height: float | None = col(P, minimum=0)
    height_unit: str | None = col(P, max_length=10, choices=HEIGHT_UNITS, has_default=True)
    weight: float | None = col(P, minimum=0)
    weight_unit: str | None = col(P, max_length=10, choices=WEIGHT_UNITS, has_default=True)
    bmi: float | None = col(P, minimum=0)
    percentile_height: float | None = col(P, minimum=0, maximum=100)
    percentile_weight: float | None = col(P, minimum=0, maximum=100)
    percentile_bmi: float | None = col(P, minimum=0, maximum=100)
    notes: str | None = col(P, sql="text", clinical_text=True)
    measured_by: UUID = col(P, references="users")


GROWTH_TRACKING = entity(GrowthTracking, table="growth_tracking", subject="student_id")


@row
class HealthScreening(SoftDeleted):
    """A screening (vision, hearing, scoliosis...) and its results."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    screening_type: str = col(P, max_length=100)
    screening_date: date = col(P, not_future=True)
    results: dict[str, Any] = col(P)
    passed: bool = col(P)
    follow_up_required: bool = col(P, has_default=True)
    notes: str | None = col(P, sql="text", clinical_text=True)
    conducted_by: UUID = col(P, references="users")


HEALTH_SCREENINGS = entity(HealthScreening, table="health_screenings", subject="student_id",
                           cache_ttl=CacheTTL.MEDIUM)

LAB_TEST_TYPES = ("blood_test", "urinalysis", "culture", "chemistry", "hematology",
                  "microbiology", "other")
LAB_STATUSES = ("pending", "completed", "reviewed", "cancelled")


@row
class LabResult(SoftDeleted):
    """A laboratory test and its result."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    test_type: str = col(P, max_length=50, choices=LAB_TEST_TYPES)
    test_name: str = col(P, max_length=255)
    test_code: str | None = col(P, max_length=255)
    ordered_date: datetime = col(P)
    collection_date: datetime | None = col(P)
    result_date: datetime | None = col(P)
    result: str = col(P, sql="text", clinical_text=True)
    result_value: float | None = col(P)
    result_unit: str | None = col(P, max_length=255)
    reference_range: str | None = col(P, max_length=255)
    is_abnormal: bool = col(P, has_default=True)
    abnormal_flags: list[str] | None = col(P)
    interpretation: str | None = col(P, sql="text", clinical_text=True)
    status: str = col(P, max_length=20, choices=LAB_STATUSES, has_default=True)
    ordered_by: str | None = col(P, max_length=255)
    performed_by: str | None = col(P, max_length=255)
    reviewed_by: str | None = col(P, max_length=255)
    reviewed_date: datetime | None = col(P)
    lab_name: str | None = col(P, max_length=255)
    notes: str | None = col(P, sql="text", clinical_text=True)


LAB_RESULTS = entity(
    LabResult, table="lab_results", subject="student_id",
    validators=(not_before("result_date", "ordered_date"),),
)


class MentalHealthRecordType(enum.StrEnum):
    """Kinds of mental-health record."""

    ASSESSMENT = "ASSESSMENT"
    COUNSELING_SESSION = "COUNSELING_SESSION"
    CRISIS_INTERVENTION = "CRISIS_INTERVENTION"
    THERAPY_SESSION = "THERAPY_SESSION"
    PSYCHIATRIC_EVALUATION = "PSYCHIATRIC_EVALUATION"
    SCREENING = "SCREENING"
    FOLLOW_UP = "FOLLOW_UP"
    REFERRAL = "REFERRAL"
    PROGRESS_NOTE = "PROGRESS_NOTE"


class RiskLevel(enum.StrEnum):
    """Assessed risk level."""

    NONE = "NONE"
    LOW = "LOW"
    MODERATE = "MODERATE"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


CONFIDENTIALITY = ("STANDARD", "ENHANCED", "MAXIMUM")


@row
class MentalHealthRecord(AuthoredSoftDeleted):
    """A counselling session, assessment or crisis intervention (enhanced confidentiality).

    The original's ``accessLog`` JSON column is not carried over: every read is recorded in the
    audit log, which is append-only and tamper-evident, unlike a column the row's writers can edit.
    """

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    record_type: str = col(P, max_length=50, choices=MentalHealthRecordType)
    record_date: datetime = col(P)
    counselor_id: UUID | None = col(P, references="users")
    therapist_id: UUID | None = col(P)
    psychiatrist_id: UUID | None = col(P)
    title: str = col(P, max_length=200)
    session_notes: str = col(P, sql="text", clinical_text=True)
    assessment: str | None = col(P, sql="text", clinical_text=True)
    diagnosis: str | None = col(P, sql="text", clinical_text=True)
    diagnosis_code: str | None = col(P, max_length=20)
    treatment_plan: str | None = col(P, sql="text", clinical_text=True)
    risk_level: str = col(P, max_length=50, choices=RiskLevel, has_default=True)
    risk_factors: list[str] | None = col(P, clinical_text=True)
    protective_factors: list[str] | None = col(P, clinical_text=True)
    interventions: list[str] | None = col(P, clinical_text=True)
    follow_up_required: bool = col(P, has_default=True)
    follow_up_date: date | None = col(P)
    follow_up_completed: bool = col(P, has_default=True)
    referral_to: str | None = col(P, max_length=200)
    referral_reason: str | None = col(P, sql="text", clinical_text=True)
    confidentiality_level: str = col(P, max_length=20, choices=CONFIDENTIALITY, has_default=True)
    parent_notified: bool = col(P, has_default=True)
    parent_notification_date: datetime | None = col(P)
    attachments: list[Any] = col(P, has_default=True)
    metadata: dict[str, Any] | None = col(P)


MENTAL_HEALTH_RECORDS = entity(
    MentalHealthRecord, table="mental_health_records", subject="student_id",
    cache_ttl=CacheTTL.SHORT,
    validators=(required_if("follow_up_required", "follow_up_date"),),
)

HISTORY_TYPES = ("condition", "allergy", "surgery", "hospitalization", "family_history", "other")
HISTORY_SEVERITIES = ("mild", "moderate", "severe", "critical")
HISTORY_CATEGORIES = ("chronic", "acute", "genetic", "infectious", "autoimmune", "other")
FAMILY_RELATIONS = ("mother", "father", "sibling", "grandparent", "aunt", "uncle", "cousin",
                    "other")


@row
class MedicalHistory(SoftDeleted):
    """A past or present condition, surgery, hospitalization or family-history item."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    record_type: str = col(P, max_length=30, choices=HISTORY_TYPES)
    condition: str = col(P, max_length=255)
    diagnosis_code: str | None = col(P, max_length=255)
    diagnosis_date: date | None = col(P)
    resolved_date: date | None = col(P)
    is_active: bool = col(P, has_default=True)
    severity: str | None = col(P, max_length=20, choices=HISTORY_SEVERITIES)
    category: str | None = col(P, max_length=20, choices=HISTORY_CATEGORIES)
    treatment: str | None = col(P, sql="text", clinical_text=True)
    medication: str | None = col(P, sql="text", clinical_text=True)
    notes: str | None = col(P, sql="text", clinical_text=True)
    is_family_history: bool = col(P, has_default=True)
    family_relation: str | None = col(P, max_length=20, choices=FAMILY_RELATIONS)
    is_critical: bool = col(P, has_default=True)
    requires_monitoring: bool = col(P, has_default=True)


MEDICAL_HISTORY = entity(
    MedicalHistory, table="medical_history", subject="student_id",
    validators=(not_before("resolved_date", "diagnosis_date"),
                only_if("is_family_history", "family_relation")),
)

TRENDS = ("INCREASING", "DECREASING", "STABLE", "FLUCTUATING")


@row
class HealthMetricSnapshot:
    """An aggregate health metric of a school at a point in time (no student data)."""

    id: UUID = pk()
    school_id: UUID = col(G, references="schools")
    metric_name: str = col(G, max_length=255)
    value: Decimal = col(G, sql="numeric(10,2)")
    unit: str = col(G, max_length=255)
    category: str = col(G, max_length=255)
    trend: str | None = col(G, max_length=50, choices=TRENDS)
    metadata: dict[str, Any] | None = col(G)
    snapshot_date: datetime = col(G)
    created_at: datetime = created_at()


HEALTH_METRIC_SNAPSHOTS = entity(
    HealthMetricSnapshot, table="health_metric_snapshots", school="school_id"
)
