"""Emergency broadcasts.

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.emergency import EMERGENCY_BROADCASTS, EmergencyBroadcast

broadcasts = bind_entity(EMERGENCY_BROADCASTS)

__all__ = [
    "EmergencyBroadcast",
    "broadcasts",
]
