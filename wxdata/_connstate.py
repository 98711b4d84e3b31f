"""Everything wxdata keeps about one connection, in one object stored on the connection itself.

Sync and async connections alike: :func:`of` answers the connection's :class:`ConnState`, created
on first use. It lives and dies with the connection (no registry keyed by connections that would
keep one alive through a cursor's reference to it): the open unit of work, what the role is
allowed (learnt once), and the cursors reused by every statement.
"""

from __future__ import annotations

from typing import Any

import attrs

_SLOT = "_wxdata_state"


@attrs.frozen(slots=True)
class RoleFacts:
    """What wxdata learnt about a connection's role on its first use."""

    privileged: bool
    fingerprint: str | None  # the database's scope-key fingerprint; None: none installed
    migrated: bool  # whether the database has the signed-scope functions


@attrs.define(slots=True, eq=False)
class ConnState:
    """Per-connection state: the open scope, the role facts, the reused cursors, the query-log
    policy, the statements of a traced pipeline and the entities' tables as the database numbers
    them."""

    scope: Any = None  # wxdata.tx.scope.Scope while a unit of work is open
    role: RoleFacts | None = None
    cursors: dict[str, Any] = attrs.field(factory=dict)
    # psycopg raw cursors by slot, for statements sent with numbered placeholders
    # (wxdata.core.numbered), and the slots whose last statement went through one
    raw_cursors: dict[str, Any] = attrs.field(factory=dict)
    raw_last: set[str] = attrs.field(factory=set)
    query_log: Any = None  # (QueryLog, Logger) while wxdata.observability traces the connection
    pipeline: Any = None  # statements queued in the traced connection's open pipeline
    sources: Any = None  # wxdata.core.raw.Sources: the entities' tables and columns by oid


def of(conn: Any) -> ConnState:
    """The state of ``conn`` (a psycopg Connection or AsyncConnection), created on first use."""
    found: ConnState | None = conn.__dict__.get(_SLOT)
    if found is None:
        found = ConnState()
        conn.__dict__[_SLOT] = found
    return found


def peek(conn: Any) -> ConnState | None:
    """The state of ``conn`` if wxdata has used it, else None (creates nothing)."""
    found: ConnState | None = conn.__dict__.get(_SLOT)
    return found
