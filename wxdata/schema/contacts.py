"""Contacts: guardians, providers, staff and vendors in one address book.

A contact tied to a student (a guardian, a student's provider) identifies that student's family
and care, so contact columns are PHI; ``relation_to`` may name a student or a user, so it carries
no foreign key and the table declares no single subject.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from wxdata.schema.base import AuthoredSoftDeleted
from wxdata.schema.spec import (
    DataClass,
    col,
    entity,
    pk,
    row,
)

P = DataClass.PHI
PHONE = r"\+?[1-9]\d{1,14}"
EMAIL = r"[^@\s]{1,64}@[^@\s]{1,190}"
ZIP = r"\d{5}(-\d{4})?"


@row
class Contact(AuthoredSoftDeleted):
    """A person or organisation in the address book (type values: guardian, provider, ...)."""

    id: UUID = pk()
    first_name: str = col(P, max_length=100)
    last_name: str = col(P, max_length=100)
    email: str | None = col(P, max_length=255, pattern=EMAIL)
    phone: str | None = col(P, max_length=20, pattern=PHONE)
    type: str = col(P, max_length=50)
    organization: str | None = col(P, max_length=200)
    title: str | None = col(P, max_length=100)
    address: str | None = col(P, max_length=255)
    city: str | None = col(P, max_length=100)
    state: str | None = col(P, max_length=50)
    zip: str | None = col(P, max_length=20, pattern=ZIP)
    relation_to: UUID | None = col(P)
    relationship_type: str | None = col(P, max_length=50)
    custom_fields: dict[str, Any] | None = col(P, has_default=True)
    is_active: bool = col(P, has_default=True)
    notes: str | None = col(P, sql="text", clinical_text=True)


CONTACTS = entity(Contact, table="contacts")
