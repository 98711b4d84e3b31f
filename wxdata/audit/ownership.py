"""Who records the audit trail of a call: the generic functions, or an enclosing decorator.

Exactly one record per disclosure or change. The CRUD functions record their own reads and writes
(riding in the same statement). When an ``audited`` decorator wraps a call it *owns* the audit of
that call: reads made inside are not recorded by CRUD (the decorator records one READ with every id
and subject the call returned), and the decorator records a write only if no CRUD write inside
already did. ``cached`` records PHI cache hits only when no decorator owns the reads of the call
(:func:`reads_owned`). An owner declared for a write action does not own reads: reads beneath it
record themselves. Failure records written on lane 2 beneath an owner are counted separately
(``detached_recorded``), because they survive a rollback that discards the lane-1 records.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import attrs

from wxdata.config import settings

if TYPE_CHECKING:
    from wxdata.context import ExecutionContext
    from wxdata.schema.spec import Entity


@attrs.define(slots=True)
class AuditOwner:
    """The audit owner of the current call and what was recorded beneath it."""

    name: str
    writes_recorded: int = 0
    reads_recorded: int = 0
    reads: bool = True
    detached_recorded: int = 0
    #: What hand-written reads beneath disclosed (:class:`wxdata.core.raw.Disclosure`: an entity,
    #: the ids of its rows and students, its columns), for the owner's record to name.
    disclosed: list[Any] = attrs.field(factory=list)


_OWNER: ContextVar[AuditOwner | None] = ContextVar("wxdata_audit_owner", default=None)


def current_owner() -> AuditOwner | None:
    """The decorator owning the audit of the current call, if any."""
    return _OWNER.get()


def reads_owned() -> bool:
    """True when a decorator owns (and will record) the reads of the current call."""
    owner = _OWNER.get()
    return owner is not None and owner.reads


def disclosure_recorded(entity: Entity[Any] | None, ctx: ExecutionContext | None = None) -> bool:
    """Whether a read of ``entity`` by ``ctx`` is a disclosure the trail records: with auditing
    on, a break-glass read always, PHI or not (emergency access is accounted for in full), any
    other read when its entity's reads are audited (``AUDIT_PHI_ACCESS``). Who records it is
    :func:`reads_recorded`'s question."""
    config = settings()
    if not config.audit_enabled:
        return False
    if ctx is not None and ctx.is_break_glass:
        return True
    return config.audit_phi_access and entity is not None and entity.audit_reads


def reads_recorded(entity: Entity[Any] | None, ctx: ExecutionContext | None = None) -> bool:
    """Whether wxdata itself records a read of ``entity`` by ``ctx`` (the read's riding record, or
    a cache hit's): a recorded disclosure (:func:`disclosure_recorded`) whose reads no ``audited``
    decorator owns. The one rule for every way a read is served: from PostgreSQL or the cache."""
    return disclosure_recorded(entity, ctx) and not reads_owned()


@contextmanager
def owning(name: str, *, reads: bool = True) -> Iterator[AuditOwner]:
    """Make the caller the audit owner for the duration of the block (nesting: innermost wins)."""
    owner = AuditOwner(name, reads=reads)
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


def note_detached() -> None:
    """Tell the owner (if any) that a record was written on lane 2 beneath it."""
    owner = _OWNER.get()
    if owner is not None:
        owner.detached_recorded += 1
