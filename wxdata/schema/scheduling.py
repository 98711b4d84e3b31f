"""Scheduling domain: nurse appointments, their reminders, the waitlist and clinical follow-ups.

An appointment's type, reason and notes tell what is wrong with a student: every row is PHI.
"""

from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

from wxdata.schema.base import AuthoredSoftDeleted, SoftDeleted
from wxdata.schema.rules import not_before, required_with
from wxdata.schema.spec import (
    CacheTTL,
    DataClass,
    col,
    entity,
    pk,
    row,
)

P = DataClass.PHI


class AppointmentType(enum.StrEnum):
    """Kinds of appointment."""

    ROUTINE_CHECKUP = "ROUTINE_CHECKUP"
    MEDICATION_ADMINISTRATION = "MEDICATION_ADMINISTRATION"
    INJURY_ASSESSMENT = "INJURY_ASSESSMENT"
    ILLNESS_EVALUATION = "ILLNESS_EVALUATION"
    FOLLOW_UP = "FOLLOW_UP"
    SCREENING = "SCREENING"
    EMERGENCY = "EMERGENCY"


class AppointmentStatus(enum.StrEnum):
    """Lifecycle of an appointment."""

    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    NO_SHOW = "NO_SHOW"


RECURRENCE = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")


@row
class Appointment(AuthoredSoftDeleted):
    """A student's appointment with a nurse."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    nurse_id: UUID | None = col(P, references="users")
    type: str = col(P, max_length=50, choices=AppointmentType)
    scheduled_at: datetime = col(P)
    duration: int = col(P, minimum=15, maximum=120, has_default=True)
    status: str = col(P, max_length=50, choices=AppointmentStatus, has_default=True)
    reason: str = col(P, max_length=500, pattern=r"(?s).{3,500}", clinical_text=True)
    notes: str | None = col(P, sql="text", clinical_text=True, max_length=5000)
    recurring_group_id: UUID | None = col(P)
    recurring_frequency: str | None = col(P, max_length=50, choices=RECURRENCE)
    recurring_end_date: datetime | None = col(P)


APPOINTMENTS = entity(
    Appointment, table="appointments", subject="student_id", cache_ttl=CacheTTL.SHORT,
    validators=(required_with("recurring_group_id", "recurring_frequency"),
                not_before("recurring_end_date", "scheduled_at")),
)

REMINDER_CHANNELS = ("EMAIL", "SMS", "PUSH_NOTIFICATION")
REMINDER_STATUSES = ("SCHEDULED", "SENT", "FAILED", "CANCELLED")


@row
class AppointmentReminder(SoftDeleted):
    """A reminder message scheduled for an appointment (its text may name the visit reason)."""

    id: UUID = pk()
    appointment_id: UUID = col(P, references="appointments")
    type: str = col(P, max_length=50, choices=REMINDER_CHANNELS)
    scheduled_for: datetime = col(P)
    status: str = col(P, max_length=50, choices=REMINDER_STATUSES, has_default=True)
    sent_at: datetime | None = col(P)
    failure_reason: str | None = col(P, sql="text")
    message: str = col(P, sql="text", clinical_text=True)


APPOINTMENT_REMINDERS = entity(AppointmentReminder, table="appointment_reminders",
                               cache_ttl=CacheTTL.SHORT)

WAITLIST_PRIORITIES = ("LOW", "NORMAL", "HIGH", "URGENT")
WAITLIST_STATUSES = ("WAITING", "NOTIFIED", "SCHEDULED", "EXPIRED", "CANCELLED")


@row
class AppointmentWaitlist(SoftDeleted):
    """A student waiting for an appointment slot."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    nurse_id: UUID | None = col(P, references="users")
    type: str = col(P, max_length=50, choices=AppointmentType)
    preferred_date: datetime | None = col(P)
    duration: int = col(P, minimum=1, has_default=True)
    priority: str = col(P, max_length=50, choices=WAITLIST_PRIORITIES, has_default=True)
    reason: str = col(P, max_length=500, clinical_text=True)
    notes: str | None = col(P, sql="text", clinical_text=True)
    status: str = col(P, max_length=50, choices=WAITLIST_STATUSES, has_default=True)
    notified_at: datetime | None = col(P)
    expires_at: datetime | None = col(P)


APPOINTMENT_WAITLIST = entity(AppointmentWaitlist, table="appointment_waitlist",
                              subject="student_id", cache_ttl=CacheTTL.SHORT)


@row
class FollowUpAppointment(AuthoredSoftDeleted):
    """A follow-up scheduled after a clinic visit (status values: SCHEDULED, CONFIRMED, ...)."""

    id: UUID = pk()
    student_id: UUID = col(P, references="students")
    original_visit_id: UUID | None = col(P, references="clinic_visits")
    scheduled_by: UUID = col(P, references="users")
    scheduled_date: datetime = col(P)
    duration_minutes: int = col(P, minimum=1, has_default=True)
    reason: str = col(P, sql="text", clinical_text=True)
    type: str = col(P, max_length=100)
    status: str = col(P, max_length=50, has_default=True)
    assigned_to: UUID | None = col(P, references="users")
    reminder_sent: bool = col(P, has_default=True)
    reminder_sent_at: datetime | None = col(P)
    confirmed_at: datetime | None = col(P)
    completed_visit_id: UUID | None = col(P, references="clinic_visits")
    completed_at: datetime | None = col(P)
    cancelled_at: datetime | None = col(P)
    cancellation_reason: str | None = col(P, sql="text", clinical_text=True)
    rescheduled_from_id: UUID | None = col(P, references="follow_up_appointments")
    rescheduled_to_id: UUID | None = col(P, references="follow_up_appointments")
    notes: str | None = col(P, sql="text", clinical_text=True)
    priority: str = col(P, max_length=50, has_default=True)


FOLLOW_UP_APPOINTMENTS = entity(FollowUpAppointment, table="follow_up_appointments",
                                subject="student_id", cache_ttl=CacheTTL.SHORT)
