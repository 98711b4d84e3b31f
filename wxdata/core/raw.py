"""Plans for hand-written SQL: a scoped statement, and the disclosure record of its result.

A hand-written read records what it discloses as the generic reads do. PostgreSQL describes each
column of a result by the table column it was read from (the table's oid and the column's number;
none for a value the statement computed); every column read from the table of an entity whose
reads are recorded makes the read a disclosure of that entity, recorded before the rows are
returned, naming the rows and students whose ids the result carries and the columns it returned.
No record, no rows. Values computed in SQL from such columns (expressions, aggregates, a
function's result) carry no table and are not traced: a query returning them runs under
``audited``, which records what its value names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import attrs
import psycopg
from returns.result import Failure, Result, Success

from wxdata import _connstate
from wxdata.audit.log import detached_plan
from wxdata.audit.ownership import current_owner, disclosure_recorded
from wxdata.audit.record import (
    AuditAction,
)
from wxdata.audit.sql import record_insert
from wxdata.context import ExecutionContext
from wxdata.core.auditing import (
    _reads_audited,
    _record,
)
from wxdata.core.effects import Detached, Execute, Plan, Provenance, Rows
from wxdata.core.execute import (
    _Err,
    _run_named,
)
from wxdata.errors import DataError
from wxdata.errors import from_db_error as _db_error
from wxdata.schema.spec import Entity, registered, registered_count
from wxdata.tx.decorators import UNRECORDED
from wxdata.tx.scope import (
    AnyConn,
    current_scope,
    disclosed_on_lane_two,
)


def fetch(
    conn: AnyConn,
    ctx: ExecutionContext,
    sql: str,
    params: Mapping[str, Any] | None = None,
    *,
    entity: Entity[Any] | None = None,
    recorded: bool = False,
) -> Plan[Result[list[tuple[Any, ...]], DataError]]:
    """Run a hand-written, parameterised statement with the context applied; rows as tuples.

    For queries the generic functions do not cover (aggregates, joins). School scoping applies
    (row-level security). Columns returned from the table of an entity whose reads are recorded
    are recorded as a disclosure of that entity before the rows are returned, as a generic read
    records itself (see the module); no record, no rows. Under an ``audited`` decorator that owns
    the reads, the decorator records instead, and its record names the rows, students and
    columns found here too; ``recorded=True`` says the caller records the disclosure itself
    (:func:`record_disclosure`) before it returns anything.
    """
    try:
        rows = yield from _run_named(conn, ctx, entity.name if entity else "", sql, params or {})
        due: list[Disclosure] = []
        if rows and not recorded:
            columns: tuple[tuple[int, int], ...] = yield _PROVENANCE
            if any(oid for oid, _ in columns):
                sources = yield from _sources(conn, {oid for oid, _ in columns if oid})
                due = disclosed(ctx, columns, rows, sources)
                owner = current_owner()
                if due and owner is not None and owner.reads:  # its record names them
                    owner.disclosed.extend(due)
                    due = []
    except _Err as err:
        return Failure(err.error)
    for found in due:
        written = yield from record_disclosure(
            conn, ctx, found.entity, AuditAction.READ, ids=found.ids, subjects=found.subjects,
            fields=found.fields, metadata={"operation": "fetch"})
        match written:
            case Failure(error):
                return Failure(error)  # no record, no rows
    return Success(rows)


_PROVENANCE = Provenance()


@attrs.frozen(slots=True)
class Sources:
    """The registered entities' tables as one database numbers them: by table oid, the entity
    and its column names by column number (None: a table of no entity)."""

    count: int  # how many entities were registered when this was read
    tables: Mapping[int, tuple[Entity[Any], Mapping[int, str]] | None]


@attrs.frozen(slots=True)
class Disclosure:
    """What one hand-written result discloses of one entity: the ids of its rows and students
    the result holds, and the names of its columns returned."""

    entity: Entity[Any]
    ids: tuple[UUID, ...]
    subjects: tuple[UUID, ...]
    fields: tuple[str, ...]


_COLUMNS_SQL = (
    "SELECT c.oid::int8, t.name, a.attnum::int4, a.attname::text"
    " FROM unnest(%(tables)s::text[]) AS t(name)"
    " JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(t.name)"
    " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0"
    " AND NOT a.attisdropped"
)


def _sources(conn: AnyConn, oids: set[int]) -> Plan[Sources]:
    """The connection's :class:`Sources`, read from the catalogs on first need and again when an
    entity was registered since or a table is met that was not there when they were read (a table
    made since); one unnamed statement, so a transaction pooler is no obstacle."""
    state = _connstate.of(conn)
    known: Sources | None = state.sources
    if known is not None and known.count == registered_count() and oids <= known.tables.keys():
        return known
    count = registered_count()
    entities = {e.table: e for e in registered()}
    try:
        rows: Rows = yield Execute(_COLUMNS_SQL, {"tables": list(entities)}, False, "catalog")
    except psycopg.Error as exc:
        raise _Err(_db_error(exc)) from None
    columns: dict[int, tuple[Entity[Any], dict[int, str]]] = {}
    for oid, table, number, name in rows:
        columns.setdefault(oid, (entities[table], {}))[1][number] = name
    tables: dict[int, tuple[Entity[Any], Mapping[int, str]] | None] = dict(columns)
    tables.update((oid, None) for oid in oids if oid not in tables)
    kept = state.sources = Sources(count, tables)
    return kept


def disclosed(
    ctx: ExecutionContext, columns: Sequence[tuple[int, int]], rows: Rows, sources: Sources,
) -> list[Disclosure]:
    """What ``rows`` (of columns described by ``columns``) disclose of each entity whose reads
    the trail records for ``ctx`` (:func:`~wxdata.audit.ownership.disclosure_recorded`): the ids
    of its rows and students found in its key and subject columns, and the names of its columns
    returned. No I/O (the settings and the context decide which entities' reads are recorded, as
    for every read)."""
    by_entity: dict[Entity[Any], list[tuple[int, str]]] = {}
    for i, (oid, number) in enumerate(columns):
        source = sources.tables.get(oid) if oid else None
        if source is None:
            continue
        name = source[1].get(number)
        if name is not None:
            by_entity.setdefault(source[0], []).append((i, name))
    out: list[Disclosure] = []
    for spec, returned in by_entity.items():
        if not disclosure_recorded(spec, ctx):
            continue
        ids = _values(rows, [i for i, name in returned if name == spec.pk])
        subjects = _values(rows, [i for i, name in returned if name == spec.subject])
        fields = tuple(dict.fromkeys(name for _, name in returned))
        out.append(Disclosure(spec, ids, subjects, fields))
    return out


def _values(rows: Rows, at: list[int]) -> tuple[UUID, ...]:
    """The distinct UUIDs found in the columns ``at`` of ``rows``, in order."""
    if not at:
        return ()
    return tuple(dict.fromkeys(v for r in rows for i in at if isinstance(v := r[i], UUID)))


def record_disclosure(
    conn: AnyConn,
    ctx: ExecutionContext,
    entity: Entity[Any],
    action: AuditAction = AuditAction.READ,
    *,
    ids: tuple[UUID, ...] = (),
    subjects: tuple[UUID, ...] = (),
    fields: tuple[str, ...] = (),
    metadata: Mapping[str, Any] | None = None,
) -> Plan[Result[None, DataError]]:
    """Record that a hand-written read disclosed ``entity`` data about ``subjects``.

    Skipped when an ``audited`` decorator owns the call or reads are not audited. Inside a unit
    of work the record rides lane 1 and is replayed on lane 2 if the scope rolls back (the data
    was disclosed regardless); in a read-only scope it goes to lane 2 directly.
    """
    if not _reads_audited(entity, ctx):
        return Success(None)
    record = _record(ctx, entity, action, entity_ids=ids, subjects=subjects, fields=fields,
                     metadata=metadata)
    scope = current_scope(conn)
    if disclosed_on_lane_two(conn, scope):
        if (yield Detached(ctx, record)):
            return Success(None)
        return Failure(UNRECORDED)
    try:
        yield from _run_named(conn, ctx, "AuditLog", *record_insert(ctx, record))
    except _Err as err:
        return Failure(err.error)
    if scope is not None:
        scope.replay_on_rollback(lambda: detached_plan(ctx, record))
    return Success(None)
