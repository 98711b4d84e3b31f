"""Clinical protocols.

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.clinical import CLINICAL_PROTOCOLS, ClinicalProtocol

protocols = bind_entity(CLINICAL_PROTOCOLS)

__all__ = [
    "ClinicalProtocol",
    "protocols",
]
