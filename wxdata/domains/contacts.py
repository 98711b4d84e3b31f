"""The contact address book.

Each entity is exposed as one bound set of the generic data functions (:class:`wxdata.crud.Ops`).
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.contacts import CONTACTS, Contact

contacts = bind_entity(CONTACTS)

__all__ = [
    "Contact",
    "contacts",
]
