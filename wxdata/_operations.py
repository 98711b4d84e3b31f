"""The one list of the generic data operations, in the order the documentation gives them.

Every name here is a plan of :mod:`wxdata.core.crud` taking ``(conn, ctx, entity, ...)``; each
shell runs it under the same name (:mod:`wxdata.crud`, :mod:`wxdata.aio.crud`), each binding
(:class:`wxdata.crud.Ops`, :class:`wxdata.aio.crud.AsyncOps`) offers it with the entity bound, and
every domain module exposes it: a single-entity module at module level (``allergies.find_by_id``),
a group module on one binding per entity (``messaging.messages.find_by_id``). A test compares
every one of those signatures with the plan's, and walks every domain module, so nothing drifts.

:data:`UNBOUND` lists the plans that take no entity (``fetch`` runs a hand-written statement):
the shells have them, the bindings and domain modules do not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

OPERATIONS: Final = (
    "find_by_id",
    "find_one",
    "find_many",
    "find_projected",
    "find_after",
    "count",
    "exists",
    "create",
    "update",
    "delete",
    "restore",
    "bulk_create",
    "update_where",
    "update_ids",
    "stream",
    "record_disclosure",
)
"""The generic operations bound to an entity (``(conn, ctx, entity, ...)`` plans)."""

UNBOUND: Final = ("fetch",)
"""The generic operations that take no entity as their third argument."""

ROW_READ: Final = "__wxdata_row_read__"
"""The attribute marking a by-id read of the shells and bindings (``find_by_id``): one index
lookup whose disclosure record rides in its own statement. The cache reads it: a hit of such a
read from outside the process would cost more than the read (:mod:`wxdata.cache.core`)."""


def row_read(fn: F) -> F:
    """Mark ``fn`` as a by-id read (:data:`ROW_READ`); a bound method reads its function's mark."""
    setattr(fn, ROW_READ, True)
    return fn


__all__ = ["OPERATIONS", "ROW_READ", "UNBOUND", "row_read"]
