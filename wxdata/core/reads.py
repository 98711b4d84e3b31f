"""The read plans: by id, pages with totals, projections, keyset pages, counts, streams."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID, uuid4

import attrs
import psycopg
from returns.result import Failure, Result, Success

from wxdata.audit.record import AuditAction, AuditRecord
from wxdata.context import ExecutionContext
from wxdata.core.auditing import (
    _note_scope_denial,
    _read,
    _reads_audited,
    _record,
    _write_record,
)
from wxdata.core.effects import Detached, Plan, Stream
from wxdata.core.execute import (
    STREAM_BATCH,
    R,
    T,
    Where,
    _checked,
    _deleted,
    _Err,
    _first,
    _projection,
    _rows_builder,
    _run,
    _uuid,
    _where,
)
from wxdata.core.raw import record_disclosure
from wxdata.core.steps import within
from wxdata.errors import (
    DataError,
    InvalidQuery,
)
from wxdata.errors import from_db_error as _db_error
from wxdata.query import compiler
from wxdata.query.compiler import SortKey
from wxdata.query.filters import And, Cond, Not, Or, Shape, parse
from wxdata.query.paging import (
    DEFAULT_LIMIT,
    KeysetPage,
    Page,
    SortSpec,
    check_page,
    check_projection,
    cursor_binding,
    make_cursor,
    page_refusal,
    parse_sort,
    read_cursor,
)
from wxdata.safelog import log_error
from wxdata.schema._rows import row_maker
from wxdata.schema.spec import Entity
from wxdata.tx.decorators import UNRECORDED
from wxdata.tx.scope import (
    AnyConn,
    Scope,
    current_scope,
    scope_plan,
)

_log = logging.getLogger("wxdata.audit")


def find_by_id(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[R], id: UUID | str, *,
    include_deleted: bool = False,
) -> Plan[Result[R, DataError]]:
    """The row with this id (NotFound if absent, soft-deleted or outside the caller's scope)."""
    try:
        key = _uuid(id)
        sql, stored, build = _by_id(entity, include_deleted)
        rows = yield from _read(conn, ctx, entity, sql, {"_id": key}, stored,
                                entity.column_names, one_row=True, build=build)
    except _Err as err:
        return Failure(err.error)
    if not rows:
        yield from _note_scope_denial(conn, ctx, entity, AuditAction.READ, (key,))
    return _first(entity, rows)


@functools.lru_cache(maxsize=1024)
def _by_id(
    entity: Entity[R], include_deleted: bool,
) -> tuple[str, tuple[str, ...], Callable[[list[tuple[Any, ...]]], list[Any]]]:
    """The statement, its columns and row builder of a by-id read: computed once per entity and
    flag. The columns are listed as the table stores them, so PostgreSQL returns the stored tuple
    without building a projection; the builder puts them back in the row's order."""
    stored = entity.stored_names
    sql = compiler.select_by_id(entity, stored, _deleted(include_deleted))
    return sql, stored, _rows_builder(entity, stored, None)


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
    if page_totals is not None:  # the total served from the cache (wxdata.cache.totals)
        counted = page_totals(conn, ctx, entity, where, order_by, page, limit, include_deleted)
        if counted is not None:
            return (yield from counted)
    return (yield from _page(conn, ctx, entity, where, order_by, page, limit, include_deleted,
                             None))


#: Set by :func:`wxdata.cache.totals.cache_totals`: the ``find_many`` plan taking its total from
#: the cache, or None to count in the page's statement (None: no entity's totals are cached).
page_totals: Callable[..., Plan[Result[Page[Any], DataError]] | None] | None = None


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
    match check_projection(entity, select):
        case Success(projection):
            return (yield from _page(conn, ctx, entity, where, order_by, page, limit,
                                     include_deleted, projection))
        case refused:
            return Failure(refused.failure())


#: Pages up to this one are sent with their LIMIT and OFFSET written into the statement
#: (:func:`wxdata.query.compiler.with_window`), so each keeps one generic plan; deeper pages (rarer,
#: and better read with ``find_after``) pass them as parameters rather than add a statement per page.
LITERAL_WINDOW_PAGES = 5


def windowed(sql: str, params: dict[str, Any], page: int, limit: int) -> str:
    """A paged statement with the window of ``page``: written in for the first
    :data:`LITERAL_WINDOW_PAGES` pages (a statement per page and limit, planned once), bound as
    ``_limit``/``_offset`` in ``params`` after them."""
    offset = (page - 1) * limit
    if page <= LITERAL_WINDOW_PAGES:
        return compiler.with_window(sql, limit, offset)
    params["_limit"] = limit
    params["_offset"] = offset
    return sql


def _page(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], where: Where, order_by: SortSpec,
    page: int, limit: int, include_deleted: bool, select: tuple[str, ...] | None,
) -> Plan[Result[Page[Any], DataError]]:
    try:
        refused = page_refusal(page, limit)
        if refused is not None:
            raise _Err(refused)
        key = _checked(parse_sort(entity, order_by))
        shape, params = _where(entity, where)
        sql, fetch, out_columns, build_rows = _page_statement(entity, shape, key, select,
                                                              include_deleted)
        sql = windowed(sql, params, page, limit)
        total = [0]

        def build(rows: list[tuple[Any, ...]]) -> list[Any]:
            if rows:
                total[0] = rows[0][0]
            return build_rows([r for r in rows if r[1]])

        data = yield from _read(conn, ctx, entity, sql, params, out_columns, select or fetch,
                                hit="_hit", build=build)
        if select is not None and len(fetch) != len(select):
            data = [{k: d[k] for k in select} for d in data]
    except _Err as err:
        return Failure(err.error)
    return Success(Page.of(data, page, limit, total[0]))


@functools.lru_cache(maxsize=4096)
def _page_statement(
    entity: Entity[Any], shape: Shape | None, sort: SortKey, select: tuple[str, ...] | None,
    include_deleted: bool,
) -> tuple[str, tuple[str, ...], tuple[str, ...], Callable[[list[tuple[Any, ...]]], list[Any]]]:
    """A page's statement, fetched and output columns and row builder, once per query shape."""
    fetch = entity.column_names if select is None else _projection(entity, select)
    sql = compiler.select_page(entity, shape, sort, fetch, _deleted(include_deleted))
    return sql, fetch, ("_total", "_hit", *fetch), _rows_builder(entity, fetch, select, offset=2)


def find_one(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[R], where: Where, *,
    order_by: SortSpec = None, include_deleted: bool = False,
) -> Plan[Result[R, DataError]]:
    """The first row matching ``where`` in ``order_by`` order (NotFound if none)."""
    try:
        sort = _checked(parse_sort(entity, order_by))
        shape, params = _where(entity, where)
        columns = entity.column_names
        sql = compiler.select_rows(entity, shape, sort, columns,
                                   _deleted(include_deleted), True)
        params.update(_limit=1, _offset=0)
        rows = yield from _read(conn, ctx, entity, sql, params, columns, columns, one_row=True,
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
        sort = _checked(check_page(1, limit)
                        .bind(lambda _: parse_sort(entity, order_by))
                        .bind(lambda key: _keyset_sort(entity, key)))
        shape, params = _where(entity, where)
        binding = cursor_binding(entity, shape, tuple(params.values()), sort, ctx.user_id)
        if after is not None:
            values = _checked(read_cursor(entity, binding, after))
            params.update({f"_k{i}": v for i, v in enumerate(values)})
        columns = entity.column_names
        sql = compiler.select_after(entity, shape, sort, columns, _deleted(include_deleted),
                                    after is None, limit)
        rows = yield from _read(conn, ctx, entity, sql, params, columns, columns,
                                build=_rows_builder(entity, columns, None))
    except _Err as err:
        return Failure(err.error)
    cursor = None
    if len(rows) == limit:
        last = rows[-1]
        cursor = make_cursor(binding, [getattr(last, name) for name, _, _ in sort])
    return Success(KeysetPage(tuple(rows), cursor))


def _keyset_sort(entity: Entity[Any], sort: SortKey) -> Result[SortKey, InvalidQuery]:
    """``sort`` when every column of it is non-null (a keyset cannot step past a NULL)."""
    for name, _, _ in sort:
        if entity.by_name[name].nullable:
            return Failure(InvalidQuery(name, "keyset pagination needs non-null sort columns"))
    return Success(sort)


def count(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], where: Where = None, *,
    include_deleted: bool = False, recorded: bool = False,
) -> Plan[Result[int, DataError]]:
    """How many rows match.

    A count returns no row. When its filter names rows or students of an audited entity (its key
    or its subject column, equal to or among given ids), the answer is a fact about them, recorded
    as a READ naming them before it is returned (see :func:`_scalar`); ``recorded``: the caller
    records it itself."""
    scalar = yield from _scalar(conn, ctx, entity, where, include_deleted, compiler.select_count,
                                "count", recorded)
    return scalar.map(int)


def exists(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], where: Where = None, *,
    include_deleted: bool = False, recorded: bool = False,
) -> Plan[Result[bool, DataError]]:
    """Whether any visible row matches; a database error is a Failure, never ``False``.

    Soft-deleted rows do not count unless ``include_deleted``. Recorded as :func:`count` is."""
    scalar = yield from _scalar(conn, ctx, entity, where, include_deleted,
                                compiler.select_exists, "exists", recorded)
    return scalar.map(bool)


def _scalar(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], where: Where,
    include_deleted: bool, select: Callable[..., Any], operation: str, recorded: bool,
) -> Plan[Result[Any, DataError]]:
    """The one value of a count or exists query over the rows ``where`` matches.

    A filter naming rows or students of an entity whose reads are recorded (``exists`` of a
    student's record with a given title answers a question about that student's health) leaves
    a READ naming them and the filter's columns, whatever the answer, before it is returned; a
    record that cannot be written is a Failure and no answer. A filter naming neither (a count
    over a school) is an aggregate and is not recorded."""
    try:
        shape, params = _where(entity, where)
        rows = yield from _run(conn, ctx, entity,
                               select(entity, shape, _deleted(include_deleted)), params)
    except _Err as err:
        return Failure(err.error)
    if not recorded and _reads_audited(entity, ctx):
        ids, subjects, fields = _named(entity, where)
        if ids or subjects:
            written = yield from record_disclosure(
                conn, ctx, entity, AuditAction.READ, ids=ids, subjects=subjects, fields=fields,
                metadata={"operation": operation})
            return written.map(lambda _: rows[0][0])
    return Success(rows[0][0])


def _named(entity: Entity[Any], where: Where
           ) -> tuple[tuple[UUID, ...], tuple[UUID, ...], tuple[str, ...]]:
    """The rows (by key) and the students (by subject column) a filter names, anywhere in it,
    equal to or among given values, and every column it tests (a filter already bound)."""
    node = parse(where).value_or(None)
    ids: dict[UUID, None] = {}
    subjects: dict[UUID, None] = {}
    fields: dict[str, None] = {}
    pending: list[Any] = [node] if node is not None else []
    while pending:
        item = pending.pop()
        if isinstance(item, Cond):
            fields[item.field] = None
            names = ids if item.field == entity.pk else (
                subjects if item.field == entity.subject else None)
            if names is not None and item.op in ("eq", "in"):
                values = item.value if item.op == "in" else (item.value,)
                for value in values if isinstance(values, list | tuple) else ():
                    key = _as_uuid(value)
                    if key is not None:
                        names[key] = None
        elif isinstance(item, And | Or):
            pending.extend(item.items)
        elif isinstance(item, Not):
            pending.append(item.item)
    if entity.subject == entity.pk:  # a student's own row: its id is the student
        subjects.update(ids)
    return tuple(ids), tuple(subjects), tuple(fields)


def _as_uuid(value: object) -> UUID | None:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        return None


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
    batches, so memory stays flat on large exports but for the ids the record keeps (below).
    One EXPORT record lists every row handed to ``consume`` (``entity_ids``; ``entity_id`` when
    there is one) and every subject read. In a read-only transaction that record goes to audit
    lane 2; if it cannot be committed the answer is ``Failure(Unavailable)``, not ``consume``'s
    result (``consume`` has seen the rows by then: keep it free of side effects that disclose).

    When ``consume`` raises (or an async one is cancelled) after rows were handed to it, a failed
    EXPORT record of those rows (``success`` false, ``error_message`` ``OUTPUT_FAILED`` or the
    database error's code) is committed on lane 2 before the exception goes on, whatever then
    happens to the transaction; a record lane 2 cannot take is logged and counted there and the
    exception goes on all the same (a database error as ``Failure``, as before).
    Soft-deleted rows are left out unless ``include_deleted``.
    """
    try:
        sort = _checked(parse_sort(entity, order_by))
        shape, params = _where(entity, where)
        sql = compiler.select_rows(entity, shape, sort, entity.column_names,
                                   _deleted(include_deleted), False)
    except _Err as err:
        return Failure(err.error)
    make = row_maker(entity.row_type)
    subjects: dict[UUID, None] = {}
    ids: list[UUID] = []
    handed = ids.append
    pk = entity.pk
    subject = entity.subject

    def tally(values: tuple[Any, ...]) -> R:
        row = make(values)
        handed(getattr(row, pk))
        if subject is not None:
            sid = getattr(row, subject)
            if sid is not None:
                subjects[sid] = None
        return row

    def record(error: str | None) -> AuditRecord:
        made = _record(
            ctx, entity, AuditAction.EXPORT, success=error is None, fields=entity.column_names,
            entity_ids=tuple(ids), subjects=tuple(subjects), metadata={"rows": len(ids)},
        )
        return made if error is None else attrs.evolve(made, error_message=error)

    def inside(scope: Scope) -> Plan[Result[T, DataError]]:
        try:
            result: T = yield Stream(f"wx_stream_{uuid4().hex[:12]}", sql, params, batch_size,
                                     tally, consume)
        except GeneratorExit:  # the plan itself is being closed: no effect can run any more
            raise
        except BaseException as exc:
            if ids and _reads_audited(entity, ctx):
                yield from _on_lane_two(ctx, record(_interruption(entity, exc)))
            raise
        if ids and _reads_audited(entity, ctx):
            made = record(None)
            if not (yield from _write_record(conn, ctx, scope, made)):
                return Failure(UNRECORDED)
            if not scope.read_only:  # lane 1: written again on lane 2 if the unit rolls back
                scope.replay_on_rollback(lambda: _on_lane_two(ctx, made))
        return Success(result)

    try:
        done = yield from within(
            scope_plan(conn, ctx, read_only=current_scope(conn) is None), inside)
    except psycopg.Error as exc:
        return Failure(_db_error(exc, entity.name))
    return done if done is not None else Failure(UNRECORDED)


def _interruption(entity: Entity[Any], exc: BaseException) -> str:
    """The ``error_message`` of the record of a stream that ``exc`` interrupted after rows were
    handed out: a database error's code, else ``OUTPUT_FAILED`` (the consumer's own exception or
    its cancellation; never the exception's text)."""
    if isinstance(exc, psycopg.Error):
        return _db_error(exc, entity.name).code
    return "OUTPUT_FAILED"


def _on_lane_two(ctx: ExecutionContext, record: AuditRecord) -> Plan[bool]:
    """Commit a stream's EXPORT record on audit lane 2 (it survives a rollback): the failed
    record of an interrupted stream, or the replay of a completed one's when its unit of work
    rolls back; whether it was kept. A record lane 2 cannot take is logged and counted by the
    lane; anything raised meanwhile (a second cancellation) is logged and answered as not kept,
    so the interruption's own exception is the one that goes on."""
    try:
        kept: bool = yield Detached(ctx, record)
    except BaseException as exc:  # noqa: BLE001 - the interruption's exception goes on instead
        log_error(_log, "stream export record not written", exc)
        return False
    return kept
