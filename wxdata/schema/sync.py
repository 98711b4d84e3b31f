"""Synchronisation: SIS sync sessions and their per-student conflicts, the offline-client sync
queue, its conflicts, and per-entity sync state.

Queued offline changes and conflict versions carry copies of clinical rows, so they are PHI.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from wxdata.schema.base import SoftDeleted, Versioned
from wxdata.schema.spec import (
    CacheTTL,
    DataClass,
    col,
    entity,
    pk,
    row,
)

P, G = DataClass.PHI, DataClass.GENERAL
SYNC_SESSION_STATUSES = ("PENDING", "IN_PROGRESS", "COMPLETED", "PARTIAL", "FAILED")
SYNC_DIRECTIONS = ("PULL", "PUSH", "BIDIRECTIONAL")


@row
class SyncSession(Versioned):
    """One synchronisation run with an external system (counts only, no student data)."""

    id: UUID = pk()
    config_id: UUID = col(G)
    started_at: datetime = col(G)
    completed_at: datetime | None = col(G)
    status: str = col(G, max_length=50, choices=SYNC_SESSION_STATUSES, has_default=True)
    direction: str = col(G, max_length=50, choices=SYNC_DIRECTIONS)
    stats: dict[str, Any] = col(G)
    entities: list[str] = col(G)
    records_processed: int = col(G, minimum=0, has_default=True)
    records_successful: int = col(G, minimum=0, has_default=True)
    records_failed: int = col(G, minimum=0, has_default=True)
    triggered_by: str = col(G, max_length=50)
    completion_message: str | None = col(G, sql="text")


SYNC_SESSIONS = entity(SyncSession, table="sync_sessions", cache_ttl=CacheTTL.SHORT)


@row
class SyncState(Versioned):
    """When an entity was last synchronised, and how (one row per entity)."""

    id: UUID = pk()
    entity_type: str = col(G, max_length=100)
    entity_id: UUID = col(G)
    last_sync_at: datetime = col(G)
    sync_status: str = col(G, max_length=50)
    error_message: str | None = col(G, sql="text")


SYNC_STATES = entity(SyncState, table="sync_states", cache_ttl=CacheTTL.SHORT,
                     unique_together=(("entity_type", "entity_id"),))

SYNC_ACTIONS = ("CREATE", "UPDATE", "DELETE", "READ")
SYNC_ENTITY_TYPES = ("STUDENT", "HEALTH_RECORD", "MEDICATION", "INCIDENT", "VACCINATION",
                     "APPOINTMENT", "SCREENING", "ALLERGY", "CHRONIC_CONDITION")
SYNC_PRIORITIES = ("HIGH", "NORMAL", "LOW")
CONFLICT_RESOLUTIONS = ("CLIENT_WINS", "SERVER_WINS", "NEWEST_WINS", "MERGE", "MANUAL")


@row
class SyncQueueItem(SoftDeleted):
    """A change made offline on a device, waiting to be applied (its payload is PHI)."""

    id: UUID = pk()
    device_id: str = col(P, max_length=255)
    user_id: UUID = col(P, references="users")
    action_type: str = col(P, max_length=50, choices=SYNC_ACTIONS)
    entity_type: str = col(P, max_length=50, choices=SYNC_ENTITY_TYPES)
    entity_id: str = col(P, max_length=255)
    data: dict[str, Any] = col(P)
    timestamp: datetime = col(P)
    synced_at: datetime | None = col(P)
    synced: bool = col(P, has_default=True)
    attempts: int = col(P, minimum=0, has_default=True)
    max_attempts: int = col(P, minimum=0, has_default=True)
    last_error: str | None = col(P, sql="text")
    conflict_detected: bool = col(P, has_default=True)
    conflict_resolution: str | None = col(P, max_length=50, choices=CONFLICT_RESOLUTIONS)
    priority: str = col(P, max_length=50, choices=SYNC_PRIORITIES, has_default=True)
    requires_online: bool = col(P, has_default=True)


SYNC_QUEUE_ITEMS = entity(SyncQueueItem, table="sync_queue_items", cache_ttl=CacheTTL.SHORT)

CONFLICT_STATUSES = ("PENDING", "RESOLVED", "DEFERRED")


@row
class SyncConflict(SoftDeleted):
    """A conflict between a queued client change and the server's row (both versions kept)."""

    id: UUID = pk()
    queue_item_id: UUID = col(P, references="sync_queue_items")
    entity_type: str = col(P, max_length=50, choices=SYNC_ENTITY_TYPES)
    entity_id: str = col(P, max_length=255)
    client_version: dict[str, Any] = col(P)
    server_version: dict[str, Any] = col(P)
    resolution: str | None = col(P, max_length=50, choices=CONFLICT_RESOLUTIONS)
    resolved_at: datetime | None = col(P)
    resolved_by: UUID | None = col(P, references="users")
    merged_data: dict[str, Any] | None = col(P)
    status: str = col(P, max_length=50, choices=CONFLICT_STATUSES, has_default=True)


SYNC_CONFLICTS = entity(SyncConflict, table="sync_conflicts", cache_ttl=CacheTTL.SHORT)

SIS_RESOLUTIONS = ("KEEP_LOCAL", "KEEP_SIS")


@row
class SISSyncConflict(SoftDeleted):
    """A student field whose local and SIS values disagree after a sync."""

    id: UUID = pk()
    session_id: UUID = col(P, references="sync_sessions")
    student_id: UUID = col(P, references="students")
    field: str = col(P, max_length=100)
    local_value: Any = col(P)
    sis_value: Any = col(P)
    resolution: str | None = col(P, max_length=50, choices=SIS_RESOLUTIONS)
    resolved_at: datetime | None = col(P)
    resolved_by: UUID | None = col(P, references="users")


SIS_SYNC_CONFLICTS = entity(SISSyncConflict, table="sis_sync_conflicts", subject="student_id",
                            cache_ttl=CacheTTL.SHORT)
