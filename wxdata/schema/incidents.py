"""Incidents: incident reports about a student, witness statements and follow-up actions."""

from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

from wxdata.schema.base import AuthoredSoftDeleted, SoftDeleted
from wxdata.schema.rules import required_if
from wxdata.schema.spec import (
    DataClass,
    col,
    entity,
    pk,
    row,
)

P = DataClass.PHI


class IncidentType(enum.StrEnum):
    """Kinds of incident."""

    INJURY = "INJURY"
    ILLNESS = "ILLNESS"
    BEHAVIORAL = "BEHAVIORAL"
    MEDICATION_ERROR = "MEDICATION_ERROR"
    ALLERGIC_REACTION = "ALLERGIC_REACTION"
    EMERGENCY = "EMERGENCY"
    SAFETY = "SAFETY"
    OTHER = "OTHER"


class IncidentSeverity(enum.StrEnum):
    """Severity of an incident."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class IncidentStatus(enum.StrEnum):
    """Workflow state of an incident report."""

    DRAFT = "DRAFT"
    PENDING_REVIEW = "PENDING_REVIEW"
    UNDER_INVESTIGATION = "UNDER_INVESTIGATION"
    REQUIRES_ACTION = "REQUIRES_ACTION"
    RESOLVED = "RESOLVED"
    CLOSED = "CLOSED"


CLAIM_STATUSES = ("NOT_FILED", "FILED", "PENDING", "APPROVED", "DENIED", "CLOSED")
LEGAL_STATUSES = ("PENDING", "COMPLIANT", "NON_COMPLIANT", "UNDER_REVIEW")


@row
class IncidentReport(AuthoredSoftDeleted):
    """An injury, illness, behavioural or safety incident involving a student."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    reported_by_id: UUID = col(P, references="users")
    type: str = col(P, max_length=50, choices=IncidentType)
    severity: str = col(P, max_length=50, choices=IncidentSeverity)
    status: str = col(P, max_length=50, choices=IncidentStatus, has_default=True)
    description: str = col(P, sql="text", clinical_text=True)
    location: str = col(P, max_length=255)
    witnesses: list[str] = col(P, has_default=True)
    actions_taken: str = col(P, sql="text", clinical_text=True)
    parent_notified: bool = col(P, has_default=True)
    parent_notification_method: str | None = col(P, max_length=255)
    parent_notified_at: datetime | None = col(P)
    parent_notified_by: UUID | None = col(P, references="users")
    follow_up_required: bool = col(P, has_default=True)
    follow_up_notes: str | None = col(P, sql="text", clinical_text=True)
    attachments: list[str] = col(P, has_default=True)
    evidence_photos: list[str] = col(P, has_default=True)
    evidence_videos: list[str] = col(P, has_default=True)
    insurance_claim_number: str | None = col(P, max_length=255)
    insurance_claim_status: str | None = col(P, max_length=50, choices=CLAIM_STATUSES)
    legal_compliance_status: str = col(P, max_length=50, choices=LEGAL_STATUSES,
                                       has_default=True)
    occurred_at: datetime = col(P, not_future=True)


INCIDENT_REPORTS = entity(
    IncidentReport, table="incident_reports", subject="student_id",
    validators=(required_if("parent_notified", "parent_notification_method"),),
)

WITNESS_TYPES = ("STAFF", "STUDENT", "PARENT", "GUARDIAN", "VISITOR", "OTHER")


@row
class WitnessStatement(SoftDeleted):
    """A witness's account of an incident."""

    id: UUID = pk()
    incident_report_id: UUID = col(P, references="incident_reports")
    witness_name: str = col(P, max_length=255)
    witness_type: str = col(P, max_length=50, choices=WITNESS_TYPES)
    witness_contact: str | None = col(P, max_length=255)
    statement: str = col(P, sql="text", clinical_text=True)
    verified: bool = col(P, has_default=True)
    verified_by: UUID | None = col(P, references="users")
    verified_at: datetime | None = col(P)


WITNESS_STATEMENTS = entity(WitnessStatement, table="witness_statements")

ACTION_PRIORITIES = ("LOW", "MEDIUM", "HIGH", "URGENT")
ACTION_STATUSES = ("PENDING", "IN_PROGRESS", "COMPLETED", "CANCELLED")


@row
class FollowUpAction(SoftDeleted):
    """An action to take after an incident, with its owner and due date."""

    id: UUID = pk()
    incident_report_id: UUID = col(P, references="incident_reports")
    action: str = col(P, sql="text", clinical_text=True)
    due_date: datetime = col(P)
    priority: str = col(P, max_length=50, choices=ACTION_PRIORITIES, has_default=True)
    status: str = col(P, max_length=50, choices=ACTION_STATUSES, has_default=True)
    assigned_to: UUID | None = col(P, references="users")
    completed_at: datetime | None = col(P)
    completed_by: UUID | None = col(P, references="users")
    notes: str | None = col(P, sql="text", clinical_text=True)


FOLLOW_UP_ACTIONS = entity(FollowUpAction, table="follow_up_actions")
