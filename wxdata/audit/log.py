"""Explicit audit calls: ``log_create``, ``log_read``, ``log_update`` ... each ``(conn, ctx, ...) -> Result``.

For code that changes or discloses data outside the generic functions (which record their own
events, riding in the same SQL statement). Every function builds one redacted record and writes it
through the lane its kind of event needs:

- a change or a commit (CREATE, UPDATE, DELETE, RESTORE, BULK_*, TRANSACTION_COMMIT): inside a unit
  of work, a plain INSERT on the same connection (lane 1: it commits or rolls back with the work);
  outside one, a plain INSERT on the autocommit connection; in a read-only unit of work, lane 2;
- a disclosure (READ, EXPORT): as a change, and when the unit of work later rolls back the record is
  replayed on lane 2 (the data was disclosed whatever happened to the transaction); when that
  replay fails the unit of work answers ``Failure(Unavailable)`` (:class:`wxdata.tx.DisclosureNotRecorded`);
  in a read-only unit of work a disclosure whose lane-2 record fails is ``Failure(Unavailable)``;
- a failure, a denial, a rollback: always lane 2, so they survive the rollback.

PHI and compliance classes come from the entity spec, never from entity names. Values pass through
the one redaction registry (:mod:`wxdata.audit.redact`); updates store a by-value diff
(:mod:`wxdata.audit.diff`). With ``AUDIT_ENABLED=false`` (or ``AUDIT_PHI_ACCESS=false`` for
disclosures) nothing is written and the result is ``Success(None)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Concatenate, NamedTuple, ParamSpec
from uuid import UUID

import attrs
import psycopg
from returns.result import Failure, Result, Success

from wxdata.audit.diff import diff, split
from wxdata.audit.record import (
    READ,
    AuditAction,
    AuditRecord,
    AuditSeverity,
    compliance_of,
    disclosed_fields,
    severity_of,
    text_refusal,
    unstorable_field,
    uuid_array,
)
from wxdata.audit.redact import redact_row
from wxdata.audit.sql import (
    RecordTemplate,
    positional_insert,
    record_insert,
    record_template,
    relaxed_commit,
)
from wxdata.config import settings
from wxdata.context import ExecutionContext
from wxdata.core.drive import run
from wxdata.core.effects import Detached, Execute, Plan
from wxdata.errors import DataError, FieldError, ValidationFailed, from_db_error
from wxdata.schema.spec import Entity, lookup
from wxdata.tx.decorators import UNRECORDED
from wxdata.tx.scope import AnyConn, current_scope, disclosed_on_lane_two

Conn = psycopg.Connection[Any]
Result_ = Result[None, DataError]
#: The answer of a record written, or of none due: one immutable value, shared (a ``Success``
#: built on every recorded call costs about 5,700 client instructions).
_DONE: Result_ = Success(None)
P = ParamSpec("P")

#: Actions that disclose data (replayed on lane 2 when their unit of work rolls back).
DISCLOSURES = frozenset({AuditAction.READ, AuditAction.VIEW, AuditAction.EXPORT,
                         AuditAction.PRINT, AuditAction.CACHE_READ})
#: Actions that change data (an ``audited`` function with one runs in a unit of work).
CHANGES = frozenset({AuditAction.CREATE, AuditAction.UPDATE, AuditAction.DELETE,
                     AuditAction.RESTORE, AuditAction.BULK_CREATE, AuditAction.BULK_UPDATE,
                     AuditAction.BULK_DELETE, AuditAction.IMPORT})
BULK = frozenset({AuditAction.BULK_CREATE, AuditAction.BULK_UPDATE, AuditAction.BULK_DELETE})

def _unique(values: Iterable[UUID | None]) -> tuple[UUID, ...]:
    if type(values) is tuple and len(values) < 2:  # one row's id or subject: nothing to merge
        return values if not values or values[0] is not None else ()
    return tuple(dict.fromkeys(v for v in values if v is not None))


def build_record(
    ctx: ExecutionContext,
    entity: Entity[Any] | str | None,
    action: AuditAction,
    *,
    success: bool = True,
    error: DataError | None = None,
    ids: Iterable[UUID | None] = (),
    subjects: Iterable[UUID | None] = (),
    fields: Sequence[str] = (),
    changes: Mapping[str, Any] | None = None,
    previous_values: Mapping[str, Any] | None = None,
    new_values: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    severity: AuditSeverity | None = None,
) -> AuditRecord:
    """One record; classification (PHI, compliance, severity) from the entity spec, if any."""
    spec = lookup(entity) if isinstance(entity, str) else entity
    name = entity if isinstance(entity, str) else (spec.name if spec is not None else "System")
    entity_ids = _unique(ids)
    subject_ids = _unique(subjects)
    return AuditRecord(
        action=action,
        entity_type=name,
        entity_id=_single(entity_ids),
        entity_ids=entity_ids,
        subject_student_id=_single(subject_ids),
        subject_ids=subject_ids,
        changes=changes,
        previous_values=previous_values,
        new_values=new_values,
        fields_disclosed=disclosed_fields(spec, fields),
        is_phi=spec.is_phi if spec is not None else False,
        compliance_type=compliance_of(spec),
        severity=severity or severity_of(action, spec, ctx, success),
        success=success,
        error_message=error.code if error is not None else None,
        metadata=metadata,
    )


class DueRecord(NamedTuple):
    """A success-path record due: its template (:func:`due_template`), who acts, and the ids and
    subjects it names (each unique, in order).

    Made on every recorded call and cache hit: an immutable named tuple, which builds in a
    fraction of what a frozen attrs instance costs (as :class:`~wxdata.core.effects.Execute`)."""

    template: RecordTemplate
    ctx: ExecutionContext
    ids: tuple[UUID, ...]
    subjects: tuple[UUID, ...]

    @property
    def action(self) -> AuditAction:
        """What the record records (READ for a disclosure a cache hit owes)."""
        return self.template.base.action

    def record(self) -> AuditRecord:
        """The record itself (as :func:`build_record` builds it from the same facts)."""
        ids, subjects = self.ids, self.subjects
        return attrs.evolve(
            self.template.base, entity_id=_single(ids), entity_ids=ids,
            subject_student_id=_single(subjects), subject_ids=subjects)

    def insert(self, relaxed: bool = False) -> tuple[str, tuple[Any, ...]]:
        """The INSERT of the record and what it binds, positionally: the statement
        :func:`~wxdata.audit.sql.record_insert` renders for the record written under the same
        context, its named parameters in their order (:func:`~wxdata.audit.sql.positional`)."""
        template, ids, subjects = self.template, self.ids, self.subjects
        id_array = uuid_array(ids)
        # a row that is its own subject (a student's row): the same UUID, rendered once
        same = len(ids) == len(subjects) == 1 and ids[0] is subjects[0]
        return positional_insert(template.shape, relaxed), (
            *template.values(self.ctx), _single(ids), id_array, _single(subjects),
            id_array if same else uuid_array(subjects))


def due_template(ctx: ExecutionContext, entity: Entity[Any], action: AuditAction,
                 fields: tuple[str, ...], metadata: tuple[tuple[str, str], ...] = ()
                 ) -> RecordTemplate:
    """The template of an ``action`` record of ``fields`` of ``entity`` rows (``metadata``: a
    flat mapping of strings, as items): built once, shared by every caller with ``ctx``'s
    break-glass flag (see :func:`~wxdata.audit.sql.record_template`)."""
    return record_template(ctx, _due_record, entity, action, fields, metadata)


def _due_record(ctx: ExecutionContext, entity: Entity[Any], action: AuditAction,
                fields: tuple[str, ...], metadata: tuple[tuple[str, str], ...]) -> AuditRecord:
    """The record a due record's template is made from (its ids are bound per record)."""
    return build_record(ctx, entity, action, fields=fields,
                        metadata=dict(metadata) if metadata else None)


def due_record(ctx: ExecutionContext, entity: Entity[Any], action: AuditAction,
               ids: Iterable[UUID | None], subjects: Iterable[UUID | None],
               fields: tuple[str, ...] = (), metadata: tuple[tuple[str, str], ...] = ()
               ) -> DueRecord:
    """The ``action`` record ``ctx`` owes for rows ``ids`` (of students ``subjects``) of
    ``entity``: :func:`build_record`'s record for the same facts, from a memoised template."""
    return DueRecord(due_template(ctx, entity, action, fields, metadata), ctx, _unique(ids),
                     _unique(subjects))


def due_read(ctx: ExecutionContext, entity: Entity[Any], ids: Iterable[UUID | None],
             subjects: Iterable[UUID | None], fields: tuple[str, ...],
             metadata: tuple[tuple[str, str], ...] = ()) -> DueRecord:
    """The READ record ``ctx`` owes for rows ``ids`` (of students ``subjects``) of ``entity``."""
    return due_record(ctx, entity, READ, ids, subjects, fields, metadata)


def _single(values: tuple[UUID, ...]) -> UUID | None:
    return values[0] if len(values) == 1 else None


def detached_plan(ctx: ExecutionContext, record: AuditRecord) -> Plan[bool]:
    """Write ``record`` on lane 2; whether it was committed."""
    kept: bool = yield Detached(ctx, record)
    return kept


def record_plan(
    conn: AnyConn, ctx: ExecutionContext, record: AuditRecord, *, disclosure: bool = False
) -> Plan[Result_]:
    """Write a success-path record on the lane the connection's state calls for (module doc).

    A record holding text the log cannot store is refused by name before anything is sent."""
    refused = _refused(record)
    if refused is not None:
        return refused
    return (yield from _lane_plan(conn, ctx, record.action,
                                  lambda relaxed: record_insert(ctx, record, relaxed=relaxed),
                                  lambda: record, disclosure))


def _refused(record: AuditRecord) -> Failure[DataError] | None:
    """``Failure(ValidationFailed)`` naming the field of ``record`` that holds text the log's
    text and jsonb columns cannot store (a NUL character, a lone surrogate) and the rule, or
    None."""
    found = unstorable_field(record)
    return None if found is None else _unstorable(*found)


def _unstorable(field: str, rule: str) -> Failure[DataError]:
    return Failure(ValidationFailed("AuditLog", (FieldError(field, rule),)))


def due_plan(conn: AnyConn, ctx: ExecutionContext, due: DueRecord) -> Plan[Result_]:
    """Write a due record as :func:`record_plan` writes the same record (same lanes, a
    disclosure's replay), its statement bound from the memoised template."""
    action = due.action
    return _lane_plan(conn, ctx, action, due.insert, due.record, action in DISCLOSURES)


def _lane_plan(
    conn: AnyConn, ctx: ExecutionContext, action: AuditAction,
    insert: Callable[[bool], tuple[str, Mapping[str, Any] | tuple[Any, ...]]],
    record: Callable[[], AuditRecord],
    disclosure: bool,
) -> Plan[Result_]:
    """The lanes of a success-path record (module doc): ``insert(relaxed)`` its lane-1 statement,
    ``record()`` the record itself for lane 2 (built only if lane 2 is needed)."""
    scope = current_scope(conn)
    # a read-only unit of work cannot insert; a disclosure in a transaction wxdata did not open
    # could be rolled back by its caller after the data was handed out
    if scope.read_only if scope is not None else disclosure and disclosed_on_lane_two(conn, None):
        return (yield from _survive(ctx, record()))
    config = settings()
    # a disclosure outside a unit of work is its own transaction: a READ may commit relaxed
    relaxed = (scope is None and disclosure and action is READ
               and relaxed_commit(config.audit_read_commit, conn.autocommit))
    try:
        yield Execute(*insert(relaxed), config.prepare, "audit")
    except psycopg.Error as exc:
        return Failure(from_db_error(exc, "AuditLog"))
    if scope is not None and disclosure:
        scope.replay_on_rollback(lambda: detached_plan(ctx, record()))
    return _DONE


def surviving_plan(conn: AnyConn, ctx: ExecutionContext, record: AuditRecord) -> Plan[Result_]:
    """Write a record on lane 2: committed at once, whatever happens to ``conn``'s transaction.

    ``Failure(Unavailable)`` when it could not be committed: a disclosure must then not hand out
    its data; a failure or denial returns its own Failure all the same (the loss is counted).
    A record holding text the log cannot store is refused before anything is sent.
    """
    refused = _refused(record)
    if refused is not None:
        return refused
    return (yield from _survive(ctx, record))


def _survive(ctx: ExecutionContext, record: AuditRecord) -> Plan[Result_]:
    """Lane 2 for a record already checked (by :func:`record_plan`) or built by wxdata itself
    (a template's)."""
    if (yield Detached(ctx, record)):
        return _DONE
    return Failure(UNRECORDED)


def _on() -> bool:
    return settings().audit_enabled


def _disclosures_on(ctx: ExecutionContext) -> bool:
    """Whether disclosures are recorded: ``AUDIT_PHI_ACCESS``, and a break-glass one always."""
    s = settings()
    return s.audit_enabled and (s.audit_phi_access or ctx.is_break_glass)


def _subject_of(entity: Entity[Any], entity_id: UUID | None,
                values: Mapping[str, Any] | None, subject: UUID | None) -> UUID | None:
    if subject is not None:
        return subject
    if entity.subject is None:
        return None
    if entity.subject == entity.pk:
        return entity_id
    if values is not None:
        found = values.get(entity.subject)
        return found if isinstance(found, UUID) else None
    return None


def create_plan(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], entity_id: UUID,
    values: Mapping[str, Any], *, subject: UUID | None = None,
) -> Plan[Result_]:
    """Record a row created by hand-written SQL, with a redacted snapshot of its values."""
    if not _on():
        return _DONE
    snapshot = redact_row(entity, values)
    record = build_record(
        ctx, entity, AuditAction.CREATE, ids=(entity_id,),
        subjects=(_subject_of(entity, entity_id, values, subject),),
        changes=snapshot, new_values=snapshot,
    )
    return (yield from record_plan(conn, ctx, record))


def read_plan(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], ids: Iterable[UUID], *,
    subjects: Iterable[UUID] = (), fields: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Plan[Result_]:
    """Record a disclosure of rows ``ids`` (of students ``subjects``); fields default to all."""
    if not _disclosures_on(ctx):
        return _DONE
    ids = tuple(ids)
    subject_ids = tuple(subjects)
    if not subject_ids and entity.subject is not None and entity.subject == entity.pk:
        subject_ids = ids
    fields = entity.column_names if fields is None else tuple(fields)
    return (yield from _disclosed(conn, ctx, entity, READ, ids, subject_ids, fields,
                                  metadata))


def _disclosed(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], action: AuditAction,
    ids: Iterable[UUID], subjects: Iterable[UUID], fields: tuple[str, ...],
    metadata: Mapping[str, Any] | None,
) -> Plan[Result_]:
    """A disclosure's record: from its memoised template when the caller gave no metadata, else
    built in full; the same record either way. Templates are kept for what code fixes (an
    entity's fields, an operation's label, a cache hit), not for metadata a caller may vary from
    call to call, which would only churn their bounded store. Field names the log cannot store
    are refused by name before either is built (an entity's own names, the default, are
    identifiers :func:`~wxdata.schema.spec.entity` checked when it was declared)."""
    if fields is not entity.column_names:
        rule = text_refusal(fields)
        if rule is not None:
            return _unstorable("fields_disclosed", rule)
    if metadata is not None:
        record = build_record(ctx, entity, action, ids=ids, subjects=subjects, fields=fields,
                              metadata=metadata)
        return (yield from record_plan(conn, ctx, record, disclosure=True))
    return (yield from due_plan(conn, ctx, due_record(ctx, entity, action, ids, subjects,
                                                      fields)))


def update_plan(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], entity_id: UUID,
    before: Mapping[str, Any], after: Mapping[str, Any], *, subject: UUID | None = None,
) -> Plan[Result_]:
    """Record an update with its by-value, redacted diff (unchanged fields absent)."""
    if not _on():
        return _DONE
    changes = diff(entity, before, after)
    previous, new = split(changes)
    record = build_record(
        ctx, entity, AuditAction.UPDATE, ids=(entity_id,),
        subjects=(_subject_of(entity, entity_id, {**before, **after}, subject),),
        changes=changes, previous_values=previous, new_values=new,
    )
    return (yield from record_plan(conn, ctx, record))


def delete_plan(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], entity_id: UUID,
    values: Mapping[str, Any] | None = None, *, subject: UUID | None = None,
) -> Plan[Result_]:
    """Record a deletion, with a redacted snapshot of the row when given."""
    if not _on():
        return _DONE
    record = build_record(
        ctx, entity, AuditAction.DELETE, ids=(entity_id,),
        subjects=(_subject_of(entity, entity_id, values, subject),),
        previous_values=redact_row(entity, values) if values is not None else None,
    )
    return (yield from record_plan(conn, ctx, record))


def bulk_plan(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], action: AuditAction,
    ids: Iterable[UUID], *, subjects: Iterable[UUID] = (),
    values: Mapping[str, Any] | None = None, metadata: Mapping[str, Any] | None = None,
) -> Plan[Result_]:
    """Record a bulk change under its own action (BULK_CREATE stays BULK_CREATE) with every id."""
    if action not in BULK:
        raise ValueError(f"log_bulk takes a BULK_* action, not {action}")
    if not _on():
        return _DONE
    ids = tuple(ids)
    subject_ids = tuple(subjects)
    if not subject_ids and entity.subject is not None and entity.subject == entity.pk:
        subject_ids = ids
    record = build_record(
        ctx, entity, action, ids=ids, subjects=subject_ids,
        new_values=redact_row(entity, values) if values is not None else None,
        metadata={"count": len(ids), **(metadata or {})},
    )
    return (yield from record_plan(conn, ctx, record))


def export_plan(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], *, ids: Iterable[UUID] = (),
    subjects: Iterable[UUID] = (), fields: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Plan[Result_]:
    """Record an export (a disclosure of many rows: a file, a report) and whose data it held."""
    if not _disclosures_on(ctx):
        return _DONE
    return (yield from _disclosed(
        conn, ctx, entity, AuditAction.EXPORT, ids, subjects,
        entity.column_names if fields is None else tuple(fields), metadata))


def transaction_plan(
    conn: AnyConn, ctx: ExecutionContext, *, committed: bool, unit_id: UUID | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Plan[Result_]:
    """Record a unit of work's outcome: COMMIT in the transaction, ROLLBACK on lane 2.

    ``entity_id`` stays empty (a transaction is not a row); the unit id goes to metadata.
    """
    if not _on():
        return _DONE
    meta = {**(metadata or {}), **({"unit_id": str(unit_id)} if unit_id is not None else {})}
    record = build_record(
        ctx, "Transaction",
        AuditAction.TRANSACTION_COMMIT if committed else AuditAction.TRANSACTION_ROLLBACK,
        success=committed, metadata=meta or None,
        severity=AuditSeverity.LOW if committed else AuditSeverity.MEDIUM,
    )
    if committed:
        return (yield from record_plan(conn, ctx, record))
    return (yield from surviving_plan(conn, ctx, record))


def failure_plan(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any] | str, action: AuditAction,
    error: DataError, *, entity_id: UUID | None = None, subjects: Iterable[UUID] = (),
) -> Plan[Result_]:
    """Record a failed operation on lane 2 (a Forbidden error is recorded as ACCESS_DENIED)."""
    if error.code == "FORBIDDEN":
        return (yield from denied_plan(conn, ctx, entity, action, error=error,
                                       entity_id=entity_id, subjects=subjects))
    if not _on():
        return _DONE
    record = build_record(ctx, entity, action, success=False, error=error,
                          ids=(entity_id,), subjects=subjects)
    return (yield from surviving_plan(conn, ctx, record))


def denied_plan(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any] | str, action: AuditAction, *,
    error: DataError | None = None, entity_id: UUID | None = None, subjects: Iterable[UUID] = (),
) -> Plan[Result_]:
    """Record a denied attempt at ``action`` on lane 2 (ACCESS_DENIED, severity HIGH)."""
    if not _on():
        return _DONE
    record = build_record(
        ctx, entity, AuditAction.ACCESS_DENIED, success=False, error=error,
        ids=(entity_id,), subjects=subjects, metadata={"attempted": action.value},
    )
    return (yield from surviving_plan(conn, ctx, record))


# --- the sync API: each plan run on a sync connection -----------------------------------------


def write_record(
    conn: Conn, ctx: ExecutionContext, record: AuditRecord, *, disclosure: bool = False
) -> Result_:
    """Write a success-path record on the lane the connection's state calls for (module doc)."""
    return run(conn, record_plan(conn, ctx, record, disclosure=disclosure))


def write_disclosure(conn: Conn, ctx: ExecutionContext, due: DueRecord) -> Result_:
    """Write a due record (see :func:`due_plan`)."""
    return run(conn, due_plan(conn, ctx, due))


def write_surviving(conn: Conn, ctx: ExecutionContext, record: AuditRecord) -> Result_:
    """Write a record on lane 2 (see :func:`surviving_plan`)."""
    return run(conn, surviving_plan(conn, ctx, record))


def _sync(plan: Callable[Concatenate[AnyConn, P], Plan[Result_]]) -> Callable[Concatenate[Conn, P], Result_]:
    @functools.wraps(plan)
    def call(conn: Conn, /, *args: P.args, **kwargs: P.kwargs) -> Result_:
        return run(conn, plan(conn, *args, **kwargs))

    return call


log_create = _sync(create_plan)
log_read = _sync(read_plan)
log_update = _sync(update_plan)
log_delete = _sync(delete_plan)
log_bulk = _sync(bulk_plan)
log_export = _sync(export_plan)
log_transaction = _sync(transaction_plan)
log_failure = _sync(failure_plan)
log_access_denied = _sync(denied_plan)
