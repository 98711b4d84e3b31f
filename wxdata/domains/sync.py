"""Sync sessions, sync state, the offline queue and sync conflicts.

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.sync import (
    SIS_SYNC_CONFLICTS,
    SYNC_CONFLICTS,
    SYNC_QUEUE_ITEMS,
    SYNC_SESSIONS,
    SYNC_STATES,
    SISSyncConflict,
    SyncConflict,
    SyncQueueItem,
    SyncSession,
    SyncState,
)

sessions = bind_entity(SYNC_SESSIONS)
states = bind_entity(SYNC_STATES)
queue_items = bind_entity(SYNC_QUEUE_ITEMS)
conflicts = bind_entity(SYNC_CONFLICTS)
sis_conflicts = bind_entity(SIS_SYNC_CONFLICTS)

__all__ = [
    "SISSyncConflict",
    "SyncConflict",
    "SyncQueueItem",
    "SyncSession",
    "SyncState",
    "conflicts",
    "queue_items",
    "sessions",
    "sis_conflicts",
    "states",
]
