"""Document signatures and the per-document audit trail.

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.documents import (
    DOCUMENT_AUDIT_TRAILS,
    DOCUMENT_SIGNATURES,
    DocumentAuditTrail,
    DocumentSignature,
)

signatures = bind_entity(DOCUMENT_SIGNATURES)
audit_trails = bind_entity(DOCUMENT_AUDIT_TRAILS)

__all__ = [
    "DocumentAuditTrail",
    "DocumentSignature",
    "audit_trails",
    "signatures",
]
