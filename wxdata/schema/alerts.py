"""Alerts and notifications: alerts raised by rules, per-user alert preferences, delivery logs,
push notifications and the device tokens they are sent to.

An alert or push notification may name a student and a health event, so their content is PHI;
device tokens (push credentials) are write-only secrets.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from wxdata.schema.base import AuthoredSoftDeleted, Versioned
from wxdata.schema.reference import ALERT_CATEGORIES, ALERT_SEVERITIES
from wxdata.schema.spec import (
    CacheTTL,
    DataClass,
    col,
    entity,
    pk,
    row,
    secret,
)

P, G = DataClass.PHI, DataClass.GENERAL
ALERT_STATUSES = ("ACTIVE", "ACKNOWLEDGED", "RESOLVED", "EXPIRED", "DISMISSED")


@row
class Alert(AuthoredSoftDeleted):
    """A raised alert, optionally about a student, with its acknowledgement lifecycle."""

    id: UUID = pk()
    definition_id: UUID | None = col(P, references="alert_rules")
    severity: str = col(P, max_length=50, choices=ALERT_SEVERITIES)
    category: str = col(P, max_length=50, choices=ALERT_CATEGORIES)
    title: str = col(P, max_length=500)
    message: str = col(P, sql="text", clinical_text=True)
    student_id: UUID | None = col(P, references="students")
    user_id: UUID | None = col(P, references="users")
    school_id: UUID | None = col(P, references="schools")
    status: str = col(P, max_length=50, choices=ALERT_STATUSES, has_default=True)
    metadata: dict[str, Any] | None = col(P)
    acknowledged_at: datetime | None = col(P)
    acknowledged_by: UUID | None = col(P, references="users")
    resolved_at: datetime | None = col(P)
    resolved_by: UUID | None = col(P, references="users")
    expires_at: datetime | None = col(P)
    auto_escalate_after: int | None = col(P, minimum=0)
    escalation_level: int | None = col(P, minimum=0, has_default=True)
    requires_acknowledgment: bool = col(P, has_default=True)


ALERTS = entity(Alert, table="alerts", subject="student_id", school="school_id",
                cache_ttl=CacheTTL.SHORT)

PREFERENCE_CHANNELS = ("WEBSOCKET", "EMAIL", "SMS", "PUSH_NOTIFICATION")
HHMM = r"([0-1]?[0-9]|2[0-3]):[0-5][0-9]"


@row
class AlertPreferences(Versioned):
    """A user's alert delivery channels, filters and quiet hours (optionally per school)."""

    id: UUID = pk()
    user_id: UUID = col(G, references="users")
    school_id: UUID | None = col(G, references="schools")
    channels: list[str] = col(G, choices=PREFERENCE_CHANNELS, has_default=True)
    severity_filter: list[str] = col(G, choices=ALERT_SEVERITIES, has_default=True)
    category_filter: list[str] = col(G, choices=ALERT_CATEGORIES, has_default=True)
    quiet_hours_start: str | None = col(G, max_length=5, pattern=HHMM)
    quiet_hours_end: str | None = col(G, max_length=5, pattern=HHMM)
    is_active: bool = col(G, has_default=True)


ALERT_PREFERENCES = entity(AlertPreferences, table="alert_preferences", school="school_id",
                           unique_together=(("user_id", "school_id"),))

DELIVERY_CHANNELS = ("email", "sms", "push", "voice")


@row
class DeliveryLog(Versioned):
    """One channel's delivery attempts of an alert (retry bookkeeping)."""

    id: UUID = pk()
    alert_id: UUID = col(G, references="alerts")
    channel: str = col(G, max_length=50, choices=DELIVERY_CHANNELS)
    recipient_id: UUID | None = col(G, references="users")
    success: bool = col(G, has_default=True)
    attempt_count: int = col(G, minimum=0, has_default=True)
    last_attempt: datetime = col(G)
    delivered_at: datetime | None = col(G)
    error_message: str | None = col(G, sql="text")


DELIVERY_LOGS = entity(DeliveryLog, table="delivery_logs", cache_ttl=CacheTTL.SHORT)

NOTIFICATION_CATEGORIES = ("MEDICATION", "APPOINTMENT", "INCIDENT", "SCREENING", "IMMUNIZATION",
                           "MESSAGE", "EMERGENCY", "REMINDER", "ALERT", "SYSTEM")
NOTIFICATION_PRIORITIES = ("CRITICAL", "HIGH", "NORMAL", "LOW")
NOTIFICATION_STATUSES = ("PENDING", "SCHEDULED", "SENDING", "DELIVERED", "FAILED", "EXPIRED")


@row
class PushNotification(AuthoredSoftDeleted):
    """A push notification to users' devices, with delivery statistics and retries.

    Target device tokens are a write-only secret (``device_tokens``, a JSON list as text).
    """

    id: UUID = pk()
    user_ids: list[UUID] = col(P)
    title: str = col(P, max_length=255)
    body: str = col(P, sql="text", clinical_text=True)
    category: str = col(P, max_length=50, choices=NOTIFICATION_CATEGORIES)
    priority: str = col(P, max_length=50, choices=NOTIFICATION_PRIORITIES, has_default=True)
    data: dict[str, Any] | None = col(P)
    actions: list[Any] | None = col(P)
    image_url: str | None = col(P, max_length=255)
    icon_url: str | None = col(P, max_length=255)
    sound: str | None = col(P, max_length=255)
    badge: int | None = col(P, minimum=0)
    ttl: int | None = col(P, minimum=0)
    collapse_key: str | None = col(P, max_length=255)
    require_interaction: bool = col(P, has_default=True)
    silent: bool = col(P, has_default=True)
    scheduled_for: datetime | None = col(P)
    expires_at: datetime | None = col(P)
    status: str = col(P, max_length=50, choices=NOTIFICATION_STATUSES, has_default=True)
    sent_at: datetime | None = col(P)
    delivered_at: datetime | None = col(P)
    failed_at: datetime | None = col(P)
    delivery_results: list[Any] = col(P, has_default=True)
    total_recipients: int = col(P, minimum=0, has_default=True)
    successful_deliveries: int = col(P, minimum=0, has_default=True)
    failed_deliveries: int = col(P, minimum=0, has_default=True)
    clicked_count: int = col(P, minimum=0, has_default=True)
    dismissed_count: int = col(P, minimum=0, has_default=True)
    retry_count: int = col(P, minimum=0, has_default=True)
    max_retries: int = col(P, minimum=0, has_default=True)
    next_retry_at: datetime | None = col(P)


PUSH_NOTIFICATIONS = entity(PushNotification, table="push_notifications",
                            cache_ttl=CacheTTL.SHORT,
                            secrets=(secret("device_tokens", sql="text"),))

PLATFORMS = ("FCM", "APNS", "WEB_PUSH", "SMS", "EMAIL")


@row
class DeviceToken(Versioned):
    """A user's device registered for push; the token itself is a write-only secret."""

    id: UUID = pk()
    user_id: UUID = col(G, references="users")
    device_id: str = col(G, max_length=255)
    platform: str = col(G, max_length=50, choices=PLATFORMS)
    device_name: str | None = col(G, max_length=255)
    device_model: str | None = col(G, max_length=255)
    os_version: str | None = col(G, max_length=255)
    app_version: str | None = col(G, max_length=255)
    is_active: bool = col(G, has_default=True)
    is_valid: bool = col(G, has_default=True)
    last_validated: datetime | None = col(G)
    invalid_reason: str | None = col(G, max_length=255)
    allow_notifications: bool = col(G, has_default=True)
    allow_sound: bool = col(G, has_default=True)
    allow_badge: bool = col(G, has_default=True)
    last_used_at: datetime | None = col(G)


DEVICE_TOKENS = entity(DeviceToken, table="device_tokens",
                       secrets=(secret("token", sql="text", nullable=False),),
                       unique_together=(("user_id", "device_id"),))
