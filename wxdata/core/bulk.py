"""The bulk create plan: validate every row, load them with binary COPY, one audit record.

All or nothing: a bad row anywhere refuses the whole batch, naming the row index, the field and the
rule, never the value, and nothing of it is written; the rows, the staging move under row security
and the BULK_CREATE record run in one transaction level (the caller's unit of work, or one opened
here), so the record commits with the rows or not at all; write events are delivered after COMMIT.

Rows are checked as the COPY takes them, so the client checks row n while the server stores the
rows before it (two cores at work where one waited for the other). The first row is checked
before anything is sent; a bad row later abandons the COPY and rolls its transaction level back
(a savepoint inside the caller's unit of work, which goes on).

Where the time goes, and what this module does about it (figures: ``benchmarks/results``):

- validation: :func:`~wxdata.schema.validate.create_checker` derives each column's checks once per
  entity; a row it cannot pass is re-checked by ``validate_create`` for the field errors; rows are
  checked while the COPY streams (above);
- COPY: binary format with the column types set once (``Copy.set_types``), so psycopg formats each
  row in C with one fixed dumper per column and the server parses no text;
- ids: drawn from one ``os.urandom`` call for the whole batch;
- the audit record: its id arrays are bound in binary (no per-id text formatting or quoting).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any
from uuid import UUID, uuid4

import attrs
import psycopg
from psycopg import sql as q
from psycopg.types.array import ListBinaryDumper
from returns.result import Failure, Result, Success

from wxdata.audit.record import AuditAction
from wxdata.audit.record import params as audit_params
from wxdata.audit.sql import insert_record
from wxdata.config import settings
from wxdata.context import ExecutionContext
from wxdata.core.auditing import _fail_write, _record, _writes_audited
from wxdata.core.effects import Copy, Detached, Execute, Plan
from wxdata.core.execute import MAX_BULK
from wxdata.core.steps import within
from wxdata.errors import DataError, FieldError, ValidationFailed
from wxdata.errors import from_db_error as _db_error
from wxdata.schema.spec import Column, Entity, Kind
from wxdata.schema.validate import create_checker, validate_create
from wxdata.tx.events import WriteEvent, announce_plan
from wxdata.tx.scope import AnyConn, Scope, role_facts, scope_plan

#: The binary COPY type of each SQL type the schema declares (``Column.sql_type`` without its
#: modifier), with the kind of value validation gives it. A column of any other type or kind makes
#: its load use text COPY (binary data must be exactly the column type's own).
_COPY_TYPES: Mapping[str, tuple[str, Kind]] = {
    "boolean": ("bool", Kind.BOOL),
    "smallint": ("int2", Kind.INT),
    "integer": ("int4", Kind.INT),
    "bigint": ("int8", Kind.INT),
    "double precision": ("float8", Kind.FLOAT),
    "numeric": ("numeric", Kind.DECIMAL),
    "date": ("date", Kind.DATE),
    "timestamp with time zone": ("timestamptz", Kind.DATETIME),
    "uuid": ("uuid", Kind.UUID),
    "uuid[]": ("uuid[]", Kind.UUID_ARRAY),
    "text": ("text", Kind.TEXT),
    "character varying": ("varchar", Kind.TEXT),
    "text[]": ("text[]", Kind.TEXT_ARRAY),
    "jsonb": ("jsonb", Kind.JSON),
}


class _BinaryIds(list[UUID]):
    """A list of UUIDs bound as a binary ``uuid[]`` (one copy of 16 bytes per id: no text)."""

    __slots__ = ()


psycopg.adapters.register_dumper(_BinaryIds, ListBinaryDumper)


def bulk_create(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], rows: Sequence[Mapping[str, Any]]
) -> Plan[Result[tuple[UUID, ...], DataError]]:
    """Load every row with COPY in one transaction, each checked as the COPY takes it: all or
    nothing.

    Returns the new ids in input order. A validation failure names the row index and field, and
    nothing of the batch is written. One BULK_CREATE audit record lists every new id and subject.
    """
    if not isinstance(rows, Sequence) or isinstance(rows, str | bytes):
        return Failure(ValidationFailed(entity.name, (FieldError("<rows>", "must be a list"),)))
    if not rows:
        return Failure(ValidationFailed(entity.name, (FieldError("<rows>", "must not be empty"),)))
    if len(rows) > MAX_BULK:
        return Failure(ValidationFailed(
            entity.name, (FieldError("<rows>", f"must have at most {MAX_BULK} rows"),)))
    load = _Rows(entity, ctx, rows)
    first = load.start()
    if isinstance(first, ValidationFailed):
        return (yield from _fail_write(conn, ctx, entity, AuditAction.BULK_CREATE, first))

    def inside(scope: Scope) -> Plan[None]:
        yield from _copy(conn, entity, first, load.streamed(first))
        for later, flat in load.later.values():  # complete: the first COPY took every row
            yield from _copy(conn, entity, later, later.rows(flat))
        if _writes_audited():
            yield from _write_bulk_record(ctx, entity, scope, load.ids, load.subjects())
        yield from announce_plan(
            conn, WriteEvent(entity.name, "BULK_CREATE", load.ids, load.subjects()))

    try:
        yield from within(scope_plan(conn, ctx), inside)
    except _BadRow as bad:  # the COPY was abandoned and its transaction level rolled back
        return (yield from _fail_write(conn, ctx, entity, AuditAction.BULK_CREATE, bad.failure))
    except psycopg.Error as exc:
        return (yield from _fail_write(conn, ctx, entity, AuditAction.BULK_CREATE,
                                       _db_error(exc, entity.name)))
    return Success(load.ids)


def _copy(conn: AnyConn, entity: Entity[Any], load: _Load,
          rows: Iterator[tuple[Any, ...]]) -> Plan[None]:
    """One COPY of ``rows`` with ``load``'s columns (staged and moved under row security)."""
    target, staged = yield from _bulk_target(conn, entity, load.columns, load.binary)
    if load.binary:
        yield Copy(target, rows, tuple(load.types))
    else:
        yield Copy(target, load.text(rows))
    if staged is not None:
        yield Execute(staged)


#: A COPY: its load and the values of its rows, one after the other in one list (one object for
#: the garbage collector to track, where a tuple per row would be thousands).
_Batch = tuple["_Load", list[Any]]


class _BadRow(Exception):
    """A row failed its checks while its COPY was streaming: the COPY is abandoned.

    Its text reaches the server (psycopg ends the COPY with it), so it names nothing of the row.
    """

    def __init__(self, failure: ValidationFailed) -> None:
        super().__init__("a row failed validation")
        self.failure = failure


class _Rows:
    """The rows of one bulk create, checked in input order as the first COPY takes them.

    Rows naming the same columns as the first row go to the first COPY as soon as each is checked;
    rows naming other columns are checked on the way and kept, their values in one list per set of
    columns (``later``: no clean dict or tuple per row is kept), for a COPY of their own after the
    first. So a column a row leaves out takes its default, never NULL, and the ids (drawn before,
    in input order) and subjects are those of every row once the first COPY has ended.
    """

    __slots__ = ("_check", "_ctx", "_entity", "_first", "_names", "_rows", "_subject", "_subjects",
                 "ids", "later")

    def __init__(self, entity: Entity[Any], ctx: ExecutionContext,
                 rows: Sequence[Mapping[str, Any]]) -> None:
        self._entity, self._ctx, self._rows = entity, ctx, rows
        self._check = create_checker(entity)
        self._subject = entity.subject if entity.subject != entity.pk else None
        self._subjects: list[Any] = []
        self._first: dict[str, Any] = {}
        self._names: frozenset[str] = frozenset()
        self.ids = _new_ids(len(rows))
        self.later: dict[frozenset[str], _Batch] = {}

    def _clean(self, index: int, values: Mapping[str, Any]) -> dict[str, Any]:
        clean = self._check(values)
        if clean is None:
            checked = _recheck(self._entity, index, values)
            if isinstance(checked, ValidationFailed):
                raise _BadRow(checked)
            clean = checked
        return clean

    def start(self) -> _Load | ValidationFailed:
        """The first COPY's load, from the first row's columns; or the first row's errors (then
        nothing is sent)."""
        try:
            self._first = self._clean(0, self._rows[0])
        except _BadRow as bad:
            return bad.failure
        self._names = frozenset(self._first)
        return _Load.of(self._entity, self._ctx, self._names)

    def streamed(self, load: _Load) -> Iterator[tuple[Any, ...]]:
        """The first COPY's rows, each checked as it is taken (:class:`_BadRow` on a bad one)."""
        names, ids, entity, ctx, subject = (self._names, self.ids, self._entity, self._ctx,
                                            self._subject)
        self._subjects.clear()  # a second pass (a COPY begun again) counts every row once
        self.later.clear()
        for index, values in enumerate(self._rows):
            clean = self._clean(index, values) if index else self._first
            if subject is not None:
                self._subjects.append(clean.get(subject))
            if clean.keys() == names:
                yield (ids[index], *map(clean.get, load.values), *load.managed)
                continue
            key = frozenset(clean)
            batch = self.later.get(key)
            if batch is None:
                batch = self.later[key] = (_Load.of(entity, ctx, key), [])
            other, flat = batch
            flat.append(ids[index])
            flat.extend(map(clean.get, other.values))
            flat.extend(other.managed)

    def subjects(self) -> tuple[UUID, ...]:
        """The distinct subjects of the rows, in input order (every row's, once streamed)."""
        if self._subject is None:
            return self.ids if self._entity.subject == self._entity.pk else ()
        return tuple(s for s in dict.fromkeys(self._subjects) if s is not None)


def _recheck(
    entity: Entity[Any], index: int, values: Mapping[str, Any]
) -> dict[str, Any] | ValidationFailed:
    """``validate_create``'s word on a row the create check did not pass (it passes only values
    already in their exact types): the clean row, or its errors under the row's index."""
    checked = validate_create(entity, values)
    match checked:
        case Success(clean):
            row: dict[str, Any] = clean
            return row
        case _:
            return ValidationFailed(entity.name, tuple(
                FieldError(f"[{index}].{e.field}", e.rule) for e in checked.failure().errors))


@attrs.frozen(slots=True)
class _Load:
    """The COPY of one batch: its columns (id first, then values, then managed values) and types."""

    columns: tuple[str, ...]
    values: tuple[str, ...]
    managed: tuple[Any, ...]
    types: tuple[str, ...]
    binary: bool
    json_at: tuple[int, ...]

    @staticmethod
    def of(entity: Entity[Any], ctx: ExecutionContext, names: Iterable[str]) -> _Load:
        """The load of rows using ``names`` (validated: writable columns of the entity)."""
        managed_names = tuple(dict.fromkeys(
            n for kind in ("created_by", "updated_by") if (n := entity.managed(kind)) is not None))
        wanted = set(names) - {entity.pk, *managed_names}
        values = tuple(n for n in entity.by_name if n in wanted)
        columns = (entity.pk, *values, *managed_names)
        by_name = entity.by_name
        types = tuple(_copy_type(by_name[c]) for c in columns)
        return _Load(
            columns=columns,
            values=values,
            managed=tuple(ctx.user_id for _ in managed_names),
            types=tuple(t or "" for t in types),
            binary=all(types),
            json_at=tuple(i for i, c in enumerate(values) if by_name[c].kind is Kind.JSON),
        )

    def rows(self, flat: list[Any]) -> Iterator[tuple[Any, ...]]:
        """The COPY rows of a batch's values, in order."""
        return zip(*[iter(flat)] * len(self.columns), strict=True)

    def text(self, rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
        """``rows`` for a text COPY, which takes JSON as its text."""
        if not self.json_at:
            return rows
        at = frozenset(i + 1 for i in self.json_at)
        return (tuple(json.dumps(v) if i in at and v is not None else v for i, v in enumerate(row))
                for row in rows)


def _copy_type(column: Column) -> str | None:
    """The binary COPY type of the column, or None when its values cannot go in binary."""
    array = column.sql_type.endswith("[]")
    base = column.sql_type.removesuffix("[]").split("(", 1)[0].strip() + ("[]" if array else "")
    found = _COPY_TYPES.get(base)
    return found[0] if found is not None and found[1] is column.kind else None


#: Version 4 UUIDs: clear the version and variant bits of 128 random bits, then set them.
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_V4_SET = (4 << 76) | (0x8000 << 48)


def _new_ids(count: int) -> tuple[UUID, ...]:
    """``count`` random (version 4) UUIDs from one read of the system's random source."""
    pool = os.urandom(16 * count)
    number = int.from_bytes
    return tuple(UUID(int=number(pool[i:i + 16]) & _V4_CLEAR | _V4_SET)
                 for i in range(0, 16 * count, 16))


def _write_bulk_record(
    ctx: ExecutionContext, entity: Entity[Any], scope: Scope, ids: tuple[UUID, ...],
    subjects: tuple[UUID, ...],
) -> Plan[None]:
    """The BULK_CREATE record, in the load's transaction; its id arrays are bound in binary."""
    one_subject = subjects[0] if len(subjects) == 1 else None
    record = attrs.evolve(
        _record(ctx, entity, AuditAction.BULK_CREATE, metadata={"count": len(ids)}),
        entity_id=ids[0] if len(ids) == 1 else None, entity_ids=ids,
        subject_student_id=one_subject, subject_ids=subjects,
    )
    if scope.read_only:  # a read-only unit of work: COPY was refused before this point
        yield Detached(ctx, record)
        return
    # the id arrays are left out of the text parameters (rendering 10,000 ids as array text costs
    # milliseconds) and bound in binary instead
    params = audit_params(ctx, attrs.evolve(record, entity_ids=(), subject_ids=()))
    params["a_entity_ids"] = _BinaryIds(ids)
    if subjects:  # an empty binary array would carry no element type the cast can use
        params["a_subject_ids"] = _BinaryIds(subjects)
    yield Execute(*insert_record(params), settings().prepare, "audit")


def _bulk_target(
    conn: AnyConn, entity: Entity[Any], columns: Sequence[str], binary: bool
) -> Plan[tuple[q.Composed, q.Composed | None]]:
    """The COPY statement of a bulk load, and the INSERT that moves staged rows (or None).

    PostgreSQL refuses ``COPY FROM`` into a table whose row-level security applies to the role,
    so such a role copies into a temporary table dropped at COMMIT and moves the rows with one
    ``INSERT ... SELECT`` (the policy checks every row). A role that bypasses row security (a
    SYSTEM load on the owner's connection) copies into the table directly.
    """
    table = q.Identifier(entity.table)
    cols = q.SQL(",").join(q.Identifier(c) for c in columns)
    copy = q.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)" if binary else "COPY {} ({}) FROM STDIN")
    if (yield from role_facts(conn)).privileged:
        return copy.format(table, cols), None
    stage = q.Identifier(f"wx_bulk_{uuid4().hex[:12]}")
    yield Execute(q.SQL(
        "CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            stage, cols, table))
    return (copy.format(stage, cols),
            q.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(table, cols, cols, stage))
