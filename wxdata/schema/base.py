"""Base row classes carrying the library-managed standard columns an entity declares.

A row class inherits one of these instead of repeating the managed columns at its end. attrs
places inherited fields first, so the managed columns lead the row's field (and column) order;
everything that builds or reads rows follows ``Entity.column_names``, which comes from that order.
"""

from __future__ import annotations

from datetime import datetime

from wxdata.schema.spec import created_at, created_by, deleted_at, row, updated_at, updated_by, version


@row
class Versioned:
    """Managed ``version``, ``created_at`` and ``updated_at`` columns."""

    version: int = version()
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()


@row
class Authored(Versioned):
    """:class:`Versioned` plus the managed ``created_by`` and ``updated_by`` columns."""

    created_by: str | None = created_by()
    updated_by: str | None = updated_by()


@row
class SoftDeleted(Versioned):
    """:class:`Versioned` plus the managed ``deleted_at`` soft-delete marker."""

    deleted_at: datetime | None = deleted_at()


@row
class AuthoredSoftDeleted(Authored):
    """:class:`Authored` plus the managed ``deleted_at`` soft-delete marker."""

    deleted_at: datetime | None = deleted_at()
