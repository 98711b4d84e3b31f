"""The contact address book.

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.contacts import CONTACTS, Contact

contacts = bind_entity(CONTACTS)

__all__ = [
    "Contact",
    "contacts",
]
