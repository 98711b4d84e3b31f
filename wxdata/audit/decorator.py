"""``audited``: the audit of any ``(conn, ctx, ...) -> Result`` function, as one decorator.

For hand-written queries and composed operations (the generic functions audit themselves). The
decorator *owns* the audit of the call (:mod:`wxdata.audit.ownership`): exactly one record per
call, whatever the call does beneath it.

- **Disclosures** (READ, VIEW, EXPORT, PRINT) of an entity whose reads are audited (the spec says
  PHI or education record): reads made beneath are not recorded by the generic functions; on
  ``Success`` one record lists every entity id and subject (student) id found in the returned value
  (an attrs row, a ``Page``/``KeysetPage``, a list or tuple of rows, dict rows, nested one level; or
  what the ``ids=``/``subjects=`` callables extract) and the fields disclosed (the row type's
  columns). A call that returns nothing discloses nothing and records nothing. Lanes: inside a unit
  of work, the same transaction, replayed on lane 2 if it rolls back; in a read-only one, lane 2;
  outside one, a plain INSERT. If the record cannot be written the call fails (fail closed).
- **Changes** (CREATE, UPDATE, DELETE, RESTORE, BULK_*, IMPORT): reads beneath record themselves;
  writes made by the generic functions beneath record themselves, so the decorator records only
  when none did (hand-written SQL), and then also announces the change as the generic writes do
  (:mod:`wxdata.tx.events`): the unit of work is marked written for the entity and, after COMMIT,
  caches drop the entity's lists and the rows and students the returned value names. Called
  outside a unit of work, the decorator opens one around the call, adopting the isolation and
  retries of the ``transactional`` function it wraps (which then runs in that transaction without
  a savepoint), so the change and its record commit together.
- **Failures**: the ``Failure`` is returned unchanged after one ``success=false`` record on lane 2
  (ACCESS_DENIED for ``Forbidden``), unless a generic function beneath already recorded it there.

Order contract: ``@audited`` outermost, then ``@cached``, then ``@transactional``, then the query.
A cache hit is still a disclosure: it comes back through the decorator and is recorded.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar
from uuid import UUID

import attrs
import psycopg
from returns.result import Failure, Result, Success

from wxdata.audit.log import (
    CHANGES,
    DISCLOSURES,
    DueRecord,
    build_record,
    due_plan,
    due_record,
    due_template,
    surviving_plan,
)
from wxdata.audit.ownership import AuditOwner, disclosure_recorded, owning
from wxdata.audit.record import AuditAction
from wxdata.audit.sql import RecordTemplate
from wxdata.config import settings
from wxdata.context import ExecutionContext
from wxdata.core.drive import run
from wxdata.core.effects import Call, Plan
from wxdata.errors import DataError
from wxdata.query.paging import KeysetPage, Page
from wxdata.schema.spec import Entity, registered, registered_count
from wxdata.tx.decorators import TxOptions, scope_run_plan, tx_options
from wxdata.tx.events import WriteEvent, announce_plan
from wxdata.tx.scope import AnyConn, current_scope

log = logging.getLogger("wxdata.audit")

P = ParamSpec("P")
T = TypeVar("T")
Conn = psycopg.Connection[Any]
Extract = Callable[[Any], Iterable[UUID | None]]
Fn = Callable[Concatenate[Conn, ExecutionContext, P], Result[T, DataError]]

_WARNED: set[str] = set()
_ROW_ENTITIES: dict[type, Entity[Any]] = {}
_ROW_ENTITIES_SIZE = [0]


def entity_of_row(row_type: type) -> Entity[Any] | None:
    """The registered entity whose rows are ``row_type`` instances (None: no such entity)."""
    if registered_count() != _ROW_ENTITIES_SIZE[0]:
        entities = registered()
        _ROW_ENTITIES.clear()
        _ROW_ENTITIES.update({e.row_type: e for e in entities})
        _ROW_ENTITIES_SIZE[0] = len(entities)
    return _ROW_ENTITIES.get(row_type)


def rows_in(value: Any) -> list[Any]:
    """The rows of a returned value: pages, lists and tuples opened (named tuples are rows)."""
    out: list[Any] = []

    def walk(v: Any, depth: int) -> None:
        if v is None:
            return
        if isinstance(v, Page | KeysetPage):
            for item in v.data:
                walk(item, depth + 1)
        elif isinstance(v, tuple) and hasattr(v, "_fields"):  # a named-tuple row
            out.append(v)
        elif isinstance(v, list | tuple | set | frozenset) and depth < 3:
            for item in v:
                walk(item, depth + 1)
        else:
            out.append(v)

    walk(value, 0)
    return out


def _get(row: Any, name: str | None) -> Any:
    if name is None:
        return None
    if isinstance(row, Mapping):
        return row.get(name)
    return getattr(row, name, None)


@attrs.frozen(slots=True)
class Found:
    """What a returned value discloses: entity ids, subject ids, field names, and whether any."""

    ids: tuple[UUID, ...]
    subjects: tuple[UUID, ...]
    fields: tuple[str, ...]
    anything: bool


def extract(
    entity: Entity[Any], value: Any, *, ids: Extract | None = None,
    subjects: Extract | None = None, fields: Sequence[str] | None = None,
) -> Found:
    """Entity ids, subject ids and fields of ``value``'s rows (attrs, dataclass, named tuple, dict).

    Rows of *another* registered entity contribute their own subject (a ``Student`` row discloses
    its student) but never count as ids of ``entity``. One row of ``entity`` itself (a by-id read)
    is read directly, with the same answer as the walk.
    """
    if ids is None and subjects is None and fields is None and _own_row(entity, value):
        return _one_row(entity, value)
    rows = rows_in(value)
    found_ids: dict[UUID, None] = {}
    found_subjects: dict[UUID, None] = {}
    names: dict[str, None] = {}
    for row in rows:
        if isinstance(row, Mapping):
            spec: Entity[Any] = entity
            names.update(dict.fromkeys(str(k) for k in row))
        elif attrs.has(type(row)):
            spec = entity_of_row(type(row)) or entity
            names.update(dict.fromkeys(a.name for a in attrs.fields(type(row))))
        elif isinstance(row, tuple) and hasattr(row, "_fields"):
            spec = entity
            names.update(dict.fromkeys(str(f) for f in row._fields))
        elif dataclasses.is_dataclass(row) and not isinstance(row, type):
            spec = entity
            names.update(dict.fromkeys(f.name for f in dataclasses.fields(row)))
        else:
            continue
        if spec is entity:
            rid = _get(row, entity.pk)
            if isinstance(rid, UUID):
                found_ids[rid] = None
        sid = _get(row, spec.subject)
        if isinstance(sid, UUID):
            found_subjects[sid] = None
    if ids is not None:
        found_ids = dict.fromkeys(i for i in ids(value) if isinstance(i, UUID))
    if subjects is not None:
        found_subjects = dict.fromkeys(s for s in subjects(value) if isinstance(s, UUID))
    anything = bool(rows) or bool(found_ids) or bool(found_subjects)
    return Found(tuple(found_ids), tuple(found_subjects),
                 tuple(fields) if fields is not None else tuple(names), anything)


def _with_beneath(found: Found, entity: Entity[Any], beneath: Sequence[Any]) -> Found:
    """``found`` and what hand-written reads beneath the call disclosed
    (:class:`wxdata.core.raw.Disclosure`): the rows and columns of ``entity``, the students of
    every entity's rows. A value that holds nothing still discloses nothing."""
    if not beneath or not found.anything:
        return found
    ids, subjects = dict.fromkeys(found.ids), dict.fromkeys(found.subjects)
    fields = dict.fromkeys(found.fields)
    for disclosed in beneath:
        if disclosed.entity is entity:
            ids.update(dict.fromkeys(disclosed.ids))
            fields.update(dict.fromkeys(disclosed.fields))
        subjects.update(dict.fromkeys(disclosed.subjects))
    return Found(tuple(ids), tuple(subjects), tuple(fields), True)


def _own_row(entity: Entity[Any], value: Any) -> bool:
    """Whether ``value`` is one row of ``entity`` itself (an instance of its row class, which no
    other registered entity claims): read directly, with the same answer as the walk."""
    if type(value) is not entity.row_type:
        return False
    claimed = entity_of_row(entity.row_type)
    return claimed is None or claimed is entity  # by identity: no entity's __eq__ called


def _one_row(entity: Entity[Any], row: Any) -> Found:
    """What one row of ``entity`` discloses: its id, its subject, its type's fields (``row`` is
    an instance of the entity's row class, never a mapping: its columns are attributes; one it
    lacks, as in the general walk, names nothing)."""
    ids, subjects = _row_names(entity, row)
    return Found(ids, subjects, _field_names(entity), True)


def _row_names(entity: Entity[Any], row: Any) -> tuple[tuple[UUID, ...], tuple[UUID, ...]]:
    """The id and the student one row of ``entity`` names (each empty when not a UUID)."""
    rid = getattr(row, entity.pk, None)
    subject = entity.subject
    sid = None if subject is None else getattr(row, subject, None)
    return (rid,) if isinstance(rid, UUID) else (), (sid,) if isinstance(sid, UUID) else ()


class RowReads:
    """The READ records owed for single rows of ``entity`` served under fixed ``metadata`` (a
    cache's hits on a by-id read): each the record :func:`extract` and
    :func:`~wxdata.audit.log.due_read` give for the same row, its template looked up once per
    break-glass flag instead of on every row."""

    __slots__ = ("_entity", "_metadata", "_templates")

    def __init__(self, entity: Entity[Any], metadata: tuple[tuple[str, str], ...]) -> None:
        self._entity = entity
        self._metadata = metadata
        self._templates: list[RecordTemplate | None] = [None, None]  # by ctx.is_break_glass

    def due(self, ctx: ExecutionContext, row: Any) -> DueRecord | None:
        """The record ``ctx`` owes for ``row`` when it is one row of the entity read directly (as
        :func:`extract` reads it); None for any other value (the general walk decides). Whether a
        record is owed at all is the caller's question (:func:`reads_recorded`)."""
        entity = self._entity
        if not _own_row(entity, row):
            return None
        flag = ctx.is_break_glass
        template = self._templates[flag]
        if template is None:
            template = due_template(ctx, entity, AuditAction.READ, _field_names(entity),
                                    self._metadata)
            self._templates[flag] = template
        ids, subjects = _row_names(entity, row)
        return DueRecord(template, ctx, ids, subjects)


@functools.lru_cache(maxsize=1024)
def _field_names(entity: Entity[Any]) -> tuple[str, ...]:
    """The field names of the entity's row type, in order (what one of its rows discloses)."""
    return tuple(a.name for a in attrs.fields(entity.row_type))


def _success_record(
    ctx: ExecutionContext, entity: Entity[Any], action: AuditAction, found: Found, label: str
) -> DueRecord:
    """The record of a call that succeeded, from its memoised template (what it names, the
    fields it disclosed and the operation's label: :func:`build_record`'s record)."""
    return due_record(ctx, entity, action, found.ids, found.subjects,
                      found.fields if action in DISCLOSURES else (), (("operation", label),))


def _record_failure(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], action: AuditAction,
    error: DataError, label: str,
) -> Plan[None]:
    denied = error.code == "FORBIDDEN"
    record = build_record(
        ctx, entity, AuditAction.ACCESS_DENIED if denied else action, success=False,
        error=error, metadata={"operation": label, **({"attempted": action.value} if denied else {})},
    )
    yield from surviving_plan(conn, ctx, record)


def _own_records(owner: AuditOwner | None) -> int:
    """Success-path write records written beneath the owner (lane-2 failure records excluded)."""
    if owner is None:
        return 0
    return owner.writes_recorded - owner.detached_recorded


@attrs.frozen(slots=True)
class Audit:
    """What one ``audited`` declaration records (shared by the sync and async decorators)."""

    entity: Entity[Any]
    action: AuditAction
    label: str
    declared: TxOptions | None
    ids: Extract | None = None
    subjects: Extract | None = None
    fields: Sequence[str] | None = None

    @property
    def disclosure(self) -> bool:
        """Whether the action discloses data (READ, VIEW, EXPORT, PRINT...)."""
        return self.action in DISCLOSURES

    def found(self, value: Any) -> Found:
        """What a call that returned ``value`` names: the entity's rows, their students, the
        fields (:func:`extract` with the declaration's extractors)."""
        return extract(self.entity, value, ids=self.ids, subjects=self.subjects,
                       fields=self.fields)

    def record_success(
        self, conn: AnyConn, ctx: ExecutionContext, value: Any, found: Found | None = None,
    ) -> Plan[Result[None, DataError]]:
        """The success record of a call that returned ``value`` (none when nothing disclosed);
        ``found``: what :meth:`found` answers for it, when already known."""
        if found is None:
            found = self.found(value)
        if self.disclosure and not found.anything:
            return Success(None)
        if not (found.ids or found.subjects) and self.label not in _WARNED:
            _WARNED.add(self.label)  # the operation name only: never a value
            log.warning("audited %s: no entity or subject ids found in the result; pass "
                        "ids=/subjects= so the record names its rows and students%s", self.label,
                        "" if self.disclosure else " (and the cache drops the rows changed)")
        due = _success_record(ctx, self.entity, self.action, found, self.label)
        return (yield from due_plan(conn, ctx, due))

    def announce(self, conn: AnyConn, found: Found) -> Plan[None]:
        """Announce a hand-written change as the generic writes announce theirs: the unit of
        work is marked written for the entity, and after COMMIT the cache drops the entity's
        lists and the rows and students ``found`` names."""
        yield from announce_plan(
            conn, WriteEvent(self.entity.name, self.action.value, found.ids, found.subjects))

    def call(
        self, conn: AnyConn, ctx: ExecutionContext, fn: Callable[[], Any]
    ) -> Plan[Result[T, DataError]]:
        """The plan of one audited call: ``fn()`` answers the wrapped function's Result (or an
        awaitable of it, under the async driver)."""
        config = settings()
        result: Result[T, DataError]
        if not config.audit_enabled:
            result = yield Call(fn)
            return result
        entity, action, label = self.entity, self.action, self.label
        if self.disclosure:
            if not disclosure_recorded(entity, ctx):  # the rule the reads beneath follow
                result = yield Call(fn)
                return result
            with owning(label, reads=True) as owner:
                result = yield Call(fn)
            match result:
                case Success(value):
                    found = _with_beneath(self.found(value), entity, owner.disclosed)
                    written = yield from self.record_success(conn, ctx, value, found)
                    return written.bind(lambda _: result)  # fail closed: no record, no data
                case Failure(error) if owner.detached_recorded == 0:
                    yield from _record_failure(conn, ctx, entity, action, error, label)
            return result

        if action not in CHANGES or current_scope(conn) is not None:
            return (yield from self._change(conn, ctx, fn, []))

        last: list[AuditOwner] = []
        options = self.declared or TxOptions()
        result = yield from scope_run_plan(
            conn, ctx, lambda: self._change(conn, ctx, fn, last, fail=False), options,
            adopt=self.declared,
        )
        match result:
            case Failure(error) if not last or last[0].detached_recorded == 0:
                yield from _record_failure(conn, ctx, entity, action, error, label)
        return result

    def _change(
        self, conn: AnyConn, ctx: ExecutionContext, fn: Callable[[], Any],
        last: list[AuditOwner], *, fail: bool = True,
    ) -> Plan[Result[T, DataError]]:
        with owning(self.label, reads=False) as owner:
            last[:] = [owner]
            result: Result[T, DataError] = yield Call(fn)
        match result:
            case Success(value) if _own_records(owner) == 0:  # hand-written: recorded here
                found = self.found(value)
                if self.action in CHANGES:
                    yield from self.announce(conn, found)
                written = yield from self.record_success(conn, ctx, value, found)
                return written.bind(lambda _: result)  # fail closed: no record, no success
            case Failure(error) if fail and owner.detached_recorded == 0:
                yield from _record_failure(conn, ctx, self.entity, self.action, error, self.label)
        return result


def audited(
    entity: Entity[Any],
    action: AuditAction = AuditAction.READ,
    *,
    ids: Extract | None = None,
    subjects: Extract | None = None,
    fields: Sequence[str] | None = None,
    name: str | None = None,
) -> Callable[[Fn[P, T]], Fn[P, T]]:
    """Audit every call of a ``(conn, ctx, ...) -> Result`` function (see the module docstring).

    ``ids``/``subjects``: callables extracting entity / student ids from the returned value when
    its rows do not carry them; ``fields``: the fields disclosed when not the rows' own; ``name``:
    the operation recorded in the record's metadata (default: the function's qualified name).
    """
    action = AuditAction(action)

    def decorate(fn: Fn[P, T]) -> Fn[P, T]:
        audit = Audit(entity, action, name or f"{fn.__module__}.{fn.__qualname__}",
                      tx_options(fn), ids, subjects, fields)

        @functools.wraps(fn)
        def wrapper(
            conn: Conn, ctx: ExecutionContext, /, *args: P.args, **kwargs: P.kwargs
        ) -> Result[T, DataError]:
            return run(conn, audit.call(conn, ctx, lambda: fn(conn, ctx, *args, **kwargs)))

        return wrapper

    return decorate
