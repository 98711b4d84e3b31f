"""Compliance: accounting of PHI disclosures made outside the system, compliance reports and
checklists, violations and their remediation, policy acknowledgements, retention policies, and
consent forms with their signatures.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from wxdata.schema.base import AuthoredSoftDeleted, SoftDeleted, Versioned
from wxdata.schema.contacts import EMAIL
from wxdata.schema.rules import required_if
from wxdata.schema.spec import (
    CacheTTL,
    DataClass,
    col,
    created_at,
    deleted_at,
    entity,
    pk,
    row,
)

P, G = DataClass.PHI, DataClass.GENERAL
DISCLOSURE_TYPES = ("TREATMENT", "PAYMENT", "HEALTHCARE_OPERATIONS", "AUTHORIZATION",
                    "REQUIRED_BY_LAW", "PUBLIC_HEALTH", "RESEARCH")
DISCLOSURE_PURPOSES = ("TREATMENT", "PAYMENT", "OPERATIONS", "LEGAL_REQUIREMENT", "PUBLIC_HEALTH",
                       "RESEARCH", "PATIENT_REQUEST")
DISCLOSURE_METHODS = ("VERBAL", "WRITTEN", "ELECTRONIC", "FAX", "PHONE")
DISCLOSURE_RECIPIENTS = ("HEALTHCARE_PROVIDER", "INSURANCE", "PARENT_GUARDIAN", "SCHOOL_OFFICIAL",
                         "GOVERNMENT_AGENCY", "RESEARCHER", "OTHER")


@row
class PhiDisclosure(AuthoredSoftDeleted):
    """A disclosure of a student's PHI to an outside party (HIPAA 164.528 accounting)."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    disclosure_type: str = col(P, max_length=50, choices=DISCLOSURE_TYPES)
    purpose: str = col(P, max_length=50, choices=DISCLOSURE_PURPOSES)
    method: str = col(P, max_length=50, choices=DISCLOSURE_METHODS)
    disclosure_date: datetime = col(P)
    information_disclosed: list[Any] = col(P)
    minimum_necessary: str = col(P, sql="text", clinical_text=True)
    recipient_type: str = col(P, max_length=50, choices=DISCLOSURE_RECIPIENTS)
    recipient_name: str = col(P, max_length=255)
    recipient_organization: str | None = col(P, max_length=255)
    recipient_address: str | None = col(P, sql="text")
    recipient_phone: str | None = col(P, max_length=50)
    recipient_email: str | None = col(P, max_length=255, pattern=EMAIL)
    authorization_obtained: bool = col(P)
    authorization_date: datetime | None = col(P)
    authorization_expiry_date: datetime | None = col(P)
    patient_requested: bool = col(P)
    disclosed_by: UUID = col(P, references="users")
    follow_up_required: bool = col(P, has_default=True)
    follow_up_completed: bool = col(P, has_default=True)
    follow_up_date: datetime | None = col(P)
    notes: str | None = col(P, sql="text", clinical_text=True)


PHI_DISCLOSURES = entity(
    PhiDisclosure, table="phi_disclosures", subject="student_id",
    validators=(required_if("follow_up_required", "follow_up_date"),),
)


@row
class PhiDisclosureAudit:
    """A change made to a disclosure record (append-only; the change set may hold PHI)."""

    id: UUID = pk()
    disclosure_id: UUID = col(P, references="phi_disclosures")
    action: str = col(P, max_length=50)
    changes: dict[str, Any] | None = col(P)
    performed_by: UUID = col(P, references="users")
    ip_address: str | None = col(P, max_length=45)
    user_agent: str | None = col(P, sql="text")
    created_at: datetime = created_at()
    deleted_at: datetime | None = deleted_at()


PHI_DISCLOSURE_AUDITS = entity(PhiDisclosureAudit, table="phi_disclosure_audits")

REPORT_TYPES = ("HIPAA", "FERPA", "PRIVACY", "SECURITY", "BREACH", "RISK_ASSESSMENT", "TRAINING",
                "AUDIT")
COMPLIANCE_STATUSES = ("PENDING", "IN_PROGRESS", "COMPLIANT", "NON_COMPLIANT", "NEEDS_REVIEW")


@row
class ComplianceReport(Versioned):
    """A periodic compliance report (HIPAA, FERPA, security...) with findings."""

    id: UUID = pk()
    report_type: str = col(G, max_length=50, choices=REPORT_TYPES)
    title: str = col(G, max_length=200)
    description: str | None = col(G, sql="text")
    status: str = col(G, max_length=50, choices=COMPLIANCE_STATUSES, has_default=True)
    period: str = col(G, max_length=50)
    findings: dict[str, Any] | None = col(G)
    recommendations: dict[str, Any] | None = col(G)
    due_date: datetime | None = col(G)
    submitted_at: datetime | None = col(G)
    submitted_by: UUID | None = col(G, references="users")
    reviewed_at: datetime | None = col(G)
    reviewed_by: UUID | None = col(G, references="users")
    created_by_id: UUID = col(G, references="users")


COMPLIANCE_REPORTS = entity(ComplianceReport, table="compliance_reports")

CHECKLIST_CATEGORIES = ("HIPAA_PRIVACY", "HIPAA_SECURITY", "FERPA", "MEDICATION", "SAFETY",
                        "TRAINING", "DOCUMENTATION")
CHECKLIST_STATUSES = ("PENDING", "IN_PROGRESS", "COMPLETED", "NOT_APPLICABLE", "FAILED")


@row
class ComplianceChecklistItem(Versioned):
    """One requirement of a compliance checklist and its evidence."""

    id: UUID = pk()
    requirement: str = col(G, max_length=500)
    description: str | None = col(G, sql="text")
    category: str = col(G, max_length=50, choices=CHECKLIST_CATEGORIES)
    status: str = col(G, max_length=50, choices=CHECKLIST_STATUSES, has_default=True)
    evidence: str | None = col(G, sql="text")
    notes: str | None = col(G, sql="text")
    due_date: datetime | None = col(G)
    completed_at: datetime | None = col(G)
    completed_by: UUID | None = col(G, references="users")
    report_id: UUID | None = col(G, references="compliance_reports")


COMPLIANCE_CHECKLIST_ITEMS = entity(ComplianceChecklistItem, table="compliance_checklist_items")

VIOLATION_TYPES = ("HIPAA_BREACH", "FERPA_VIOLATION", "UNAUTHORIZED_ACCESS", "DATA_LEAK",
                   "POLICY_VIOLATION", "PROCEDURE_VIOLATION", "TRAINING_DEFICIENCY")
SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
VIOLATION_STATUSES = ("REPORTED", "INVESTIGATING", "REMEDIATION_IN_PROGRESS", "RESOLVED", "CLOSED")


@row
class ComplianceViolation(SoftDeleted):
    """A compliance violation or breach; the affected students make it PHI."""

    id: UUID = pk()
    violation_type: str = col(P, max_length=50, choices=VIOLATION_TYPES)
    title: str = col(P, max_length=200)
    description: str = col(P, sql="text", clinical_text=True)
    severity: str = col(P, max_length=50, choices=SEVERITIES)
    status: str = col(P, max_length=50, choices=VIOLATION_STATUSES, has_default=True)
    reported_by: UUID = col(P, references="users")
    discovered_at: datetime = col(P)
    affected_students: list[UUID] | None = col(P)
    affected_data_categories: list[str] | None = col(P)
    root_cause: str | None = col(P, sql="text", clinical_text=True)
    assigned_to: UUID | None = col(P, references="users")
    resolution_notes: str | None = col(P, sql="text", clinical_text=True)
    resolved_at: datetime | None = col(P)


COMPLIANCE_VIOLATIONS = entity(ComplianceViolation, table="compliance_violations")

REMEDIATION_PRIORITIES = ("LOW", "MEDIUM", "HIGH", "URGENT")
REMEDIATION_STATUSES = ("PLANNED", "IN_PROGRESS", "COMPLETED", "VERIFIED", "DEFERRED")


@row
class RemediationAction(Versioned):
    """An action remediating a compliance violation, and its verification."""

    id: UUID = pk()
    violation_id: UUID = col(G, references="compliance_violations")
    action: str = col(G, sql="text")
    priority: str = col(G, max_length=50, choices=REMEDIATION_PRIORITIES, has_default=True)
    status: str = col(G, max_length=50, choices=REMEDIATION_STATUSES, has_default=True)
    assigned_to: UUID = col(G, references="users")
    due_date: datetime = col(G)
    implementation_notes: str | None = col(G, sql="text")
    verification_notes: str | None = col(G, sql="text")
    completed_at: datetime | None = col(G)
    verified_by: UUID | None = col(G, references="users")
    verified_at: datetime | None = col(G)


REMEDIATION_ACTIONS = entity(RemediationAction, table="remediation_actions")


@row
class PolicyAcknowledgment:
    """A user's acknowledgement of a policy document (one per policy and user)."""

    id: UUID = pk()
    policy_id: UUID = col(G, references="policy_documents")
    user_id: UUID = col(G, references="users")
    acknowledged_at: datetime = col(G, has_default=True)
    ip_address: str | None = col(G, max_length=45)
    created_at: datetime = created_at()


POLICY_ACKNOWLEDGMENTS = entity(PolicyAcknowledgment, table="policy_acknowledgments",
                                unique_together=(("policy_id", "user_id"),))

RETENTION_CATEGORIES = ("STUDENT_RECORDS", "HEALTH_RECORDS", "MEDICATION_LOGS", "AUDIT_LOGS",
                        "CONSENT_FORMS", "INCIDENT_REPORTS", "TRAINING_RECORDS")
RETENTION_STATUSES = ("ACTIVE", "INACTIVE", "UNDER_REVIEW")


@row
class DataRetentionPolicy(Versioned):
    """How long a category of records is kept, and on what legal basis."""

    id: UUID = pk()
    category: str = col(G, max_length=50, choices=RETENTION_CATEGORIES)
    description: str = col(G, sql="text")
    retention_period_days: int = col(G, minimum=1)
    legal_basis: str = col(G, sql="text")
    status: str = col(G, max_length=50, choices=RETENTION_STATUSES, has_default=True)
    auto_delete: bool = col(G, has_default=True)
    last_reviewed_at: datetime | None = col(G)
    last_reviewed_by: UUID | None = col(G, references="users")


DATA_RETENTION_POLICIES = entity(DataRetentionPolicy, table="data_retention_policies",
                                 cache_ttl=CacheTTL.HOUR)

CONSENT_TYPES = ("MEDICATION_ADMINISTRATION", "PHOTO_RELEASE", "FIELD_TRIP", "EMERGENCY_TREATMENT",
                 "DATA_SHARING", "RESEARCH")


@row
class ConsentForm(Versioned):
    """A consent form template (the original's ``version`` string is ``form_version``)."""

    id: UUID = pk()
    type: str = col(G, max_length=50, choices=CONSENT_TYPES)
    title: str = col(G, max_length=255)
    description: str = col(G, sql="text")
    content: str = col(G, sql="text")
    form_version: str = col(G, max_length=20, has_default=True)
    is_active: bool = col(G, has_default=True)
    expires_at: datetime | None = col(G)


CONSENT_FORMS = entity(ConsentForm, table="consent_forms", cache_ttl=CacheTTL.HOUR)


@row
class ConsentSignature(SoftDeleted):
    """A guardian's signature of a consent form for a student (one per form and student)."""

    id: UUID = pk()
    consent_form_id: UUID = col(P, references="consent_forms")
    student_id: UUID = col(P, references="students")
    signed_by: str = col(P, max_length=255)
    relationship: str = col(P, max_length=100)
    signature_data: str | None = col(P, sql="text", filterable=False, sortable=False)
    ip_address: str | None = col(P, max_length=45)
    signed_at: datetime = col(P, has_default=True)
    withdrawn_at: datetime | None = col(P)
    withdrawn_by: str | None = col(P, max_length=255)


CONSENT_SIGNATURES = entity(ConsentSignature, table="consent_signatures", subject="student_id",
                            unique_together=(("consent_form_id", "student_id"),))
