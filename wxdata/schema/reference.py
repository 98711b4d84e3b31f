"""Reference and configuration data: budget categories, alert rules, message templates, policy
documents, system configuration and external-integration settings (no student data).

Integration credentials (API key, password) are write-only secrets.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from wxdata.schema.base import Authored, SoftDeleted, Versioned
from wxdata.schema.spec import (
    CacheTTL,
    DataClass,
    col,
    entity,
    pk,
    row,
    secret,
)

G = DataClass.GENERAL


@row
class BudgetCategory(Versioned):
    """A budget line for a fiscal year (July to June)."""

    id: UUID = pk()
    name: str = col(G, max_length=255)
    description: str | None = col(G, sql="text")
    fiscal_year: int = col(G, minimum=1900, maximum=9999)
    allocated_amount: Decimal = col(G, sql="numeric(10,2)", minimum=0)
    spent_amount: Decimal = col(G, sql="numeric(10,2)", has_default=True)
    is_active: bool = col(G, has_default=True)


BUDGET_CATEGORIES = entity(BudgetCategory, table="budget_categories", cache_ttl=CacheTTL.HOUR)

ALERT_SEVERITIES = ("INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL", "EMERGENCY")
ALERT_CATEGORIES = ("HEALTH", "SAFETY", "COMPLIANCE", "SYSTEM", "MEDICATION", "APPOINTMENT")


@row
class AlertRule(Authored):
    """A rule that raises and routes alerts when its trigger conditions hold."""

    id: UUID = pk()
    name: str = col(G, max_length=200, unique=True)
    description: str | None = col(G, sql="text")
    category: str = col(G, max_length=50, choices=ALERT_CATEGORIES)
    severity: str = col(G, max_length=50, choices=ALERT_SEVERITIES)
    is_active: bool = col(G, has_default=True)
    priority: int = col(G, has_default=True)
    trigger_conditions: list[Any] = col(G)
    notification_channels: list[Any] = col(G, has_default=True)
    target_roles: list[str] | None = col(G)
    target_users: list[UUID] | None = col(G)
    school_id: UUID | None = col(G, references="schools")
    district_id: UUID | None = col(G, references="districts")
    auto_escalate_after: int | None = col(G, minimum=0)
    cooldown_period: int | None = col(G, minimum=0)
    requires_acknowledgment: bool = col(G, has_default=True)
    expires_after: int | None = col(G, minimum=0)
    metadata: dict[str, Any] | None = col(G)
    last_triggered: datetime | None = col(G)
    trigger_count: int | None = col(G, minimum=0, has_default=True)


ALERT_RULES = entity(AlertRule, table="alert_rules", school="school_id", cache_ttl=CacheTTL.HOUR)

MESSAGE_TYPES = ("EMAIL", "SMS", "PUSH_NOTIFICATION", "VOICE")
MESSAGE_CATEGORIES = ("APPOINTMENT", "MEDICATION", "EMERGENCY", "NOTIFICATION", "REMINDER")


@row
class MessageTemplate(SoftDeleted):
    """A reusable message with ``{{variables}}``."""

    id: UUID = pk()
    name: str = col(G, max_length=100)
    subject: str | None = col(G, max_length=255)
    content: str = col(G, sql="text")
    type: str = col(G, max_length=50, choices=MESSAGE_TYPES)
    category: str = col(G, max_length=50, choices=MESSAGE_CATEGORIES)
    variables: list[str] = col(G, has_default=True)
    is_active: bool = col(G, has_default=True)
    created_by_id: UUID = col(G, references="users")


MESSAGE_TEMPLATES = entity(MessageTemplate, table="message_templates", cache_ttl=CacheTTL.HOUR)

POLICY_CATEGORIES = ("HIPAA_PRIVACY", "HIPAA_SECURITY", "FERPA", "DATA_RETENTION",
                     "INCIDENT_RESPONSE", "ACCESS_CONTROL", "TRAINING")
POLICY_STATUSES = ("DRAFT", "ACTIVE", "ARCHIVED", "SUPERSEDED")


@row
class PolicyDocument(Versioned):
    """A compliance policy (HIPAA, FERPA, retention...) staff must acknowledge.

    The original's ``version`` string is ``policy_version`` (``version`` is the concurrency counter).
    """

    id: UUID = pk()
    title: str = col(G, max_length=200)
    category: str = col(G, max_length=50, choices=POLICY_CATEGORIES)
    content: str = col(G, sql="text")
    policy_version: str = col(G, max_length=20, has_default=True)
    effective_date: datetime = col(G)
    review_date: datetime | None = col(G)
    status: str = col(G, max_length=50, choices=POLICY_STATUSES, has_default=True)
    approved_by: UUID | None = col(G, references="users")
    approved_at: datetime | None = col(G)


POLICY_DOCUMENTS = entity(PolicyDocument, table="policy_documents", cache_ttl=CacheTTL.HOUR)

CONFIG_CATEGORIES = ("GENERAL", "SECURITY", "NOTIFICATION", "INTEGRATION", "BACKUP",
                     "PERFORMANCE", "HEALTHCARE", "MEDICATION", "APPOINTMENTS", "UI", "QUERY",
                     "FILE_UPLOAD", "RATE_LIMITING", "SESSION", "EMAIL")
CONFIG_VALUE_TYPES = ("STRING", "NUMBER", "BOOLEAN", "JSON", "ARRAY", "DATE", "TIME", "DATETIME",
                      "EMAIL", "URL", "COLOR", "ENUM")
CONFIG_SCOPES = ("SYSTEM", "DISTRICT", "SCHOOL", "USER")


@row
class SystemConfig(Authored):
    """A configuration setting, system-wide or scoped to a district, school or user."""

    id: UUID = pk()
    key: str = col(G, max_length=100, unique=True)
    value: str = col(G, sql="text")
    category: str = col(G, max_length=50, choices=CONFIG_CATEGORIES, has_default=True)
    value_type: str = col(G, max_length=50, choices=CONFIG_VALUE_TYPES, has_default=True)
    sub_category: str | None = col(G, max_length=100)
    description: str | None = col(G, sql="text")
    default_value: str | None = col(G, sql="text")
    valid_values: list[str] | None = col(G)
    min_value: Decimal | None = col(G, sql="numeric(10,2)")
    max_value: Decimal | None = col(G, sql="numeric(10,2)")
    is_public: bool = col(G, has_default=True)
    is_editable: bool = col(G, has_default=True)
    requires_restart: bool = col(G, has_default=True)
    scope: str = col(G, max_length=50, choices=CONFIG_SCOPES, has_default=True)
    scope_id: UUID | None = col(G)
    tags: list[str] | None = col(G)
    sort_order: int = col(G, has_default=True)


SYSTEM_CONFIGS = entity(SystemConfig, table="system_configurations", cache_ttl=CacheTTL.HOUR)

INTEGRATION_TYPES = ("SIS", "EHR", "PHARMACY", "LABORATORY", "INSURANCE", "PARENT_PORTAL",
                     "HEALTH_APP", "GOVERNMENT_REPORTING")
INTEGRATION_STATUSES = ("INACTIVE", "ACTIVE", "TESTING", "SYNCING", "ERROR")


@row
class IntegrationConfig(Authored):
    """Connection settings of an external system (SIS, EHR, pharmacy...)."""

    id: UUID = pk()
    name: str = col(G, max_length=100)
    type: str = col(G, max_length=50, choices=INTEGRATION_TYPES)
    status: str = col(G, max_length=50, choices=INTEGRATION_STATUSES, has_default=True)
    endpoint: str | None = col(G, sql="text")
    username: str | None = col(G, max_length=100)
    settings: dict[str, Any] | None = col(G)
    authentication: dict[str, Any] | None = col(G)
    sync_frequency: int | None = col(G, minimum=0)
    is_active: bool = col(G, has_default=True)
    last_sync_at: datetime | None = col(G)
    last_sync_status: str | None = col(G, max_length=20)


INTEGRATION_CONFIGS = entity(
    IntegrationConfig, table="integration_configs", cache_ttl=CacheTTL.HOUR,
    secrets=(secret("api_key", sql="text"), secret("password", sql="text")),
)
