"""Alerts, alert preferences, delivery logs, push notifications and device tokens.

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.alerts import (
    ALERT_PREFERENCES,
    ALERTS,
    DELIVERY_LOGS,
    DEVICE_TOKENS,
    PUSH_NOTIFICATIONS,
    Alert,
    AlertPreferences,
    DeliveryLog,
    DeviceToken,
    PushNotification,
)

alerts = bind_entity(ALERTS)
preferences = bind_entity(ALERT_PREFERENCES)
delivery_logs = bind_entity(DELIVERY_LOGS)
push_notifications = bind_entity(PUSH_NOTIFICATIONS)
device_tokens = bind_entity(DEVICE_TOKENS)

__all__ = [
    "Alert",
    "AlertPreferences",
    "DeliveryLog",
    "DeviceToken",
    "PushNotification",
    "alerts",
    "delivery_logs",
    "device_tokens",
    "preferences",
    "push_notifications",
]
