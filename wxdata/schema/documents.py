"""Documents: stored files (medical records, consent forms, policies...), their signatures and
their per-document audit trail. Student files and their signatures are PHI and soft-delete.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from wxdata.errors import FieldError
from wxdata.schema.base import AuthoredSoftDeleted
from wxdata.schema.spec import (
    DataClass,
    col,
    created_at,
    deleted_at,
    entity,
    pk,
    reads,
    row,
)

P = DataClass.PHI


class DocumentCategory(enum.StrEnum):
    """What a document is."""

    MEDICAL_RECORD = "MEDICAL_RECORD"
    INCIDENT_REPORT = "INCIDENT_REPORT"
    CONSENT_FORM = "CONSENT_FORM"
    POLICY = "POLICY"
    TRAINING = "TRAINING"
    ADMINISTRATIVE = "ADMINISTRATIVE"
    STUDENT_FILE = "STUDENT_FILE"
    INSURANCE = "INSURANCE"
    OTHER = "OTHER"


class DocumentStatus(enum.StrEnum):
    """Review lifecycle of a document."""

    DRAFT = "DRAFT"
    PENDING_REVIEW = "PENDING_REVIEW"
    APPROVED = "APPROVED"
    ARCHIVED = "ARCHIVED"
    EXPIRED = "EXPIRED"


class DocumentAccessLevel(enum.StrEnum):
    """Who may open a document."""

    PUBLIC = "PUBLIC"
    STAFF_ONLY = "STAFF_ONLY"
    ADMIN_ONLY = "ADMIN_ONLY"
    RESTRICTED = "RESTRICTED"


URL = r"https?://\S{1,2000}"
MAX_TAGS = 10


@reads("contains_phi", "access_level", "file_url", "tags")
def _phi_documents(values: Mapping[str, Any]) -> Iterable[FieldError]:
    """PHI documents are never PUBLIC and are only served over HTTPS; at most 10 tags."""
    if values.get("contains_phi") is True:
        if values.get("access_level") == DocumentAccessLevel.PUBLIC:
            yield FieldError("access_level", "must not be PUBLIC for a document containing PHI")
        url = values.get("file_url")
        if isinstance(url, str) and not url.startswith("https://"):
            yield FieldError("file_url", "must use https for a document containing PHI")
    tags = values.get("tags")
    if isinstance(tags, list) and len(tags) > MAX_TAGS:
        yield FieldError("tags", f"must have at most {MAX_TAGS} items")


@row
class Document(AuthoredSoftDeleted):
    """A stored document, optionally about one student, with versioning and retention.

    The original's integer ``version`` (document revision) is ``document_version`` here;
    ``version`` is the optimistic-concurrency counter.
    """

    id: UUID = pk()
    title: str = col(P, max_length=255, pattern=r"(?s).{3,255}")
    description: str | None = col(P, sql="text", max_length=5000, clinical_text=True)
    category: str = col(P, max_length=50, choices=DocumentCategory)
    file_type: str = col(P, max_length=100)
    file_name: str = col(P, max_length=255)
    file_size: int = col(P, sql="bigint", minimum=1024, maximum=52_428_800)
    file_url: str = col(P, sql="text", pattern=URL)
    uploaded_by: str = col(P, max_length=255)
    student_id: UUID | None = col(P, references="students")
    tags: list[str] | None = col(P, has_default=True)
    is_template: bool = col(P, has_default=True)
    template_data: dict[str, Any] | None = col(P)
    status: str = col(P, max_length=50, choices=DocumentStatus, has_default=True)
    document_version: int = col(P, minimum=1, maximum=100, has_default=True)
    access_level: str = col(P, max_length=50, choices=DocumentAccessLevel, has_default=True)
    parent_id: UUID | None = col(P, references="documents")
    retention_date: datetime | None = col(P)
    contains_phi: bool = col(P, has_default=True)
    requires_signature: bool = col(P, has_default=True)
    last_accessed_at: datetime | None = col(P)
    access_count: int = col(P, minimum=0, has_default=True)
    is_active: bool = col(P, has_default=True)


DOCUMENTS = entity(Document, table="documents", subject="student_id",
                   validators=(_phi_documents,))


@row
class DocumentSignature:
    """An electronic signature applied to a document (immutable once made)."""

    id: UUID = pk()
    document_id: UUID = col(P, references="documents")
    signed_by: str = col(P, max_length=255)
    signed_by_role: str = col(P, max_length=100, pattern=r"(?s).{2,100}")
    signature_data: str | None = col(P, sql="text", filterable=False, sortable=False)
    ip_address: str | None = col(P, max_length=45)
    signed_at: datetime = col(P, has_default=True)
    created_at: datetime = created_at()
    deleted_at: datetime | None = deleted_at()


DOCUMENT_SIGNATURES = entity(DocumentSignature, table="document_signatures")


@row
class DocumentAuditTrail:
    """An operation on a document (view, download, sign, share...), append-only."""

    id: UUID = pk()
    document_id: UUID = col(P, references="documents")
    action: str = col(P, max_length=50)
    performed_by: str = col(P, max_length=255)
    changes: dict[str, Any] | None = col(P)
    ip_address: str | None = col(P, max_length=45)
    created_at: datetime = created_at()
    deleted_at: datetime | None = deleted_at()


DOCUMENT_AUDIT_TRAILS = entity(DocumentAuditTrail, table="document_audit_trails")
