"""The outcome of a bulk operation over a list of ids: which ids it changed and which it did not.

An id is *unchanged* when no visible live row has it: absent, soft-deleted, or outside the
caller's school scope (row-level security hides it). The outcome does not say which, so it is no
existence oracle; an attempt on ids outside the scope is recorded as ACCESS_DENIED on the audit
trail (:mod:`wxdata.audit.denials`). A bulk operation that changed nothing is a
``Failure(NotFound)``, never an empty success.
"""

from __future__ import annotations

from uuid import UUID

import attrs


@attrs.frozen(slots=True)
class BulkOutcome:
    """Ids changed (in request order) and ids requested but not changed (in request order)."""

    changed: tuple[UUID, ...]
    unchanged: tuple[UUID, ...] = ()

    @property
    def complete(self) -> bool:
        """True when every requested id was changed."""
        return not self.unchanged
