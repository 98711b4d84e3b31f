"""Emergency domain: a student's emergency contacts and school-wide emergency broadcasts."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from wxdata.schema.base import AuthoredSoftDeleted, Versioned
from wxdata.schema.contacts import EMAIL, PHONE
from wxdata.schema.spec import (
    CacheTTL,
    DataClass,
    col,
    entity,
    pk,
    row,
)

P, G = DataClass.PHI, DataClass.GENERAL


class ContactPriority(enum.StrEnum):
    """Order in which emergency contacts are called."""

    PRIMARY = "PRIMARY"
    SECONDARY = "SECONDARY"
    EMERGENCY_ONLY = "EMERGENCY_ONLY"


class VerificationStatus(enum.StrEnum):
    """Whether a contact's details were verified."""

    UNVERIFIED = "UNVERIFIED"
    PENDING = "PENDING"
    VERIFIED = "VERIFIED"
    FAILED = "FAILED"


CONTACT_METHODS = ("SMS", "EMAIL", "VOICE", "ANY")


@row
class EmergencyContact(AuthoredSoftDeleted):
    """A person to call about a student in an emergency (and who may pick the student up)."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    first_name: str = col(P, max_length=100)
    last_name: str = col(P, max_length=100)
    relationship: str = col(P, max_length=50)
    phone_number: str = col(P, max_length=20, pattern=PHONE)
    email: str | None = col(P, max_length=255, pattern=EMAIL)
    address: str | None = col(P, sql="text")
    priority: str = col(P, max_length=50, choices=ContactPriority, has_default=True)
    is_active: bool = col(P, has_default=True)
    preferred_contact_method: str | None = col(P, max_length=50, choices=CONTACT_METHODS,
                                               has_default=True)
    verification_status: str | None = col(P, max_length=50, choices=VerificationStatus,
                                          has_default=True)
    last_verified_at: datetime | None = col(P)
    notification_channels: list[str] | None = col(P, choices=("sms", "email", "voice"))
    can_pickup_student: bool | None = col(P, has_default=True)
    notes: str | None = col(P, sql="text", clinical_text=True)


EMERGENCY_CONTACTS = entity(EmergencyContact, table="emergency_contacts", subject="student_id",
                            cache_ttl=CacheTTL.LONG)


@row
class EmergencyBroadcast(Versioned):
    """A school- or district-wide emergency message (no student data)."""

    id: UUID = pk()
    type: str = col(G, max_length=50)
    priority: str = col(G, max_length=50)
    title: str = col(G, max_length=200)
    message: str = col(G, sql="text")
    audience: list[Any] = col(G, has_default=True)
    school_id: UUID | None = col(G, references="schools")
    grade_level: str | None = col(G, max_length=50)
    class_id: UUID | None = col(G)
    group_ids: list[Any] | None = col(G)
    channels: list[Any] = col(G, has_default=True)
    requires_acknowledgment: bool | None = col(G, has_default=True)
    expires_at: datetime | None = col(G)
    sent_by: UUID = col(G, references="users")
    sent_at: datetime = col(G)
    status: str = col(G, max_length=50, has_default=True)
    total_recipients: int | None = col(G, minimum=0, has_default=True)
    delivered_count: int | None = col(G, minimum=0, has_default=True)
    failed_count: int | None = col(G, minimum=0, has_default=True)
    acknowledged_count: int | None = col(G, minimum=0, has_default=True)
    follow_up_required: bool | None = col(G, has_default=True)
    follow_up_message: str | None = col(G, sql="text")


EMERGENCY_BROADCASTS = entity(EmergencyBroadcast, table="emergency_broadcasts",
                              school="school_id")
