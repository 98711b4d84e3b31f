"""Audit records: the enums of the original system, the record value, and its bound parameters.

A record is built purely from the execution context, the entity spec and already-redacted values.
:mod:`wxdata.audit.sql` writes it in one of two statement shapes: a plain INSERT (lane 2, and
explicit ``log_*`` calls), and a data-modifying CTE that rides in the same statement as the change
or the read it describes, so a single write outside a unit of work stays atomic with its record
in one round trip.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from uuid import UUID

import attrs
from psycopg import sql

from wxdata.audit.redact import scrub
from wxdata.context import ExecutionContext
from wxdata.schema.spec import DataClass, Entity, lookup
from wxdata.schema.validate import unstorable_text


class AuditAction(enum.StrEnum):
    """What happened: the action a record describes."""

    CREATE = "CREATE"
    READ = "READ"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    RESTORE = "RESTORE"
    VIEW = "VIEW"
    EXPORT = "EXPORT"
    PRINT = "PRINT"
    LOGIN = "LOGIN"
    LOGOUT = "LOGOUT"
    IMPORT = "IMPORT"
    BULK_CREATE = "BULK_CREATE"
    BULK_UPDATE = "BULK_UPDATE"
    BULK_DELETE = "BULK_DELETE"
    TRANSACTION_COMMIT = "TRANSACTION_COMMIT"
    TRANSACTION_ROLLBACK = "TRANSACTION_ROLLBACK"
    CACHE_READ = "CACHE_READ"
    CACHE_WRITE = "CACHE_WRITE"
    CACHE_DELETE = "CACHE_DELETE"
    ACCESS_DENIED = "ACCESS_DENIED"
    BREAK_GLASS = "BREAK_GLASS"
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"
    AUTHORIZATION_FAILED = "AUTHORIZATION_FAILED"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    SERVER_ERROR = "SERVER_ERROR"
    HEALTHCARE_ERROR = "HEALTHCARE_ERROR"
    COMPLIANCE_ERROR = "COMPLIANCE_ERROR"
    SECURITY_ERROR = "SECURITY_ERROR"
    APPLICATION_ERROR = "APPLICATION_ERROR"


#: :attr:`AuditAction.READ`, read once for the paths every read takes: CPython 3.11 looks an enum
#: member up on its class through the enum metaclass's ``__getattr__`` hook, for ten times what a
#: module-level name costs.
READ = AuditAction.READ


class AuditSeverity(enum.StrEnum):
    """How much attention a record deserves."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class ComplianceType(enum.StrEnum):
    """Which regime the record serves."""

    HIPAA = "HIPAA"
    FERPA = "FERPA"
    GDPR = "GDPR"
    GENERAL = "GENERAL"


def compliance_of(entity: Entity[Any] | None) -> ComplianceType:
    """HIPAA for entities holding PHI, FERPA for education records, GENERAL otherwise."""
    if entity is None:
        return ComplianceType.GENERAL
    classes = {c.data_class for c in entity.columns}
    if DataClass.PHI in classes:
        return ComplianceType.HIPAA
    if DataClass.FERPA in classes:
        return ComplianceType.FERPA
    return ComplianceType.GENERAL


#: ``fields_disclosed`` of a record naming every readable column of its entity: how the log stores
#: a read of whole rows (:func:`disclosed_fields`); readers show the entity's column names in its
#: place (:func:`fields_named`).
ALL_FIELDS: tuple[str, ...] = ("*",)


def disclosed_fields(entity: Entity[Any] | None, fields: Iterable[str]) -> tuple[str, ...]:
    """What a record of ``entity`` stores as ``fields_disclosed`` for ``fields``:
    :data:`ALL_FIELDS` when they are every readable column of the entity, each once, in any
    order (the riding read's, a cache hit's and an ``audited`` function's record of whole rows
    alike); otherwise ``fields`` as given."""
    names = tuple(fields)
    if entity is None or names == ALL_FIELDS:
        return names
    every = entity.column_names
    if len(names) == len(every) and frozenset(names) == frozenset(every):
        return ALL_FIELDS
    return names


def fields_named(entity_type: str | None, fields: Iterable[str] | None) -> tuple[str, ...]:
    """The column names a stored ``fields_disclosed`` stands for: :data:`ALL_FIELDS` expanded
    to the readable columns of the entity named ``entity_type`` (as the schema has them now), any
    other list as stored."""
    names = tuple(fields or ())
    if names == ALL_FIELDS and entity_type is not None:
        spec = lookup(entity_type)
        if spec is not None:
            return spec.column_names
    return names


_HIGH = frozenset({AuditAction.DELETE, AuditAction.BULK_DELETE, AuditAction.EXPORT,
                   AuditAction.ACCESS_DENIED, AuditAction.BREAK_GLASS})


def severity_of(
    action: AuditAction, entity: Entity[Any] | None, ctx: ExecutionContext, success: bool
) -> AuditSeverity:
    """Default severity: CRITICAL for break-glass, HIGH for failures/deletes/exports, MEDIUM for PHI."""
    if ctx.is_break_glass:
        return AuditSeverity.CRITICAL
    if not success or action in _HIGH:
        return AuditSeverity.HIGH
    if entity is not None and entity.is_phi:
        return AuditSeverity.MEDIUM
    return AuditSeverity.LOW


@attrs.frozen(slots=True, kw_only=True)
class AuditRecord:
    """One audit event, already redacted; ``to_params`` gives its bound parameters."""

    action: AuditAction
    entity_type: str
    entity_id: UUID | None = None
    entity_ids: tuple[UUID, ...] = ()
    subject_student_id: UUID | None = None
    subject_ids: tuple[UUID, ...] = ()
    changes: Mapping[str, Any] | None = None
    previous_values: Mapping[str, Any] | None = None
    new_values: Mapping[str, Any] | None = None
    fields_disclosed: tuple[str, ...] = ()
    is_phi: bool = False
    compliance_type: ComplianceType = ComplianceType.GENERAL
    severity: AuditSeverity = AuditSeverity.LOW
    success: bool = True
    error_message: str | None = None
    metadata: Mapping[str, Any] | None = None
    tags: tuple[str, ...] = ()


#: The record's fields a caller's text can reach, checked by :func:`unstorable_field`.
_CALLER_TEXT: tuple[str, ...] = ("metadata", "fields_disclosed", "tags", "error_message",
                                 "changes", "previous_values", "new_values")


def unstorable_field(record: AuditRecord) -> tuple[str, str] | None:
    """(field, rule) of the first field of ``record`` holding text PostgreSQL cannot store, or
    None.

    Neither ``text`` nor ``jsonb`` can hold a NUL character or a lone surrogate; a record carrying
    one (in a key or a value, at any depth) would be refused by the server, which names no column.
    Checked before the record is written, so the caller learns which field broke which rule.
    """
    for name in _CALLER_TEXT:
        rule = text_refusal(getattr(record, name))
        if rule is not None:
            return name, rule
    return None


def text_refusal(value: Any) -> str | None:
    """The rule the text in ``value`` (at any depth, keys included) breaks for PostgreSQL to store
    it (:func:`wxdata.schema.validate.unstorable_text`), or None."""
    if isinstance(value, str):
        return unstorable_text(value)
    if isinstance(value, Mapping):
        items: Iterable[Any] = (t for kv in value.items() for t in kv)
    elif isinstance(value, list | tuple):
        items = value
    else:
        return None
    for item in items:
        rule = text_refusal(item)
        if rule is not None:
            return rule
    return None


#: Columns filled from the execution context, in order.
CONTEXT_COLUMNS: tuple[str, ...] = (
    "user_id", "user_name", "user_role", "ip_address", "user_agent", "request_id",
    "session_id", "correlation_id", "purpose", "break_glass_reason",
)
#: Columns filled from the record (``entity_id``/subjects may come from SQL in the CTE form).
RECORD_COLUMNS: tuple[str, ...] = (
    "action", "entity_type", "changes", "previous_values", "new_values", "fields_disclosed",
    "is_phi", "compliance_type", "severity", "success", "error_message", "metadata", "tags",
)
ID_COLUMNS: tuple[str, ...] = ("entity_id", "entity_ids", "subject_student_id", "subject_ids")


def text_array(items: Iterable[str]) -> str:
    """Text items in PostgreSQL's array input form (``{"a","b\\"c"}``), every item quoted.

    A record's array columns are bound (or written into a statement) as this text with a cast
    (``::text[]``, ``::varchar(255)[]``): one string instead of a list psycopg adapts element by
    element on every call.
    """
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in items)
    return "{" + ",".join(quoted) + "}"


@lru_cache(maxsize=4096)
def _texts(items: tuple[str, ...]) -> str:
    """:func:`text_array` of a record's fields or tags, rendered once per distinct tuple."""
    return text_array(items)


def uuid_array(items: Iterable[UUID]) -> str:
    """UUIDs in PostgreSQL's array input form (``{...,...}``), bound with a ``::uuid[]`` cast.

    Each is written as its 32 hex digits, a form ``uuid`` input reads as it reads the hyphenated
    one, for under half of what ``str()`` of a UUID costs on every record: ``u.bytes.hex()``, the
    same digits as ``u.hex`` in half its time (``u.hex`` formats the 128-bit integer with ``%``).
    An item that is not a :class:`~uuid.UUID` is parsed as one first (ValueError if it is not), so
    no text can add elements to the array.
    """
    if type(items) is tuple and len(items) == 1 and type(items[0]) is UUID:  # one row's id
        return "{" + items[0].bytes.hex() + "}"
    return "{" + ",".join(u.bytes.hex() if type(u) is UUID else UUID(str(u)).bytes.hex()
                          for u in items) + "}"


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


def context_values(ctx: ExecutionContext) -> tuple[Any, ...]:
    """Who acted, from where and why: the values of :data:`CONTEXT_COLUMNS`, in their order.

    Role and purpose are string enums: ``str()`` of a member is its value, for a third of what the
    ``.value`` descriptor costs on every audited call."""
    return (ctx.user_id, ctx.user_name, str(ctx.role), ctx.ip_address, ctx.user_agent,
            ctx.request_id, ctx.session_id, ctx.correlation_id, str(ctx.purpose),
            ctx.break_glass_reason)


def context_params(ctx: ExecutionContext) -> dict[str, Any]:
    """The ``a_<column>`` parameters describing who acted, from where and why.

    Written out key by key, in :data:`CONTEXT_COLUMNS`' order: a dict display is built at its
    final size in one step, where ``dict(zip(names, values))`` inserts pair by pair and grows the
    table twice (4.7k client instructions against 10.6k, on every audited statement). The unit
    tests check the keys against :data:`CONTEXT_COLUMNS`, in order."""
    return {"a_user_id": ctx.user_id, "a_user_name": ctx.user_name,
            "a_user_role": str(ctx.role), "a_ip_address": ctx.ip_address,
            "a_user_agent": ctx.user_agent, "a_request_id": ctx.request_id,
            "a_session_id": ctx.session_id, "a_correlation_id": ctx.correlation_id,
            "a_purpose": str(ctx.purpose), "a_break_glass_reason": ctx.break_glass_reason}


def _metadata(value: Mapping[str, Any] | None) -> str | None:
    """The scrubbed JSON of a record's metadata; a flat mapping of scalars (a cache hit's, an
    operation label) is rendered once per distinct content."""
    if value is None:
        return None
    try:  # each value's type is part of the key: True, 1 and 1.0 are equal keys, not equal JSON
        flat = tuple((k, type(v), v) for k, v in sorted(value.items()))
        hash(flat)
    except TypeError:  # nested or unhashable values, or keys that do not sort: rendered every time
        return _json(scrub(value))
    return _flat_metadata(flat)


@lru_cache(maxsize=4096)
def _flat_metadata(items: tuple[tuple[str, type, Any], ...]) -> str | None:
    return _json(scrub({k: v for k, _, v in items}))


@lru_cache(maxsize=4096)
def _tags(tags: tuple[str, ...], entity_type: str, action: str) -> str:
    return _texts(tuple(dict.fromkeys((*tags, entity_type.lower(), action.lower()))))


def id_params(entity_id: UUID | None, entity_ids: tuple[UUID, ...], subject_id: UUID | None,
              subject_ids: tuple[UUID, ...]) -> dict[str, Any]:
    """The ``a_<column>`` parameters of a record's ids (:data:`ID_COLUMNS`)."""
    return {
        "a_entity_id": entity_id,
        "a_entity_ids": uuid_array(entity_ids),
        "a_subject_student_id": subject_id,
        "a_subject_ids": uuid_array(subject_ids),
    }


def record_params(record: AuditRecord) -> dict[str, Any]:
    """The ``a_<column>`` parameters of the record's own fields (JSON already redacted)."""
    return {
        "a_action": record.action.value,
        "a_entity_type": record.entity_type,
        "a_changes": _json(record.changes),
        "a_previous_values": _json(record.previous_values),
        "a_new_values": _json(record.new_values),
        "a_fields_disclosed": _texts(record.fields_disclosed),
        "a_is_phi": record.is_phi,
        "a_compliance_type": record.compliance_type.value,
        "a_severity": record.severity.value,
        "a_success": record.success,
        "a_error_message": record.error_message,
        "a_metadata": _metadata(record.metadata),
        "a_tags": _tags(record.tags, record.entity_type, record.action.value),
        **id_params(record.entity_id, record.entity_ids, record.subject_student_id,
                    record.subject_ids),
    }


def params(ctx: ExecutionContext, record: AuditRecord) -> dict[str, Any]:
    """All parameters of a record's INSERT (plain or riding).

    Every record written under a break-glass context is CRITICAL whatever severity its builder
    chose (a transaction outcome, an explicit ``log_*`` severity), and carries the reason.
    """
    out = {**context_params(ctx), **record_params(record)}
    if ctx.is_break_glass:
        out["a_severity"] = AuditSeverity.CRITICAL.value
    return out


_CASTS = {
    "changes": "::jsonb", "previous_values": "::jsonb", "new_values": "::jsonb",
    "metadata": "::jsonb", "fields_disclosed": "::text[]", "tags": "::varchar(255)[]",
    "entity_ids": "::uuid[]", "subject_ids": "::uuid[]", "entity_id": "::uuid",
    "subject_student_id": "::uuid",
}


def cast_of(column: str) -> str:
    """The cast a record column's value takes in SQL (``::jsonb``, ``::text[]``, ...; or none)."""
    return _CASTS.get(column, "")


def param_sql(column: str) -> sql.Composable:
    """The bound parameter of one record column, ``%(a_<column>)s`` with its cast."""
    return sql.SQL("{}{}").format(sql.Placeholder(f"a_{column}"), sql.SQL(cast_of(column)))
