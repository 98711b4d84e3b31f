"""Disclosures to outside parties and requests for records: the elements a regulator asks for.

HIPAA 45 CFR 164.528 requires, for each disclosure, its date, the recipient's name (and address
if known), a description of what was disclosed and its purpose. FERPA 34 CFR 99.32 requires the
parties who requested or received information from a student's education records and their
legitimate interest, kept as long as the student's education records exist.

Reads inside the organisation are recorded by wxdata on every access. A release to a party outside
it — a parent, a physician, a public-health agency, a court — happens outside wxdata (a letter, a
fax, a portal), so the service records it here, with the recipient and the legal basis. A request
for records is recorded the same way, whether or not it was granted.

The elements live in the record's ``metadata.disclosure`` (never values of the records disclosed);
:func:`wxdata.audit.reports.accounting_of_disclosures` prints them for each line, and retention
keeps every disclosure record of a student whose records still exist (the database enforces it).
"""

from __future__ import annotations

import enum
from typing import Any
from uuid import UUID

import attrs
import psycopg
from returns.result import Failure, Result, Success

from wxdata.audit.log import build_record, write_record
from wxdata.audit.record import AuditAction, AuditRecord
from wxdata.context import ExecutionContext
from wxdata.errors import DataError, FieldError, ValidationFailed
from wxdata.schema.spec import Entity

Conn = psycopg.Connection[Any]


class DisclosureKind(enum.StrEnum):
    """A release of information to a party, or a party's request for it."""

    DISCLOSURE = "DISCLOSURE"
    REQUEST = "REQUEST"


class LegalBasis(enum.StrEnum):
    """Why a disclosure is lawful (the citation a reviewer looks for)."""

    CONSENT = "CONSENT"  # FERPA 99.30 written consent / HIPAA 164.508 authorisation
    PARENT_OR_ELIGIBLE_STUDENT = "PARENT_OR_ELIGIBLE_STUDENT"  # FERPA 99.10 / 99.31(a)(8)
    SCHOOL_OFFICIAL = "SCHOOL_OFFICIAL"  # FERPA 99.31(a)(1) legitimate educational interest
    TRANSFER_SCHOOL = "TRANSFER_SCHOOL"  # FERPA 99.31(a)(2)
    HEALTH_OR_SAFETY_EMERGENCY = "HEALTH_OR_SAFETY_EMERGENCY"  # FERPA 99.31(a)(10), 99.36
    SUBPOENA_OR_COURT_ORDER = "SUBPOENA_OR_COURT_ORDER"  # FERPA 99.31(a)(9) / HIPAA 164.512(e)
    TREATMENT = "TREATMENT"  # HIPAA 164.506(c)
    PUBLIC_HEALTH = "PUBLIC_HEALTH"  # HIPAA 164.512(b)
    REQUIRED_BY_LAW = "REQUIRED_BY_LAW"  # HIPAA 164.512(a)
    AUDIT_OR_EVALUATION = "AUDIT_OR_EVALUATION"  # FERPA 99.31(a)(3), 99.35


def _text(limit: int) -> Any:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None and attribute.default is None:
            return
        if not isinstance(value, str) or not value.strip() or len(value) > limit or "\x00" in value:
            raise ValueError(f"{attribute.name}: must be 1-{limit} characters of text")
    return check


def _legal_basis(value: Any) -> LegalBasis:
    try:
        return LegalBasis(value)
    except ValueError:
        raise ValueError(f"legal_basis: must be one of {', '.join(LegalBasis)}") from None


def _kind(value: Any) -> DisclosureKind:
    try:
        return DisclosureKind(value)
    except ValueError:
        raise ValueError(f"kind: must be one of {', '.join(DisclosureKind)}") from None


@attrs.frozen(slots=True, kw_only=True)
class Recipient:
    """Who received or requested the information (a person or an organisation)."""

    name: str = attrs.field(validator=_text(200))
    address: str | None = attrs.field(default=None, validator=_text(500))
    organisation: str | None = attrs.field(default=None, validator=_text(200))


@attrs.frozen(slots=True, kw_only=True)
class DisclosureRecord:
    """What to record: to whom, why, what (in words and field names), about which students."""

    recipient: Recipient
    legal_basis: LegalBasis = attrs.field(converter=_legal_basis)
    description: str = attrs.field(validator=_text(500))
    subjects: tuple[UUID, ...] = attrs.field(converter=tuple)
    fields: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    ids: tuple[UUID, ...] = attrs.field(default=(), converter=tuple)
    kind: DisclosureKind = attrs.field(default=DisclosureKind.DISCLOSURE,
                                       converter=_kind)
    granted: bool = True

    @subjects.validator
    def _some(self, attribute: attrs.Attribute[Any], value: tuple[UUID, ...]) -> None:
        if not value or not all(isinstance(v, UUID) for v in value):
            raise ValueError("subjects: must name at least one student id")

    def metadata(self) -> dict[str, Any]:
        """The ``metadata.disclosure`` document of the audit record (no values of records)."""
        recipient = self.recipient.name
        if self.recipient.organisation:
            recipient = f"{recipient} ({self.recipient.organisation})"
        return {"disclosure": {
            "kind": self.kind.value, "recipient": recipient,
            "recipient_address": self.recipient.address, "legal_basis": self.legal_basis.value,
            "description": self.description, "granted": self.granted,
        }}


def build(**values: Any) -> Result[DisclosureRecord, DataError]:
    """A :class:`DisclosureRecord` from keyword values, or ``ValidationFailed`` naming the fields."""
    try:
        if isinstance(values.get("recipient"), dict):
            values["recipient"] = Recipient(**values["recipient"])
        return Success(DisclosureRecord(**values))
    except TypeError:
        error = FieldError("disclosure", "needs recipient, legal_basis, description and subjects")
        return Failure(ValidationFailed(entity="Disclosure", errors=(error,)))
    except ValueError as exc:
        field, _, rule = str(exc).partition(": ")
        error = FieldError(field if rule else "disclosure", rule or "is invalid")
        return Failure(ValidationFailed(entity="Disclosure", errors=(error,)))


def record_disclosure_to(
    conn: Conn, ctx: ExecutionContext, entity: Entity[Any], disclosure: DisclosureRecord
) -> Result[None, DataError]:
    """Record a disclosure to (or a request from) a party outside the organisation.

    Always recorded, whatever ``AUDIT_PHI_ACCESS`` says: the accounting is a legal duty. Written
    on the lane the connection's state calls for (inside a unit of work it commits with it and is
    replayed on the autocommit lane if that unit rolls back: the release happened regardless).
    """
    return write_record(conn, ctx, disclosure_record(ctx, entity, disclosure), disclosure=True)


def disclosure_record(
    ctx: ExecutionContext, entity: Entity[Any], disclosure: DisclosureRecord
) -> AuditRecord:
    """The audit record of a disclosure (EXPORT) or of a request (READ) to an outside party."""
    action = AuditAction.EXPORT if disclosure.kind is DisclosureKind.DISCLOSURE else AuditAction.READ
    return build_record(
        ctx, entity, action, success=disclosure.granted, ids=disclosure.ids,
        subjects=disclosure.subjects, fields=disclosure.fields, metadata=disclosure.metadata(),
    )


__all__ = [
    "DisclosureKind",
    "DisclosureRecord",
    "LegalBasis",
    "Recipient",
    "build",
    "disclosure_record",
    "record_disclosure_to",
]
