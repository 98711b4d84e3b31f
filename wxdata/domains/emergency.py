"""Emergency broadcasts.

Each entity is exposed as one bound set of the generic data functions (:class:`wxdata.crud.Ops`).
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.emergency import EMERGENCY_BROADCASTS, EmergencyBroadcast

broadcasts = bind_entity(EMERGENCY_BROADCASTS)

__all__ = [
    "EmergencyBroadcast",
    "broadcasts",
]
