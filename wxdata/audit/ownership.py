"""Who records the audit trail of a call: the generic functions, or an enclosing decorator.

Exactly one record per disclosure or change. The CRUD functions record their own reads and writes
(riding in the same statement). When an ``audited`` decorator wraps a call it *owns* the audit of
that call: reads made inside are not recorded by CRUD (the decorator records one READ with every id
and subject the call returned), and the decorator records a write only if no CRUD write inside
already did. ``cached`` records PHI cache hits only when no decorator owns the call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import attrs


@attrs.define(slots=True)
class AuditOwner:
    """The audit owner of the current call and what was recorded beneath it."""

    name: str
    writes_recorded: int = 0
    reads_recorded: int = 0


_OWNER: ContextVar[AuditOwner | None] = ContextVar("wxdata_audit_owner", default=None)


def current_owner() -> AuditOwner | None:
    """The decorator owning the audit of the current call, if any."""
    return _OWNER.get()


@contextmanager
def owning(name: str) -> Iterator[AuditOwner]:
    """Make the caller the audit owner for the duration of the block (nesting: innermost wins)."""
    owner = AuditOwner(name)
    token = _OWNER.set(owner)
    try:
        yield owner
    finally:
        _OWNER.reset(token)


def note_write() -> None:
    """Tell the owner (if any) that a write record was written beneath it."""
    owner = _OWNER.get()
    if owner is not None:
        owner.writes_recorded += 1
