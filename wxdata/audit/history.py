"""A row's history from its sealed audit records: who changed what and when, and the row "as of" a time.

The audit trail already holds everything needed: a CREATE record carries the new row's snapshot
(``new_values``), an UPDATE record the by-value diff (``changes``: ``{"field": {"before", "after"}}``
and the ``after`` values in ``new_values``), a bulk update the values it set for every id it lists,
and DELETE / RESTORE records the soft-delete state. Replaying them in order reconstructs the row
as it was at any instant — with the redaction applied when the records were written: clinical free
text stays ``[MASKED]`` and secrets are never there, so history discloses no more than the trail.

Reading history is a disclosure: each call is allowed only to roles that may read the audit trail,
and writes its own READ record (report ``history``) in the same transaction as the read, so no
history leaves wxdata without its record. A school or district administrator (the scoped audit
readers) gets a row's history only when its school scope shows the row's student (row security
decides, under the reader's signed scope); otherwise the row has no history (``as_of`` answers
``NotFound``, ``changes`` nothing), as a by-id read answers ``NotFound`` outside its scope. ADMIN,
the organisation's privacy officer, and SYSTEM read every row's history.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import attrs
import psycopg
from psycopg.rows import tuple_row
from returns.result import Failure, Result, Success

from wxdata.audit.record import AuditAction
from wxdata.audit.redact import MASK
from wxdata.audit.reports import (
    AUDIT_ENTITY,
    SCOPED_AUDIT_READERS,
    SHOWN_TO_SCOPE,
    _report_record,
    deny,
    disclose,
    names_row,
)
from wxdata.context import ExecutionContext
from wxdata.errors import DataError, InvalidQuery, NotFound
from wxdata.errors import from_db_error as _db_error
from wxdata.schema.spec import Entity

Conn = psycopg.Connection[Any]

#: Actions that change a row, in the order they are replayed.
CHANGE_ACTIONS: tuple[str, ...] = tuple(a.value for a in (
    AuditAction.CREATE, AuditAction.BULK_CREATE, AuditAction.UPDATE, AuditAction.BULK_UPDATE,
    AuditAction.DELETE, AuditAction.BULK_DELETE, AuditAction.RESTORE,
))

_SQL = (
    "SELECT a.seq, a.created_at, a.action, a.user_id, a.user_role, a.purpose, a.changes, "
    "a.new_values, a.request_id, a.subject_student_id FROM audit_log a "
    "WHERE a.entity_type = %(entity_type)s "
    "AND " + names_row("id") + " "
    "AND a.success AND a.action = ANY(%(actions)s) "
    "AND (%(until)s::timestamptz IS NULL OR a.created_at <= %(until)s::timestamptz) "
)
#: The same for a scoped audit reader: only the records of students its scope shows.
_SCOPED_SQL = _SQL + "AND " + SHOWN_TO_SCOPE + " ORDER BY a.seq"
_SQL += "ORDER BY a.seq"


@attrs.frozen(slots=True, kw_only=True)
class Change:
    """One change of the row: who, when, why, and the fields it set (values as recorded)."""

    seq: int
    at: datetime
    action: str
    user_id: str | None
    user_role: str | None
    purpose: str | None
    request_id: str | None
    values: Mapping[str, Any]
    diff: Mapping[str, Any] | None
    subject: UUID | None = None


@attrs.frozen(slots=True, kw_only=True)
class Snapshot:
    """The row as the audit trail knew it at ``as_of``.

    ``values`` maps column names to the values recorded (JSON types: dates as ISO strings);
    ``masked`` names the fields whose value the redaction registry masked; ``complete`` is False
    when no creation snapshot precedes ``as_of`` (e.g. a row loaded before auditing was on), so
    only the fields set by later changes are known; ``deleted`` is the soft-delete state.
    """

    entity: str
    id: UUID
    as_of: datetime
    values: Mapping[str, Any]
    masked: frozenset[str]
    complete: bool
    deleted: bool
    changes: int


def _change(row: tuple[Any, ...]) -> Change:
    seq, at, action, user_id, role, purpose, diff, new_values, request_id, subject = row
    return Change(seq=seq, at=at, action=action, user_id=user_id, user_role=role, purpose=purpose,
                  request_id=request_id, values=dict(new_values or {}),
                  diff=dict(diff) if isinstance(diff, Mapping) else None, subject=subject)


def replay(entity: str, id: UUID, when: datetime, changes: tuple[Change, ...]) -> Snapshot | None:
    """Fold the changes (oldest first) into the row's state; None when nothing precedes ``when``."""
    state: dict[str, Any] = {}
    complete = False
    deleted = False
    seen = 0
    for change in changes:
        if change.at > when:
            break
        seen += 1
        if change.action == AuditAction.CREATE.value and change.values:
            state = dict(change.values)
            complete = True
        elif change.action in (AuditAction.DELETE.value, AuditAction.BULK_DELETE.value):
            deleted = True
        elif change.action == AuditAction.RESTORE.value:
            deleted = False
        state.update(change.values)
    if seen == 0:
        return None
    masked = frozenset(k for k, v in state.items() if v == MASK)
    return Snapshot(entity=entity, id=id, as_of=when, values=state, masked=masked,
                    complete=complete, deleted=deleted, changes=seen)


def _checked(entity: Entity[Any], entity_id: UUID | str, when: datetime | None
             ) -> Result[UUID, DataError]:
    if when is not None and (not isinstance(when, datetime) or when.tzinfo is None):
        return Failure(InvalidQuery(field="when", rule="must be a timezone-aware datetime"))
    if isinstance(entity_id, UUID):
        return Success(entity_id)
    try:
        return Success(UUID(str(entity_id)))
    except ValueError:
        return Failure(InvalidQuery(field="entity_id", rule="must be a UUID"))


def _read(conn: Conn, ctx: ExecutionContext, entity: Entity[Any], key: UUID,
          until: datetime | None, report: str) -> Result[tuple[Change, ...], DataError]:
    denied = deny(conn, ctx, report)
    if denied is not None:
        return denied
    params = {"entity_type": entity.name, "id": key, "actions": list(CHANGE_ACTIONS),
              "until": until}

    # a scoped reader sees no record of a student outside its scope: no history, no oracle
    statement = _SCOPED_SQL if ctx.role in SCOPED_AUDIT_READERS else _SQL

    def work() -> tuple[Change, ...]:
        rows = conn.cursor(row_factory=tuple_row).execute(statement, params).fetchall()
        return tuple(_change(r) for r in rows)

    def record_of(found: tuple[Change, ...]) -> Any:
        subject = next((c.subject for c in found if c.subject is not None), None)
        return _report_record(
            ctx, AuditAction.READ, report, subject=subject, phi=entity.is_phi,
            metadata={"entity_type": entity.name, "entity_id": str(key), "rows": len(found),
                      "until": until.isoformat() if until else None},
        )

    try:
        return Success(disclose(conn, ctx, work, record_of))
    except psycopg.Error as exc:
        return Failure(_db_error(exc, AUDIT_ENTITY))


def changes(conn: Conn, ctx: ExecutionContext, entity: Entity[Any], entity_id: UUID | str
            ) -> Result[tuple[Change, ...], DataError]:
    """Every recorded change of one row, oldest first: who changed what, when, why, with diffs."""
    return _checked(entity, entity_id, None).bind(
        lambda key: _read(conn, ctx, entity, key, None, "history"))


def as_of(conn: Conn, ctx: ExecutionContext, entity: Entity[Any], entity_id: UUID | str,
          when: datetime) -> Result[Snapshot, DataError]:
    """The row as it was at ``when``, rebuilt from its audit records (masked fields stay masked).

    ``Failure(NotFound)`` when the trail holds no change of the row at or before ``when``.
    """
    def rebuild(key: UUID) -> Result[Snapshot, DataError]:
        return _read(conn, ctx, entity, key, when, "history_as_of").bind(
            lambda found: _found(replay(entity.name, key, when, found), entity.name))

    return _checked(entity, entity_id, when).bind(rebuild)


def _found(snapshot: Snapshot | None, name: str) -> Result[Snapshot, DataError]:
    return Success(snapshot) if snapshot is not None else Failure(NotFound(entity=name))


__all__ = ["CHANGE_ACTIONS", "Change", "Snapshot", "as_of", "changes", "replay"]
