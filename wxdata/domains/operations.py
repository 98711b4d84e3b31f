"""Configuration history, backups, maintenance, security, webhooks, integrations, training, licenses.

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.operations import (
    BACKUP_LOGS,
    CONFIGURATION_HISTORY,
    INTEGRATION_LOGS,
    LICENSES,
    MAINTENANCE_LOGS,
    SECURITY_INCIDENTS,
    THREAT_DETECTIONS,
    TRAINING_MODULES,
    WEBHOOKS,
    BackupLog,
    ConfigurationHistory,
    IntegrationLog,
    License,
    MaintenanceLog,
    SecurityIncident,
    ThreatDetection,
    TrainingModule,
    Webhook,
)

configuration_history = bind_entity(CONFIGURATION_HISTORY)
backup_logs = bind_entity(BACKUP_LOGS)
maintenance_logs = bind_entity(MAINTENANCE_LOGS)
security_incidents = bind_entity(SECURITY_INCIDENTS)
threat_detections = bind_entity(THREAT_DETECTIONS)
webhooks = bind_entity(WEBHOOKS)
integration_logs = bind_entity(INTEGRATION_LOGS)
training_modules = bind_entity(TRAINING_MODULES)
licenses = bind_entity(LICENSES)

__all__ = [
    "BackupLog",
    "ConfigurationHistory",
    "IntegrationLog",
    "License",
    "MaintenanceLog",
    "SecurityIncident",
    "ThreatDetection",
    "TrainingModule",
    "Webhook",
    "backup_logs",
    "configuration_history",
    "integration_logs",
    "licenses",
    "maintenance_logs",
    "security_incidents",
    "threat_detections",
    "training_modules",
    "webhooks",
]
