"""The plans of the generic data functions: every decision of a read, write, bulk or raw call.

Each public function here is a plan (:mod:`wxdata.core`) taking ``(conn, ctx, entity, ...)`` and
answering a ``Result``; the connection is only a key to its state (open scope, role facts), never
used for I/O. :mod:`wxdata.crud` runs them on sync connections, :mod:`wxdata.aio` on async ones.

Audit rides with the data: a write's record, or a PHI read's disclosure record, is part of the same
SQL statement (a data-modifying CTE), so outside a unit of work one round trip is atomic and inside
one the record commits or rolls back with the change. Reads are disclosures even when their
transaction later rolls back, so a rolled-back scope replays its read records on audit lane 2.
Every committed write is announced to :mod:`wxdata.tx.events` (cache invalidation) after COMMIT.
"""

from __future__ import annotations

import functools
import json
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID, uuid4

import attrs
import psycopg
from psycopg import sql as q
from psycopg.types.json import Jsonb
from returns.result import Failure, Result, Success

from wxdata.audit import denials
from wxdata.audit.log import detached_plan
from wxdata.audit.ownership import note_write, reads_owned
from wxdata.audit.record import (
    AuditAction,
    AuditRecord,
    compliance_of,
    insert_sql,
    severity_of,
)
from wxdata.audit.record import params as audit_params
from wxdata.audit.redact import redact_row
from wxdata.bulk import BulkOutcome
from wxdata.config import settings
from wxdata.context import ExecutionContext
from wxdata.core import ride
from wxdata.core.effects import Copy, Detached, Execute, Pipeline, Plan, Rows, Stream
from wxdata.core.steps import within
from wxdata.errors import (
    Conflict,
    DataError,
    FieldError,
    InvalidQuery,
    NotFound,
    Unavailable,
    ValidationFailed,
)
from wxdata.errors import from_db_error as _db_error
from wxdata.query import compiler
from wxdata.query.filters import Node, bind, parse
from wxdata.query.paging import (
    DEFAULT_LIMIT,
    KeysetPage,
    Page,
    SortSpec,
    check_page,
    check_projection,
    cursor_binding,
    make_cursor,
    parse_sort,
    read_cursor,
)
from wxdata.schema.spec import Entity, Kind, Validator, validator_reads
from wxdata.schema.validate import merged_view, validate_changes, validate_create
from wxdata.tx.decorators import UNRECORDED, TxOptions, scope_run_plan
from wxdata.tx.events import WriteEvent, announce_write
from wxdata.tx.scope import (
    POOLER_UNSAFE,
    AnyConn,
    Scope,
    ScopeError,
    check_context,
    current_scope,
    may_name_statements,
    prepare_plan,
    role_facts,
    scope_plan,
)

R = TypeVar("R")
T = TypeVar("T")
Where = Mapping[str, Any] | Node | None

MAX_BULK = 100_000
#: ``fields_disclosed`` of a read that returned every readable column of its entity.
ALL_FIELDS = ("*",)
STREAM_BATCH = 1000
_NO_RETRY = TxOptions(retries=0)

class _Err(Exception):
    """Internal: carries a DataError out of a nested helper to the function's Result boundary."""

    def __init__(self, error: DataError) -> None:
        super().__init__(error.code)
        self.error = error


def _run(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], sql: str, params: Mapping[str, Any]
) -> Plan[Rows]:
    """Execute one prepared statement and fetch all rows; DB errors become _Err.

    Inside a unit of work the context is already applied. Outside one, a role subject to
    row-level security sends the context's ``set_config(..., true)`` and the statement in one
    pipeline (one implicit transaction, one round trip).
    """
    return (yield from _run_named(conn, ctx, entity.name, sql, params))


def _run_named(
    conn: AnyConn, ctx: ExecutionContext, name: str, sql: str, params: Mapping[str, Any]
) -> Plan[Rows]:
    try:
        config = settings()
        if may_name_statements(conn, config):
            raise _Err(Unavailable(reason=POOLER_UNSAFE))
        prepare = config.prepare
        if current_scope(conn) is None:  # prepare_plan checks the context too
            prepared = yield from prepare_plan(conn, ctx)
            # A privileged role needs no scope, but behind a pooler the timeouts ride the context.
            # Context and statement then go in one pipeline: statements pipelined before a Sync
            # run in one implicit transaction, so ``set_config(..., true)`` ends with the statement.
            if not prepared.privileged or config.transaction_pooled:
                rows: Rows = yield Pipeline((
                    Execute(prepared.sql, prepared.params, prepare, "context"),
                    Execute(sql, params, prepare),
                ))
                return rows
        else:
            check_context(ctx)
        rows = yield Execute(sql, params, prepare)
        return rows
    except psycopg.Error as exc:
        raise _Err(_db_error(exc, name)) from None


def _uuid(value: object, field: str = "id") -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str) and len(value) <= 64:
        try:
            return UUID(value)
        except ValueError:
            pass
    raise _Err(InvalidQuery(field=field, rule="must be a UUID"))


# --- audit plumbing -------------------------------------------------------------------------


def _reads_audited(entity: Entity[Any], ctx: ExecutionContext | None = None) -> bool:
    """Whether this read records its own disclosure (not when an ``audited`` decorator owns it).

    A break-glass read is always recorded (when auditing is on), PHI or not: emergency access is
    accounted for in full.
    """
    s = settings()
    if not s.audit_enabled or reads_owned():
        return False
    if ctx is not None and ctx.is_break_glass:
        return True
    return s.audit_phi_access and _audit_reads(entity)


@functools.lru_cache(maxsize=1024)
def _audit_reads(entity: Entity[Any]) -> bool:
    """``entity.audit_reads``, computed once per entity (the spec is frozen)."""
    return entity.audit_reads


def _writes_audited() -> bool:
    """Whether writes record themselves (always, when auditing is on); tells the owner."""
    if settings().audit_enabled:
        note_write()
        return True
    return False


def _record(
    ctx: ExecutionContext,
    entity: Entity[Any],
    action: AuditAction,
    *,
    success: bool = True,
    error: DataError | None = None,
    fields: tuple[str, ...] = (),
    entity_ids: tuple[UUID, ...] = (),
    subjects: tuple[UUID, ...] = (),
    metadata: Mapping[str, Any] | None = None,
) -> AuditRecord:
    return AuditRecord(
        action=action,
        entity_type=entity.name,
        entity_id=entity_ids[0] if len(entity_ids) == 1 else None,
        entity_ids=entity_ids,
        subject_student_id=subjects[0] if len(set(subjects)) == 1 else None,
        subject_ids=tuple(dict.fromkeys(subjects)),
        fields_disclosed=ALL_FIELDS if fields == entity.column_names else fields,
        is_phi=entity.is_phi,
        compliance_type=compliance_of(entity),
        severity=severity_of(action, entity, ctx, success),
        success=success,
        error_message=error.code if error is not None else None,
        metadata=metadata,
    )


@functools.lru_cache(maxsize=2048)
def _riding(
    ctx: ExecutionContext, entity: Entity[Any], action: AuditAction, fields: tuple[str, ...] = ()
) -> tuple[AuditRecord, Mapping[str, Any]]:
    """The record and bound parameters of a riding statement: ids and subjects come from SQL,
    so they depend only on who acts, the entity, the action and the fields (memoised per call
    shape: several calls of one request reuse them)."""
    record = _record(ctx, entity, action, fields=fields)
    return record, types.MappingProxyType(_ride_params(ctx, record))


def _ride_params(ctx: ExecutionContext, record: AuditRecord) -> dict[str, Any]:
    return audit_params(ctx, record)


def _subjects(entity: Entity[Any], rows: Iterable[Any]) -> tuple[UUID, ...]:
    if entity.subject is None:
        return ()
    out = []
    for r in rows:
        value = r.get(entity.subject) if isinstance(r, Mapping) else getattr(r, entity.subject)
        if value is not None:
            out.append(value)
    return tuple(out)


def _ids(entity: Entity[Any], rows: Iterable[Any]) -> tuple[UUID, ...]:
    return tuple(r[entity.pk] if isinstance(r, Mapping) else getattr(r, entity.pk) for r in rows)


def _outside_scope(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], ids: tuple[UUID, ...]
) -> Plan[bool]:
    """After a miss: whether any of ``ids`` exists outside the caller's school scope.

    Asked only when row-level security could have hidden the rows (an RLS-subject connection, a
    school-scoped entity, a non-bypassing context). A failure to ask counts as "no" (the caller's
    answer is NotFound either way).
    """
    if not ids or not denials.may_hide(entity, ctx):
        return False
    if (yield from role_facts(conn)).privileged:
        return False
    try:
        rows = yield from _run_named(conn, ctx, entity.name, denials.OUTSIDE_SCOPE_SQL,
                                     denials.check_params(entity, ids))
    except _Err:
        return False
    return bool(rows and rows[0][0])


def _note_scope_denial(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], action: AuditAction,
    ids: tuple[UUID, ...],
) -> Plan[bool]:
    """Record ACCESS_DENIED on lane 2 when ``ids`` missed because they are outside the scope."""
    if not settings().audit_enabled:
        return False
    if not (yield from _outside_scope(conn, ctx, entity, ids)):
        return False
    yield Detached(ctx, denials.denial_record(entity, action, ids))
    return True


def _fail_write(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], action: AuditAction,
    error: DataError, entity_id: UUID | None = None,
) -> Plan[Failure[DataError]]:
    """Record a failed or denied write on lane 2 (it survives the rollback), then fail.

    A NotFound for an id outside the caller's school scope is recorded as ACCESS_DENIED
    (reason "outside school scope"); the caller still gets the NotFound.
    """
    if (isinstance(error, NotFound) and entity_id is not None
            and (yield from _note_scope_denial(conn, ctx, entity, action, (entity_id,)))):
        note_write()
        return Failure(error)
    if _writes_audited():
        denied = error.code == "FORBIDDEN"
        record = _record(
            ctx, entity, AuditAction.ACCESS_DENIED if denied else action, success=False,
            error=error, entity_ids=(entity_id,) if entity_id else (),
            metadata={"attempted": action.value} if denied else None,
        )
        yield Detached(ctx, record)
    return Failure(error)


def _read(
    conn: AnyConn,
    ctx: ExecutionContext,
    entity: Entity[Any],
    sql: str,
    params: dict[str, Any],
    out_columns: tuple[str, ...],
    fields: tuple[str, ...],
    *,
    hit: str | None = None,
    build: Callable[[Rows], list[Any]],
) -> Plan[list[Any]]:
    """Run a read; when it discloses PHI, its audit record rides in the same statement."""
    if not _reads_audited(entity, ctx):
        return build((yield from _run(conn, ctx, entity, sql, params)))
    scope = current_scope(conn)
    base, riding = _riding(ctx, entity, AuditAction.READ, fields)
    if scope is not None and scope.read_only:  # no INSERT possible: disclose on lane 2
        rows = build((yield from _run(conn, ctx, entity, sql, params)))
        if rows and not (yield from _detached_read(ctx, entity, base, rows)):
            raise _Err(UNRECORDED)  # no record, no data
        return rows
    ridden = ride.read(entity, sql, out_columns, hit)
    rows = build((yield from _run(conn, ctx, entity, ridden, {**params, **riding})))
    if scope is not None and rows:
        scope.replay_on_rollback(lambda: _detached_read(ctx, entity, base, rows))
    return rows


def _detached_read(
    ctx: ExecutionContext, entity: Entity[Any], base: AuditRecord, rows: list[Any]
) -> Plan[bool]:
    """Write a read's disclosure record on lane 2; whether it was committed."""
    subjects = _subjects(entity, rows)
    ids = _ids(entity, rows)
    record = attrs.evolve(
        base,
        entity_id=ids[0] if len(ids) == 1 else None,
        entity_ids=ids,
        subject_student_id=subjects[0] if len(set(subjects)) == 1 else None,
        subject_ids=tuple(dict.fromkeys(subjects)),
    )
    kept: bool = yield Detached(ctx, record)
    return kept


def _projection(entity: Entity[Any], select: tuple[str, ...]) -> tuple[str, ...]:
    """The columns to fetch: the projection plus pk and subject (needed by audit and events)."""
    extra = [c for c in dict.fromkeys((entity.pk, entity.subject)) if c and c not in select]
    return (*select, *extra)


def _rows_builder(
    entity: Entity[R], fetch: tuple[str, ...], select: tuple[str, ...] | None, offset: int = 0
) -> Callable[[list[tuple[Any, ...]]], list[Any]]:
    if select is None:
        make = entity.row_type
        if offset:
            return lambda rows: [make(*r[offset:]) for r in rows]
        return lambda rows: [make(*r) for r in rows]
    names = fetch
    return lambda rows: [dict(zip(names, r[offset:], strict=True)) for r in rows]


def _where(entity: Entity[Any], where: Where) -> tuple[Any, dict[str, Any]]:
    parsed = parse(where)
    if isinstance(parsed, Failure):
        raise _Err(parsed.failure())
    bound = bind(entity, parsed.unwrap())
    if isinstance(bound, Failure):
        raise _Err(bound.failure())
    b = bound.unwrap()
    return b.shape, {f"p{i}": v for i, v in enumerate(b.values)}


def _first(entity: Entity[R], rows: list[R]) -> Result[R, DataError]:
    """The first row, or NotFound."""
    return Success(rows[0]) if rows else Failure(NotFound(entity=entity.name))


def _deleted(include_deleted: bool) -> str:
    return "all" if include_deleted else "live"


# --- reads ------------------------------------------------------------------------------------


def find_by_id(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[R], id: UUID | str, *,
    include_deleted: bool = False,
) -> Plan[Result[R, DataError]]:
    """The row with this id (NotFound if absent, soft-deleted or outside the caller's scope)."""
    try:
        key = _uuid(id)
        columns = entity.column_names
        sql = compiler.select_by_id(entity, columns, _deleted(include_deleted))
        rows = yield from _read(conn, ctx, entity, sql, {"_id": key}, columns, columns,
                                build=_rows_builder(entity, columns, None))
    except _Err as err:
        return Failure(err.error)
    if not rows:
        yield from _note_scope_denial(conn, ctx, entity, AuditAction.READ, (key,))
    return _first(entity, rows)


def find_many(
    conn: AnyConn,
    ctx: ExecutionContext,
    entity: Entity[R],
    where: Where = None,
    *,
    order_by: SortSpec = None,
    page: int = 1,
    limit: int = DEFAULT_LIMIT,
    include_deleted: bool = False,
) -> Plan[Result[Page[R], DataError]]:
    """A page of rows and the total count, in one round trip."""
    return (yield from _page(conn, ctx, entity, where, order_by, page, limit, include_deleted,
                             None))


def find_projected(
    conn: AnyConn,
    ctx: ExecutionContext,
    entity: Entity[Any],
    select: Sequence[str],
    where: Where = None,
    *,
    order_by: SortSpec = None,
    page: int = 1,
    limit: int = DEFAULT_LIMIT,
    include_deleted: bool = False,
) -> Plan[Result[Page[dict[str, Any]], DataError]]:
    """A page of only the selected columns (minimum necessary), as dicts, with the total."""
    projection = check_projection(entity, select)
    if isinstance(projection, Failure):
        return projection
    return (yield from _page(conn, ctx, entity, where, order_by, page, limit, include_deleted,
                             projection.unwrap()))


def _page(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], where: Where, order_by: SortSpec,
    page: int, limit: int, include_deleted: bool, select: tuple[str, ...] | None,
) -> Plan[Result[Page[Any], DataError]]:
    try:
        checked = check_page(page, limit)
        if isinstance(checked, Failure):
            raise _Err(checked.failure())
        sort = parse_sort(entity, order_by)
        if isinstance(sort, Failure):
            raise _Err(sort.failure())
        shape, params = _where(entity, where)
        fetch = entity.column_names if select is None else _projection(entity, select)
        sql = compiler.select_page(entity, shape, sort.unwrap(), fetch, _deleted(include_deleted))
        params["_limit"] = limit
        params["_offset"] = (page - 1) * limit
        total = [0]
        build_rows = _rows_builder(entity, fetch, select, offset=2)

        def build(rows: list[tuple[Any, ...]]) -> list[Any]:
            if rows:
                total[0] = rows[0][0]
            return build_rows([r for r in rows if r[1]])

        out_columns = ("_total", "_hit", *fetch)
        data = yield from _read(conn, ctx, entity, sql, params, out_columns, select or fetch,
                                hit="_hit", build=build)
        if select is not None and len(fetch) != len(select):
            data = [{k: d[k] for k in select} for d in data]
    except _Err as err:
        return Failure(err.error)
    return Success(Page.of(data, page, limit, total[0]))


def find_one(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[R], where: Where, *,
    order_by: SortSpec = None, include_deleted: bool = False,
) -> Plan[Result[R, DataError]]:
    """The first row matching ``where`` in ``order_by`` order (NotFound if none)."""
    try:
        sort = parse_sort(entity, order_by)
        if isinstance(sort, Failure):
            raise _Err(sort.failure())
        shape, params = _where(entity, where)
        columns = entity.column_names
        sql = compiler.select_rows(entity, shape, sort.unwrap(), columns,
                                   _deleted(include_deleted), True)
        params.update(_limit=1, _offset=0)
        rows = yield from _read(conn, ctx, entity, sql, params, columns, columns,
                                build=_rows_builder(entity, columns, None))
    except _Err as err:
        return Failure(err.error)
    return _first(entity, rows)


def find_after(
    conn: AnyConn,
    ctx: ExecutionContext,
    entity: Entity[R],
    where: Where = None,
    *,
    order_by: SortSpec = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
    include_deleted: bool = False,
) -> Plan[Result[KeysetPage[R], DataError]]:
    """Keyset pagination: up to ``limit`` rows after the cursor, stable under concurrent inserts.

    Soft-deleted rows are left out unless ``include_deleted`` (keep the flag the same across the
    pages of one walk)."""
    try:
        checked = check_page(1, limit)
        if isinstance(checked, Failure):
            raise _Err(checked.failure())
        parsed_sort = parse_sort(entity, order_by)
        if isinstance(parsed_sort, Failure):
            raise _Err(parsed_sort.failure())
        sort = parsed_sort.unwrap()
        for name, _, _ in sort:
            if entity.by_name[name].nullable:
                raise _Err(InvalidQuery(name, "keyset pagination needs non-null sort columns"))
        shape, params = _where(entity, where)
        binding = cursor_binding(entity, shape, tuple(params.values()), sort, ctx.user_id)
        if after is not None:
            values = read_cursor(entity, binding, after)
            if isinstance(values, Failure):
                raise _Err(values.failure())
            params.update({f"_k{i}": v for i, v in enumerate(values.unwrap())})
        columns = entity.column_names
        sql = compiler.select_after(entity, shape, sort, columns, _deleted(include_deleted),
                                    after is None)
        params["_limit"] = limit
        rows = yield from _read(conn, ctx, entity, sql, params, columns, columns,
                                build=_rows_builder(entity, columns, None))
    except _Err as err:
        return Failure(err.error)
    cursor = None
    if len(rows) == limit:
        last = rows[-1]
        cursor = make_cursor(binding, [getattr(last, name) for name, _, _ in sort])
    return Success(KeysetPage(tuple(rows), cursor))


def count(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], where: Where = None, *,
    include_deleted: bool = False,
) -> Plan[Result[int, DataError]]:
    """How many rows match (discloses no PHI, so not audited as a read)."""
    try:
        shape, params = _where(entity, where)
        rows = yield from _run(conn, ctx, entity,
                               compiler.select_count(entity, shape, _deleted(include_deleted)),
                               params)
    except _Err as err:
        return Failure(err.error)
    return Success(int(rows[0][0]))


def exists(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], where: Where = None, *,
    include_deleted: bool = False,
) -> Plan[Result[bool, DataError]]:
    """Whether any visible row matches; a database error is a Failure, never ``False``.

    Soft-deleted rows do not count unless ``include_deleted``."""
    try:
        shape, params = _where(entity, where)
        rows = yield from _run(conn, ctx, entity,
                               compiler.select_exists(entity, shape, _deleted(include_deleted)),
                               params)
    except _Err as err:
        return Failure(err.error)
    return Success(bool(rows[0][0]))


def stream(
    conn: AnyConn,
    ctx: ExecutionContext,
    entity: Entity[R],
    consume: Callable[[Any], Any],
    where: Where = None,
    *,
    order_by: SortSpec = None,
    batch_size: int = STREAM_BATCH,
    include_deleted: bool = False,
) -> Plan[Result[T, DataError]]:
    """Feed every matching row to ``consume`` through a server-side cursor; return its result.

    The rows are read in a read-only transaction of their own (or the open unit of work) in
    batches, so memory stays flat on large exports. One EXPORT record lists every subject read.
    In a read-only transaction that record goes to audit lane 2; if it cannot be committed the
    answer is ``Failure(Unavailable)``, not ``consume``'s result (``consume`` has seen the rows by
    then: keep it free of side effects that disclose).
    Soft-deleted rows are left out unless ``include_deleted``.
    """
    try:
        sort = parse_sort(entity, order_by)
        if isinstance(sort, Failure):
            raise _Err(sort.failure())
        shape, params = _where(entity, where)
        sql = compiler.select_rows(entity, shape, sort.unwrap(), entity.column_names,
                                   _deleted(include_deleted), False)
    except _Err as err:
        return Failure(err.error)
    make = entity.row_type
    subjects: dict[UUID, None] = {}
    seen = [0]
    subject = entity.subject

    def tally(values: tuple[Any, ...]) -> R:
        row = make(*values)
        seen[0] += 1
        if subject is not None:
            sid = getattr(row, subject)
            if sid is not None:
                subjects[sid] = None
        return row

    def inside(scope: Scope) -> Plan[Result[T, DataError]]:
        result: T = yield Stream(f"wx_stream_{uuid4().hex[:12]}", sql, params, batch_size, tally,
                                 consume)
        if _reads_audited(entity, ctx) and seen[0]:
            record = _record(
                ctx, entity, AuditAction.EXPORT, fields=entity.column_names,
                subjects=tuple(subjects), metadata={"rows": seen[0]},
            )
            if not (yield from _write_record(conn, ctx, scope, record)):
                return Failure(UNRECORDED)
        return Success(result)

    try:
        done = yield from within(
            scope_plan(conn, ctx, read_only=current_scope(conn) is None), inside)
    except psycopg.Error as exc:
        return Failure(_db_error(exc, entity.name))
    return done if done is not None else Failure(UNRECORDED)


def _write_record(
    conn: AnyConn, ctx: ExecutionContext, scope: Scope, record: AuditRecord
) -> Plan[bool]:
    """Insert a record in the open scope (lane 1), or on lane 2 when the scope is read-only;
    whether it was written (lane 1 raises on error)."""
    if scope.read_only:
        kept: bool = yield Detached(ctx, record)
        return kept
    yield Execute(insert_sql(), audit_params(ctx, record), settings().prepare, "audit")
    return True


# --- writes -----------------------------------------------------------------------------------


def _managed_values(entity: Entity[Any], ctx: ExecutionContext, creating: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("created_by", "updated_by") if creating else ("updated_by",):
        name = entity.managed(kind)
        if name is not None:
            out[name] = ctx.user_id
    return out


def _ordered(entity: Entity[Any], names: Iterable[str]) -> tuple[str, ...]:
    wanted = set(names)
    return tuple(n for n in entity.by_name if n in wanted)


def create(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[R], values: Mapping[str, Any]
) -> Plan[Result[R, DataError]]:
    """Insert a validated row and return it as stored (defaults included)."""
    checked = validate_create(entity, values)
    if isinstance(checked, Failure):
        return (yield from _fail_write(conn, ctx, entity, AuditAction.CREATE, checked.failure()))
    clean = checked.unwrap()
    new_id = uuid4()
    clean = {entity.pk: new_id, **clean, **_managed_values(entity, ctx, True)}
    columns = _ordered(entity, clean)
    out = entity.column_names
    sql = compiler.insert_row(entity, columns, out)
    params = _write_params(entity, clean)
    if _writes_audited():
        snap = tuple(c for c in columns if c in values or c == entity.pk)
        sql = ride.write(entity, sql, out, new_columns=snap)
        params.update(_riding(ctx, entity, AuditAction.CREATE)[1])
    try:
        rows = yield from _run(conn, ctx, entity, sql, params)
    except _Err as err:
        return (yield from _fail_write(conn, ctx, entity, AuditAction.CREATE, err.error))
    row = entity.row_type(*rows[0])
    _announce(conn, entity, "CREATE", (new_id,), _subjects(entity, (row,)))
    return Success(row)


def _write_params(entity: Entity[Any], clean: Mapping[str, Any]) -> dict[str, Any]:
    """Bound parameters for a write: JSON columns wrapped so they bind as jsonb."""
    by_name = entity.by_name
    return {
        "c_" + k: Jsonb(v) if v is not None and by_name[k].kind is Kind.JSON else v
        for k, v in clean.items()
    }


def _announce(conn: AnyConn, entity: Entity[Any], action: str, ids: tuple[UUID, ...],
              subjects: tuple[UUID, ...]) -> None:
    announce_write(conn, WriteEvent(entity.name, action, ids, tuple(dict.fromkeys(subjects))))


def update(
    conn: AnyConn,
    ctx: ExecutionContext,
    entity: Entity[R],
    id: UUID | str,
    changes: Mapping[str, Any],
    *,
    expected_version: int | None = None,
) -> Plan[Result[R, DataError]]:
    """Apply a partial update to writable columns; a stale ``expected_version`` is a Conflict."""
    try:
        key = _uuid(id)
    except _Err as err:
        return Failure(err.error)
    checked = validate_changes(entity, changes)
    if isinstance(checked, Failure):
        return (yield from _fail_write(conn, ctx, entity, AuditAction.UPDATE, checked.failure(), key))
    clean = checked.unwrap()
    if expected_version is not None and (
        isinstance(expected_version, bool) or not isinstance(expected_version, int)
    ):
        return Failure(ValidationFailed(entity.name, (FieldError("version", "must be an integer"),)))
    relevant = tuple(
        v for v in entity.validators
        if (declared := validator_reads(v)) is None or not declared.isdisjoint(clean)
    )
    if relevant:
        return (yield from _update_validated(conn, ctx, entity, key, clean, expected_version,
                                             relevant))
    return (yield from _update(conn, ctx, entity, key, clean, expected_version))


def _update(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[R], key: UUID, clean: dict[str, Any],
    expected_version: int | None,
) -> Plan[Result[R, DataError]]:
    columns = _ordered(entity, clean)
    out = entity.column_names
    check = expected_version is not None and entity.versioned
    audited = _writes_audited()
    sql = compiler.update_row(entity, columns, out, check, with_old=audited)
    params = _write_params(entity, clean)
    params.update(_id=key, _uid=ctx.user_id, _version=expected_version)
    if audited:
        sql = ride.write(entity, sql, out, diff_columns=columns)
        params.update(_riding(ctx, entity, AuditAction.UPDATE)[1])
    try:
        rows = yield from _run(conn, ctx, entity, sql, params)
        if not rows:
            raise _Err((yield from _missing_or_stale(conn, ctx, entity, key, check)))
    except _Err as err:
        return (yield from _fail_write(conn, ctx, entity, AuditAction.UPDATE, err.error, key))
    row = entity.row_type(*rows[0][: len(out)])
    _announce(conn, entity, "UPDATE", (key,), _subjects(entity, (row,)))
    return Success(row)


def _update_validated(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[R], key: UUID, clean: dict[str, Any],
    expected_version: int | None, validators: tuple[Validator, ...],
) -> Plan[Result[R, DataError]]:
    """Cross-field validators need the current row: lock it, validate the merge, then update."""
    def body() -> Plan[Result[R, DataError]]:
        try:
            sql = compiler.select_by_id(entity, entity.column_names, "live", True)
            rows = yield from _run(conn, ctx, entity, sql, {"_id": key})
        except _Err as err:
            return Failure(err.error)
        if not rows:
            return Failure(NotFound(entity=entity.name))
        merged = merged_view(entity.row_type(*rows[0]), clean)
        errors = [e for v in validators for e in v(merged)]
        if errors:
            return Failure(ValidationFailed(entity.name, tuple(errors)))
        return (yield from _update(conn, ctx, entity, key, clean, expected_version))

    result: Result[R, DataError] = yield from scope_run_plan(conn, ctx, body, _NO_RETRY)
    if isinstance(result, Failure) and isinstance(result.failure(), ValidationFailed | NotFound):
        return (yield from _fail_write(conn, ctx, entity, AuditAction.UPDATE, result.failure(), key))
    return result


def _missing_or_stale(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], key: UUID, checked: bool
) -> Plan[DataError]:
    if checked:
        found = yield from _run(conn, ctx, entity,
                                compiler.select_by_id(entity, (entity.pk,), "live"), {"_id": key})
        if found:
            return Conflict(entity=entity.name, reason="stale version", field="version")
    return NotFound(entity=entity.name)


def delete(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], id: UUID | str
) -> Plan[Result[None, DataError]]:
    """Soft-delete (entities with ``deleted_at``) or hard-delete the row; audited either way."""
    done = yield from _delete_or_restore(conn, ctx, entity, id, restore=False)
    return done.map(lambda _: None)


def restore(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[R], id: UUID | str
) -> Plan[Result[R, DataError]]:
    """Undo a soft delete and return the row."""
    if not entity.soft_delete:
        return Failure(InvalidQuery("id", f"{entity.name} does not soft-delete"))
    return (yield from _delete_or_restore(conn, ctx, entity, id, restore=True))


def _delete_or_restore(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[R], id: UUID | str, *, restore: bool
) -> Plan[Result[R, DataError]]:
    action = AuditAction.RESTORE if restore else AuditAction.DELETE
    try:
        key = _uuid(id)
    except _Err as err:
        return Failure(err.error)
    out = entity.column_names
    if entity.soft_delete:
        sql = compiler.soft_delete_row(entity, out, restore)
    else:
        sql = compiler.hard_delete_row(entity, out)
    params: dict[str, Any] = {"_id": key, "_uid": ctx.user_id}
    if _writes_audited():
        old = () if entity.soft_delete else out
        sql = ride.write(entity, sql, out, old_columns=old)
        params.update(_riding(ctx, entity, action)[1])
    try:
        rows = yield from _run(conn, ctx, entity, sql, params)
        if not rows:
            raise _Err(NotFound(entity=entity.name))
    except _Err as err:
        return (yield from _fail_write(conn, ctx, entity, action, err.error, key))
    row = entity.row_type(*rows[0])
    _announce(conn, entity, action.value, (key,), _subjects(entity, (row,)))
    return Success(row)


def bulk_create(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], rows: Sequence[Mapping[str, Any]]
) -> Plan[Result[tuple[UUID, ...], DataError]]:
    """Validate every row, then load them all with COPY in one transaction: all or nothing.

    Returns the new ids in input order. A validation failure names the row index and field.
    One BULK_CREATE audit record lists every new id and subject.
    """
    if not isinstance(rows, Sequence) or isinstance(rows, str | bytes):
        return Failure(ValidationFailed(entity.name, (FieldError("<rows>", "must be a list"),)))
    if not rows:
        return Failure(ValidationFailed(entity.name, (FieldError("<rows>", "must not be empty"),)))
    if len(rows) > MAX_BULK:
        return Failure(ValidationFailed(
            entity.name, (FieldError("<rows>", f"must have at most {MAX_BULK} rows"),)))
    cleaned: list[dict[str, Any]] = []
    names: set[str] = set()
    for index, values in enumerate(rows):
        checked = validate_create(entity, values)
        if isinstance(checked, Failure):
            errors = tuple(FieldError(f"[{index}].{e.field}", e.rule)
                           for e in checked.failure().errors)
            return (yield from _fail_write(conn, ctx, entity, AuditAction.BULK_CREATE,
                               ValidationFailed(entity.name, errors)))
        clean = checked.unwrap()
        names.update(clean)
        cleaned.append(clean)
    managed = _managed_values(entity, ctx, True)
    columns = _ordered(entity, {entity.pk, *names, *managed})
    ids = tuple(uuid4() for _ in cleaned)
    subject = entity.subject
    subjects: list[UUID] = []
    loaded: list[tuple[Any, ...]] = []
    for new_id, clean in zip(ids, cleaned, strict=True):
        full = {entity.pk: new_id, **clean, **managed}
        loaded.append(tuple(_copy_value(entity, c, full.get(c)) for c in columns))
        if subject is not None and full.get(subject) is not None:
            subjects.append(full[subject])

    def inside(scope: Scope) -> Plan[None]:
        target, staged = yield from _bulk_target(conn, entity, columns)
        yield Copy(target, loaded)
        if staged is not None:
            yield Execute(staged)
        if _writes_audited():
            record = _record(ctx, entity, AuditAction.BULK_CREATE, entity_ids=ids,
                             subjects=tuple(subjects), metadata={"count": len(ids)})
            yield from _write_record(conn, ctx, scope, record)
        announce_write(conn, WriteEvent(entity.name, "BULK_CREATE", ids,
                                        tuple(dict.fromkeys(subjects))))

    try:
        yield from within(scope_plan(conn, ctx), inside)
    except psycopg.Error as exc:
        return (yield from _fail_write(conn, ctx, entity, AuditAction.BULK_CREATE,
                                       _db_error(exc, entity.name)))
    return Success(ids)


def update_where(
    conn: AnyConn,
    ctx: ExecutionContext,
    entity: Entity[Any],
    where: Where,
    changes: Mapping[str, Any],
    *,
    max_rows: int = 10_000,
) -> Plan[Result[tuple[UUID, ...], DataError]]:
    """Apply the same validated changes to every live row matching ``where``; returns their ids.

    Refuses an empty filter (no accidental whole-table update) and more than ``max_rows`` rows
    (rolled back). One BULK_UPDATE record lists every id and subject and the redacted change.
    """
    if where is None or (isinstance(where, Mapping) and not where):
        return Failure(InvalidQuery("where", "must not be empty for a bulk update"))
    checked = validate_changes(entity, changes)
    if isinstance(checked, Failure):
        return (yield from _fail_write(conn, ctx, entity, AuditAction.BULK_UPDATE, checked.failure()))
    clean = checked.unwrap()
    try:
        shape, params = _where(entity, where)
    except _Err as err:
        return Failure(err.error)
    columns = _ordered(entity, clean)
    returning = tuple(dict.fromkeys(c for c in (entity.pk, entity.subject) if c))
    sql = compiler.update_where(entity, shape, columns, returning)
    params.update(_write_params(entity, clean))
    params["_uid"] = ctx.user_id
    def body() -> Plan[Result[tuple[UUID, ...], DataError]]:
        try:
            rows = yield from _run(conn, ctx, entity, sql, params)
        except _Err as err:
            return Failure(err.error)
        if len(rows) > max_rows:
            return Failure(InvalidQuery("where", f"matches more than {max_rows} rows"))
        ids = tuple(r[0] for r in rows)
        subjects = tuple(r[-1] for r in rows if entity.subject and r[-1] is not None)
        if ids and _writes_audited():
            record = attrs.evolve(
                _record(ctx, entity, AuditAction.BULK_UPDATE, entity_ids=ids, subjects=subjects,
                        metadata={"count": len(ids)}),
                new_values=redact_row(entity, clean),
            )
            scope = current_scope(conn)
            if scope is None:  # body runs in the level scope_run_plan opened
                raise ScopeError("a bulk update left its unit of work")
            yield from _write_record(conn, ctx, scope, record)
        if ids:
            _announce(conn, entity, "BULK_UPDATE", ids, subjects)
        return Success(ids)

    result: Result[tuple[UUID, ...], DataError] = yield from scope_run_plan(
        conn, ctx, body, _NO_RETRY)
    if isinstance(result, Failure):
        return (yield from _fail_write(conn, ctx, entity, AuditAction.BULK_UPDATE,
                                       result.failure()))
    return result


def update_ids(
    conn: AnyConn,
    ctx: ExecutionContext,
    entity: Entity[Any],
    ids: Sequence[UUID | str],
    changes: Mapping[str, Any],
) -> Plan[Result[BulkOutcome, DataError]]:
    """Apply the same validated changes to the live rows with these ids, in one transaction.

    Returns a :class:`~wxdata.bulk.BulkOutcome`: the ids changed and the ids not changed (absent,
    soft-deleted or outside the caller's school scope, indistinguishably). ``Failure(NotFound)``
    when none was changed; ``InvalidQuery`` for an empty list or a non-UUID. When some unchanged
    id exists outside the caller's scope, one ACCESS_DENIED record (reason "outside school scope",
    attempted BULK_UPDATE) lists the unchanged ids on audit lane 2.
    """
    if isinstance(ids, str | bytes) or not isinstance(ids, Sequence) or not ids:
        return Failure(InvalidQuery("ids", "must be a non-empty list of UUIDs"))
    if len(ids) > MAX_BULK:
        return Failure(InvalidQuery("ids", f"must have at most {MAX_BULK} ids"))
    try:
        wanted = tuple(dict.fromkeys(_uuid(i, "ids") for i in ids))
    except _Err as err:
        return Failure(err.error)
    done = yield from update_where(conn, ctx, entity, {entity.pk: {"in": list(wanted)}}, changes,
                                   max_rows=len(wanted))
    hit = set(done.value_or(()))
    unchanged = tuple(i for i in wanted if i not in hit)
    if unchanged and isinstance(done, Success):
        yield from _note_scope_denial(conn, ctx, entity, AuditAction.BULK_UPDATE, unchanged)
    return done.bind(lambda _: _bulk_outcome(entity, wanted, hit, unchanged))


def _bulk_outcome(
    entity: Entity[Any], wanted: tuple[UUID, ...], hit: set[UUID], unchanged: tuple[UUID, ...],
) -> Result[BulkOutcome, DataError]:
    if not hit:
        return Failure(NotFound(entity=entity.name))
    return Success(BulkOutcome(tuple(i for i in wanted if i in hit), unchanged))


def fetch(
    conn: AnyConn,
    ctx: ExecutionContext,
    sql: str,
    params: Mapping[str, Any] | None = None,
    *,
    entity: Entity[Any] | None = None,
) -> Plan[Result[list[tuple[Any, ...]], DataError]]:
    """Run a hand-written, parameterised statement with the context applied; rows as tuples.

    For queries the generic functions do not cover (aggregates, joins). School scoping applies
    (row-level security); auditing a PHI result is the caller's ``audited`` decorator's job.
    """
    try:
        rows = yield from _run_named(conn, ctx, entity.name if entity else "", sql, params or {})
    except _Err as err:
        return Failure(err.error)
    return Success(rows)


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
    if scope is not None and scope.read_only:
        if (yield Detached(ctx, record)):
            return Success(None)
        return Failure(UNRECORDED)
    try:
        yield from _run_named(conn, ctx, "AuditLog", insert_sql(), audit_params(ctx, record))
    except _Err as err:
        return Failure(err.error)
    if scope is not None:
        scope.replay_on_rollback(lambda: detached_plan(ctx, record))
    return Success(None)


def _bulk_target(
    conn: AnyConn, entity: Entity[Any], columns: Sequence[str]
) -> Plan[tuple[q.Composed, q.Composed | None]]:
    """The COPY statement of a bulk load, and the INSERT that moves staged rows (or None).

    PostgreSQL refuses ``COPY FROM`` into a table whose row-level security applies to the role,
    so such a role copies into a temporary table dropped at COMMIT and moves the rows with one
    ``INSERT ... SELECT`` (the policy checks every row). A role that bypasses row security (a
    SYSTEM load on the owner's connection) copies into the table directly.
    """
    table = q.Identifier(entity.table)
    cols = q.SQL(",").join(q.Identifier(c) for c in columns)
    if (yield from role_facts(conn)).privileged:
        return q.SQL("COPY {} ({}) FROM STDIN").format(table, cols), None
    stage = q.Identifier(f"wx_bulk_{uuid4().hex[:12]}")
    yield Execute(q.SQL(
        "CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            stage, cols, table))
    return (q.SQL("COPY {} ({}) FROM STDIN").format(stage, cols),
            q.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(table, cols, cols, stage))


def _copy_value(entity: Entity[Any], column: str, value: Any) -> Any:
    """COPY text format needs JSON as text; other types adapt as in a normal statement."""
    if value is not None and entity.by_name[column].kind is Kind.JSON:
        return json.dumps(value)
    return value
