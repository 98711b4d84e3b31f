"""Operations and security: configuration history, backups, equipment maintenance, security
incidents and threat detections, webhooks, integration logs, training modules and licenses.

Webhook signing secrets and headers, and license keys, are write-only secrets.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from wxdata.schema.base import Authored, Versioned
from wxdata.schema.rules import not_before
from wxdata.schema.spec import (
    CacheTTL,
    DataClass,
    col,
    created_at,
    entity,
    pk,
    row,
    secret,
)

G = DataClass.GENERAL


@row
class ConfigurationHistory:
    """A change to a system configuration setting (append-only)."""

    id: UUID = pk()
    config_key: str = col(G, max_length=100)
    old_value: str | None = col(G, sql="text")
    new_value: str = col(G, sql="text")
    changed_by: UUID = col(G, references="users")
    configuration_id: UUID = col(G, references="system_configurations")
    created_at: datetime = created_at()


CONFIGURATION_HISTORY = entity(ConfigurationHistory, table="configuration_history")

BACKUP_TYPES = ("AUTOMATIC", "MANUAL", "SCHEDULED")
BACKUP_STATUSES = ("IN_PROGRESS", "COMPLETED", "FAILED")


@row
class BackupLog(Versioned):
    """A database backup run and its outcome."""

    id: UUID = pk()
    type: str = col(G, max_length=50, choices=BACKUP_TYPES)
    status: str = col(G, max_length=50, choices=BACKUP_STATUSES)
    file_name: str | None = col(G, max_length=255)
    file_size: int | None = col(G, sql="bigint", minimum=0)
    location: str | None = col(G, sql="text")
    triggered_by: UUID | None = col(G, references="users")
    error: str | None = col(G, sql="text")
    started_at: datetime = col(G)
    completed_at: datetime | None = col(G)


BACKUP_LOGS = entity(BackupLog, table="backup_logs",
                     validators=(not_before("completed_at", "started_at"),))

MAINTENANCE_TYPES = ("CALIBRATION", "REPAIR", "INSPECTION", "CLEANING", "REPLACEMENT", "UPGRADE")


@row
class MaintenanceLog(Versioned):
    """Maintenance performed on a piece of clinic equipment (an inventory item)."""

    id: UUID = pk()
    inventory_item_id: UUID = col(G, references="inventory_items")
    type: str = col(G, max_length=50, choices=MAINTENANCE_TYPES)
    description: str = col(G, sql="text")
    performed_by_id: UUID = col(G, references="users")
    cost: Decimal | None = col(G, sql="numeric(10,2)", minimum=0)
    next_maintenance_date: datetime | None = col(G)
    vendor: str | None = col(G, max_length=255)
    notes: str | None = col(G, sql="text")


MAINTENANCE_LOGS = entity(MaintenanceLog, table="maintenance_logs")

SECURITY_INCIDENT_TYPES = ("unauthorized_access", "brute_force_attack", "suspicious_activity",
                           "data_breach_attempt", "privilege_escalation", "sql_injection_attempt",
                           "xss_attempt", "account_takeover", "malware_detected", "ddos_attempt",
                           "policy_violation", "other")
SECURITY_SEVERITIES = ("low", "medium", "high", "critical")
SECURITY_STATUSES = ("detected", "investigating", "contained", "resolved", "false_positive")


@row
class SecurityIncident(Versioned):
    """A detected security incident and its investigation."""

    id: UUID = pk()
    type: str = col(G, max_length=50, choices=SECURITY_INCIDENT_TYPES)
    severity: str = col(G, max_length=20, choices=SECURITY_SEVERITIES)
    status: str = col(G, max_length=20, choices=SECURITY_STATUSES, has_default=True)
    title: str = col(G, max_length=255)
    description: str = col(G, sql="text")
    user_id: UUID | None = col(G, references="users")
    ip_address: str | None = col(G, max_length=64)
    user_agent: str | None = col(G, sql="text")
    resource_accessed: str | None = col(G, max_length=255)
    detected_at: datetime = col(G)
    detection_method: str = col(G, max_length=255)
    indicators: list[Any] = col(G)
    impact: str | None = col(G, sql="text")
    assigned_to: UUID | None = col(G, references="users")
    resolved_at: datetime | None = col(G)
    resolution: str | None = col(G, sql="text")
    preventive_measures: list[Any] | None = col(G)
    metadata: dict[str, Any] | None = col(G)


SECURITY_INCIDENTS = entity(SecurityIncident, table="security_incidents",
                            cache_ttl=CacheTTL.SHORT)


@row
class ThreatDetection(Versioned):
    """An automated threat detection event."""

    id: UUID = pk()
    threat_type: str = col(G, max_length=100)
    severity: str = col(G, max_length=50)
    source: str = col(G, max_length=255)
    details: dict[str, Any] = col(G)
    is_resolved: bool = col(G, has_default=True)
    resolved_at: datetime | None = col(G)
    resolved_by: UUID | None = col(G, references="users")


THREAT_DETECTIONS = entity(ThreatDetection, table="threat_detections", cache_ttl=CacheTTL.SHORT)


@row
class Webhook(Authored):
    """An outgoing webhook subscription; its signing secret and headers are write-only."""

    id: UUID = pk()
    url: str = col(G, max_length=500, pattern=r"https?://\S{1,490}")
    events: list[str] = col(G)
    is_active: bool = col(G, has_default=True)


WEBHOOKS = entity(
    Webhook, table="webhooks", cache_ttl=CacheTTL.HOUR,
    secrets=(secret("secret", sql="varchar(255)", max_length=255), secret("headers", sql="text")),
)


@row
class IntegrationLog(Versioned):
    """One operation against an external integration and its counts."""

    id: UUID = pk()
    integration_id: UUID | None = col(G, references="integration_configs")
    integration_type: str = col(G, max_length=50)
    action: str = col(G, max_length=50)
    status: str = col(G, max_length=20)
    records_processed: int | None = col(G, minimum=0)
    records_succeeded: int | None = col(G, minimum=0)
    records_failed: int | None = col(G, minimum=0)
    started_at: datetime | None = col(G)
    completed_at: datetime | None = col(G)
    duration: int | None = col(G, minimum=0)
    error_message: str | None = col(G, sql="text")
    details: dict[str, Any] | None = col(G)


INTEGRATION_LOGS = entity(IntegrationLog, table="integration_logs", cache_ttl=CacheTTL.SHORT)

TRAINING_CATEGORIES = ("HIPAA_COMPLIANCE", "MEDICATION_MANAGEMENT", "EMERGENCY_PROCEDURES",
                       "SYSTEM_TRAINING", "SAFETY_PROTOCOLS", "DATA_SECURITY")


@row
class TrainingModule(Versioned):
    """A staff training module (HIPAA, medication management, emergencies...)."""

    id: UUID = pk()
    title: str = col(G, max_length=255)
    description: str | None = col(G, sql="text")
    content: str = col(G, sql="text")
    duration: int | None = col(G, minimum=0)
    category: str = col(G, max_length=50, choices=TRAINING_CATEGORIES)
    is_required: bool = col(G, has_default=True)
    display_order: int = col(G, has_default=True)
    attachments: list[str] | None = col(G)
    completion_count: int = col(G, minimum=0, has_default=True)


TRAINING_MODULES = entity(TrainingModule, table="training_modules", cache_ttl=CacheTTL.HOUR)

LICENSE_TYPES = ("TRIAL", "BASIC", "PROFESSIONAL", "ENTERPRISE")
LICENSE_STATUSES = ("ACTIVE", "EXPIRED", "SUSPENDED", "CANCELLED")


@row
class License(Versioned):
    """A software licence issued to a district; the licence key is a write-only secret."""

    id: UUID = pk()
    type: str = col(G, max_length=50, choices=LICENSE_TYPES, has_default=True)
    status: str = col(G, max_length=50, choices=LICENSE_STATUSES, has_default=True)
    max_users: int | None = col(G, minimum=0)
    max_schools: int | None = col(G, minimum=0)
    features: list[str] = col(G)
    issued_to: str | None = col(G, max_length=255)
    district_id: UUID | None = col(G, references="districts")
    notes: str | None = col(G, sql="text")
    issued_at: datetime = col(G)
    activated_at: datetime | None = col(G)
    expires_at: datetime | None = col(G)
    deactivated_at: datetime | None = col(G)


LICENSES = entity(
    License, table="licenses", cache_ttl=CacheTTL.HOUR,
    secrets=(secret("license_key", sql="varchar(100)", nullable=False, max_length=100,
                   unique=True),),
)
