"""Clinical protocols.

Each entity is exposed as one bound set of the generic data functions (:class:`wxdata.crud.Ops`).
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.clinical import CLINICAL_PROTOCOLS, ClinicalProtocol

protocols = bind_entity(CLINICAL_PROTOCOLS)

__all__ = [
    "ClinicalProtocol",
    "protocols",
]
