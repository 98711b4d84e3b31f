"""SQL that writes an audit record in the same statement as the read or write it describes.

Snapshots and diffs are computed by PostgreSQL from the rows the statement actually read or wrote,
by value (``IS DISTINCT FROM`` on the typed columns: dates, numerics, JSON and arrays compare as
values), and each field is rendered through the redaction policy of :mod:`wxdata.audit.redact`:
secrets become a marker, clinical free text a mask, everything else ``to_jsonb``. The text depends
only on the entity spec and the column lists, so it is compiled once per shape.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

import attrs
from psycopg import sql

from wxdata.audit.record import (
    CONTEXT_COLUMNS,
    ID_COLUMNS,
    RECORD_COLUMNS,
    AuditRecord,
    cast_of,
    context_params,
    context_values,
    param_sql,
)
from wxdata.audit.record import params as record_params
from wxdata.audit.redact import MASK, SECRET_MARK, column_policy
from wxdata.context import ExecutionContext
from wxdata.schema.spec import Entity, Kind

_CHUNK = 40  # jsonb_build_object takes at most 100 arguments


def _literal(text: str) -> sql.Composable:
    """A jsonb string literal for a constant marker (quoted and escaped by psycopg)."""
    return sql.SQL("{}::jsonb").format(sql.Literal(f'"{text}"'))


#: SQL twins of :func:`wxdata.audit.redact.scrub` / ``is_secret_name`` (``sql/0020_audit_redaction.sql``).
SCRUB_FUNCTION = "wxdata_audit_scrub"
SECRET_NAME_FUNCTION = "wxdata_audit_secret_name"  # noqa: S105 - a function name

# Whole fragments, never templates: their braces are literal.
_EMPTY_OBJECT = sql.SQL("'{}'::jsonb")
_EMPTY_UUIDS = sql.SQL("'{}'::uuid[]")
_NULL_UUID = sql.SQL("NULL::uuid")
_COMMA = sql.SQL(",")
_AND = sql.SQL(" AND ")
_NOTHING = sql.SQL("")


def _scrub(ref: sql.Composable) -> sql.Composable:
    return sql.SQL("{}({})").format(sql.Identifier(SCRUB_FUNCTION), ref)


def scrub_expr(ref: str) -> str:
    """The jsonb ``ref`` with every secret-named key's value replaced by the marker, at any depth."""
    return _scrub(sql.SQL(ref)).as_string()


def field_expr(entity: Entity[Any], name: str, ref: sql.Composable) -> sql.Composable:
    """One field of a row reference (``s."name"``), redacted, as a value of an object that
    ``jsonb_build_object`` builds (every image of a record is built so).

    Rendered as :func:`wxdata.audit.redact.redact_value` renders it in Python: secrets as the
    marker, clinical text as the mask, decimals as exact strings, JSON with secret keys scrubbed.
    Any other column is passed as it is: ``jsonb_build_object`` converts each of its arguments by
    its type as ``to_jsonb`` does, so wrapping one in ``to_jsonb`` would only convert it twice
    (to a jsonb, then that jsonb into the object).
    """
    column = entity.by_name.get(name)
    policy = column_policy(column, name)
    if policy == "secret":
        return _literal(SECRET_MARK)
    if policy == "mask":
        return sql.SQL("CASE WHEN {ref} IS NULL THEN 'null'::jsonb ELSE {mask} END").format(
            ref=ref, mask=_literal(MASK))
    if column is not None and column.kind is Kind.DECIMAL:
        return sql.SQL("({})::text").format(ref)
    if column is not None and column.kind is Kind.JSON:
        return _scrub(sql.SQL("to_jsonb({})").format(ref))
    return ref


def _object(pairs: list[tuple[str, sql.Composable]]) -> sql.Composable:
    if not pairs:
        return _EMPTY_OBJECT
    chunks = []
    for i in range(0, len(pairs), _CHUNK):
        part = pairs[i : i + _CHUNK]
        chunks.append(sql.SQL("jsonb_build_object({})").format(
            _COMMA.join(sql.SQL("{},{}").format(sql.Literal(k), v) for k, v in part)))
    return sql.SQL("||").join(chunks)


def snapshot_expr(entity: Entity[Any], columns: Iterable[str], alias: str = "s") -> sql.Composable:
    """A redacted jsonb snapshot of the named columns of row ``alias``."""
    return _object([(c, field_expr(entity, c, sql.Identifier(alias, c))) for c in columns])


_CHANGED = sql.SQL("CASE WHEN {n} IS DISTINCT FROM {o} THEN {entry} ELSE '{{}}'::jsonb END")
_SECRET_CHANGE = sql.SQL("jsonb_build_object('before',{marker},'after',{marker},'changed',true)")
_CHANGE = sql.SQL("jsonb_build_object('before',{before},'after',{after}{changed})")
_ENTRY = sql.SQL("jsonb_build_object({},{})")


def update_images(
    entity: Entity[Any], columns: Iterable[str],
) -> tuple[sql.Composable, sql.Composable, sql.Composable]:
    """An update's three images of row ``s`` against its ``_o_<name>`` columns, redacted: the diff
    (``changes``: ``{"name": {"before", "after"}}``) and, from each change, its ``before``
    (``previous_values``) and ``after`` (``new_values``), each holding exactly the columns whose
    value changed (empty objects when none did).

    Each image is built per column and joined with ``||`` (one small object per changed column):
    no aggregate, no row set to aggregate over, nothing to materialise. jsonb keeps an object's keys
    in one canonical order, so the value is the same however it is assembled.
    """
    images: tuple[list[sql.Composable], list[sql.Composable], list[sql.Composable]] = ([], [], [])
    for c in columns:
        n, o = sql.Identifier("s", c), sql.Identifier("s", "_o_" + c)
        policy = column_policy(entity.by_name.get(c), c)
        compared = True
        if policy == "secret":  # record only that it was set (or changed, when readable)
            before = after = _literal(SECRET_MARK)
            change = _SECRET_CHANGE.format(marker=before)
            compared = c in entity.column_names  # read back: compare by value like any other
        else:
            before, after = field_expr(entity, c, o), field_expr(entity, c, n)
            change = _CHANGE.format(before=before, after=after, changed=sql.SQL(
                ",'changed',true" if policy != "keep" else ""))
        for image, value in zip(images, (change, before, after), strict=True):
            entry = _ENTRY.format(sql.Literal(c), value)
            image.append(_CHANGED.format(n=n, o=o, entry=entry) if compared else entry)
    diff, previous, new = (sql.SQL("||").join(parts) if parts else _EMPTY_OBJECT
                           for parts in images)
    return diff, previous, new


def _aggregated(pk: str, subject: str | None, where: sql.Composable = _NOTHING,
                relax: bool = False) -> tuple[sql.Composable, sql.Composable]:
    """The four id columns of one record describing the rows of ``s`` that ``where`` keeps, and
    the FROM clause they read: every id aggregated once, in a subquery of one row, and no row
    (so no record) when it aggregated none.

    ``entity_ids`` lists every row's id and ``subject_ids`` every subject once, each in an order
    of the server's choosing (from PostgreSQL 16 the rows may reach the aggregates sorted for the
    distinct subjects); ``entity_id`` and ``subject_student_id`` name the one row and the one
    subject when there is exactly one, whatever the order of rows that name none. The rows are
    one entity's, each at most once (a read of its table, or the rows a write returns), so when
    the subject is the row's own id the subjects are the ids, with no second aggregate.
    ``relax``: the record's commit does not wait for the WAL flush (:data:`_RELAX`, evaluated
    once, with the record).
    """
    ref = sql.Identifier("s", pk)
    aggregates = [sql.SQL("array_agg({r}) FILTER (WHERE {r} IS NOT NULL) AS i").format(r=ref)]
    one_id = sql.SQL("CASE WHEN cardinality(x.i)=1 THEN x.i[1] END,x.i")
    if subject is None:
        subjects: sql.Composable = _COMMA.join((_NULL_UUID, _EMPTY_UUIDS))
    elif subject == pk:
        subjects = one_id
    else:
        aggregates.append(sql.SQL("array_agg(DISTINCT {r}) FILTER (WHERE {r} IS NOT NULL) AS u")
                          .format(r=sql.Identifier("s", subject)))
        subjects = sql.SQL("CASE WHEN cardinality(x.u)=1 THEN x.u[1] END,"
                           "COALESCE(x.u,{empty})").format(empty=_EMPTY_UUIDS)
    kept = sql.SQL("x.i IS NOT NULL AND {}").format(_RELAX) if relax else sql.SQL("x.i IS NOT NULL")
    from_clause = sql.SQL("FROM (SELECT {aggregates} FROM s{where}) x WHERE {kept}").format(
        aggregates=_COMMA.join(aggregates), where=where, kept=kept)
    return _COMMA.join((one_id, subjects)), from_clause


_HEAD = (*CONTEXT_COLUMNS, *RECORD_COLUMNS)
_INSERT_COLS = _COMMA.join(sql.Identifier(c) for c in (*_HEAD, *ID_COLUMNS))
_HEAD_PARAMS = _COMMA.join(param_sql(c) for c in _HEAD)

#: The record columns whose values come from a small set fixed by the code path (the action, the
#: entity, the fields an operation discloses, its classification, outcome and tags). Every
#: statement that writes a record carries them as literals, compiled once per shape, so a call
#: binds only who acts, from where and why (ten context parameters), its ids where SQL does not
#: compute them, and the free-form columns (changes, previous and new values, error, metadata)
#: that are not NULL; a NULL column is left out (its default).
SHAPE_COLUMNS = ("action", "entity_type", "fields_disclosed", "is_phi", "compliance_type",
                 "severity", "success", "tags")
_FREE_COLUMNS = tuple(c for c in RECORD_COLUMNS if c not in SHAPE_COLUMNS)


@attrs.frozen(slots=True, cache_hash=True)  # a key of the memoised statements, hashed per call
class RecordShape:
    """What a record statement's text depends on: the shape columns' values (literals, NULLs
    left out) and which free-form columns are bound (the non-NULL ones)."""

    constants: tuple[tuple[str, str | bool], ...]
    free: tuple[str, ...]


def shape_of(params: Mapping[str, Any]) -> tuple[RecordShape, dict[str, Any]]:
    """Split a record's ``a_<column>`` parameters (:func:`wxdata.audit.record.params`) into its
    statement shape and what a statement of that shape binds: the context and the non-NULL
    free-form columns (a plain INSERT adds the ids)."""
    shape = RecordShape(
        tuple((c, v) for c in SHAPE_COLUMNS if (v := params[f"a_{c}"]) is not None),
        tuple(c for c in _FREE_COLUMNS if params[f"a_{c}"] is not None),
    )
    bound = {f"a_{c}": params[f"a_{c}"] for c in (*CONTEXT_COLUMNS, *shape.free)}
    return shape, bound


def _constant(column: str, value: str | bool) -> sql.Composable:
    """One record field as a literal of its column's type (quoted and escaped by psycopg)."""
    return sql.SQL("{}{}").format(sql.Literal(value), sql.SQL(cast_of(column)))


def _head(shape: RecordShape,
          exprs: dict[str, sql.Composable] | None = None) -> tuple[sql.Composable, sql.Composable]:
    """The record's column list and values before its ids: the context and the free-form
    columns bound, the shape columns as literals, or SQL expressions of the rows (``exprs``);
    NULL columns left out."""
    fixed = dict(shape.constants)
    columns: list[sql.Composable] = []
    values: list[sql.Composable] = []
    for c in _HEAD:
        if exprs and c in exprs:
            value = exprs[c]
        elif c in CONTEXT_COLUMNS or c in shape.free:
            value = param_sql(c)
        elif c in fixed:
            value = _constant(c, fixed[c])
        else:
            continue
        columns.append(sql.Identifier(c))
        values.append(value)
    columns.extend(sql.Identifier(c) for c in ID_COLUMNS)
    return _COMMA.join(columns), _COMMA.join(values)


_INSERT_ONE = sql.SQL("INSERT INTO audit_log ({insert}) VALUES ({values},{ids})")
_INSERT_ONE_RELAXED = sql.SQL("INSERT INTO audit_log ({insert}) SELECT {values},{ids} WHERE {relax}")
_ID_PARAMS = _COMMA.join(param_sql(c) for c in ID_COLUMNS)


@lru_cache(maxsize=1024)
def insert_statement(shape: RecordShape, relaxed: bool = False) -> str:
    """The plain INSERT of one record of ``shape``: its ids bound (``a_entity_id`` ...), the
    rest as :func:`insert_record` binds it; once per shape."""
    insert, values = _head(shape)
    template = _INSERT_ONE_RELAXED if relaxed else _INSERT_ONE
    return template.format(insert=insert, values=values, ids=_ID_PARAMS, relax=_RELAX).as_string()


_NAMED = re.compile(r"%\((a_[a-z_]+)\)s")


def positional(statement: str, params: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """A statement with named ``a_<column>`` parameters and what it binds, as the same text with
    positional placeholders and the values in their order."""
    return _NAMED.sub("%s", statement), tuple(params[n] for n in _NAMED.findall(statement))


@lru_cache(maxsize=1024)
def positional_insert(shape: RecordShape, relaxed: bool = False) -> str:
    """:func:`insert_statement` with positional placeholders, binding the context
    (:func:`~wxdata.audit.record.context_values`), the shape's free-form columns and the ids in
    that order (checked against the named statement, its one source); once per shape."""
    named = insert_statement(shape, relaxed)
    order = [f"a_{c}" for c in (*CONTEXT_COLUMNS, *shape.free, *ID_COLUMNS)]
    if _NAMED.findall(named) != order:
        raise AssertionError("a record statement binds its parameters out of their order")
    return _NAMED.sub("%s", named)


def record_insert(ctx: ExecutionContext, record: AuditRecord, *,
                  relaxed: bool = False) -> tuple[str, dict[str, Any]]:
    """The INSERT of ``record`` written under ``ctx``, and what it binds (see :func:`insert_record`)."""
    return insert_record(record_params(ctx, record), relaxed=relaxed)


def insert_record(params: Mapping[str, Any], *,
                  relaxed: bool = False) -> tuple[str, dict[str, Any]]:
    """The INSERT of one record and what it binds, from the record's ``a_<column>`` parameters:
    the shape columns as literals (see :data:`SHAPE_COLUMNS`), the context, the non-NULL
    free-form columns and the ids bound. ``relaxed``: its commit does not wait for the WAL flush
    (a cache hit's disclosure under ``AUDIT_READ_COMMIT=async``; see :func:`relaxed_commit`)."""
    shape, bound = shape_of(params)
    bound.update({f"a_{c}": params[f"a_{c}"] for c in ID_COLUMNS})
    return insert_statement(shape, relaxed), bound


@attrs.frozen(slots=True)
class RecordTemplate:
    """A record's statement parts that do not depend on who acts or on which rows: the record
    without its ids (as built for some reader), its :class:`RecordShape` and the free-form
    columns it binds (``free``). Who acts is bound per statement (:meth:`params`).

    The record's own fields depend on the context only through the break-glass flag (its
    severity), so one template serves every reader with the same flag (:func:`record_template`).
    """

    base: AuditRecord
    shape: RecordShape
    free: Mapping[str, Any]
    free_values: tuple[Any, ...] = attrs.field(init=False)

    @free_values.default
    def _free_values(self) -> tuple[Any, ...]:
        return tuple(self.free[f"a_{c}"] for c in self.shape.free)

    def params(self, ctx: ExecutionContext) -> dict[str, Any]:
        """What a statement of this shape binds for ``ctx``, but the ids: the context's
        parameters and the free-form columns."""
        out = context_params(ctx)
        if self.free:  # most records bind no free-form column (a read's, a create's)
            out.update(self.free)
        return out

    def values(self, ctx: ExecutionContext) -> tuple[Any, ...]:
        """:meth:`params` in the order :func:`positional_insert` binds them (the ids follow)."""
        return (*context_values(ctx), *self.free_values)


_TEMPLATES: dict[tuple[Any, ...], RecordTemplate] = {}
_TEMPLATES_MAX = 4096
_CONTEXT_PARAMS = frozenset(f"a_{c}" for c in CONTEXT_COLUMNS)


def record_template(ctx: ExecutionContext, build: Callable[..., AuditRecord],
                    *key: Any) -> RecordTemplate:
    """The template of the record ``build(ctx, *key)`` makes, memoised on ``build``, ``key`` (what
    the record depends on besides the context: entity, action, fields, metadata) and the
    context's break-glass flag, so a new request's context builds nothing.

    ``build`` is a function of its arguments alone (a module-level function, not a closure over
    them): nothing is made per call on the way to a template already built."""
    full = (build, *key, ctx.is_break_glass)
    found = _TEMPLATES.get(full)
    if found is None:
        base = build(ctx, *key)
        shape, bound = shape_of(record_params(ctx, base))
        found = RecordTemplate(base, shape, types.MappingProxyType(
            {k: v for k, v in bound.items() if k not in _CONTEXT_PARAMS}))
        if len(_TEMPLATES) >= _TEMPLATES_MAX:  # a bound on distinct shapes, never reached in use
            _TEMPLATES.clear()
        _TEMPLATES[full] = found
    return found


def _names(columns: Iterable[str]) -> sql.Composable:
    return _COMMA.join(sql.Identifier(c) for c in columns)


_RIDE_READ = sql.SQL(
    "WITH s AS ({source}), a AS (INSERT INTO audit_log ({insert}) "
    "SELECT {values},{ids} {from_}) SELECT {cols} FROM s"
)
#: A read of at most one row (by primary key): its record takes the row's id and subject
#: directly, with no aggregate (no row, no record, as with the aggregate form).
_RIDE_READ_ONE = sql.SQL(
    "WITH s AS ({source}), a AS (INSERT INTO audit_log ({insert}) "
    "SELECT {values},{ids} FROM s{where}) SELECT {cols} FROM s"
)
_RIDE_WRITE = sql.SQL(
    "WITH {source}, a AS (INSERT INTO audit_log ({insert}) "
    "SELECT {values},{ids} {from_}) SELECT {cols} FROM s"
)
_RIDE_BULK = sql.SQL(
    "WITH s AS ({source}), a AS (INSERT INTO audit_log ({insert}) "
    "SELECT {params},{ids} {from_}) SELECT count(*) FROM s"
)


def _row_ids(entity: Entity[Any], alias: str = "s") -> sql.Composable:
    """The ids of a record describing exactly one row ``alias`` (no aggregate)."""
    pk = sql.Identifier(alias, entity.pk)
    if entity.subject is None:
        return _COMMA.join((pk, sql.SQL("ARRAY[{}]").format(pk), _NULL_UUID, _EMPTY_UUIDS))
    if entity.subject == entity.pk:  # the row's own id: never NULL
        return _COMMA.join((pk, sql.SQL("ARRAY[{}]").format(pk)) * 2)
    sub = sql.Identifier(alias, entity.subject)
    return _COMMA.join((
        pk, sql.SQL("ARRAY[{}]").format(pk), sub,
        sql.SQL("CASE WHEN {sub} IS NULL THEN {empty} ELSE ARRAY[{sub}] END").format(
            sub=sub, empty=_EMPTY_UUIDS),
    ))


@lru_cache(maxsize=4096)
def ride_read(entity: Entity[Any], source_sql: str, out_columns: tuple[str, ...],
              hit: str | None = None, shape: RecordShape = RecordShape((), ()),
              one_row: bool = False, relaxed: bool = False) -> str:
    """Wrap a SELECT so one READ record (ids and subjects of the rows returned) rides with it.

    The SELECT reads ``entity``'s table and returns each of its rows at most once (see
    :func:`_aggregated`). ``shape`` is the record's (see :class:`RecordShape`); ``one_row`` says
    the SELECT returns at most one row (a primary-key lookup), so the record takes that row's id
    and subject without aggregating. ``relaxed``: the record's commit does not wait for the WAL
    flush (see :func:`relaxed_commit`; set once per record, in the same statement).
    """
    conditions = [sql.Identifier("s", hit)] if hit else []
    insert, values = _head(shape)
    if one_row:
        where = _AND.join([*conditions, _RELAX] if relaxed else conditions)
        return _RIDE_READ_ONE.format(
            source=sql.SQL(source_sql), insert=insert, values=values, ids=_row_ids(entity),
            where=sql.SQL(" WHERE {}").format(where) if relaxed or hit else sql.SQL(""),
            cols=_names(out_columns),
        ).as_string()
    ids, from_clause = _aggregated(
        entity.pk, entity.subject,
        sql.SQL(" WHERE {}").format(conditions[0]) if hit else _NOTHING, relaxed)
    return _RIDE_READ.format(
        source=sql.SQL(source_sql), insert=insert, values=values, ids=ids, from_=from_clause,
        cols=_names(out_columns),
    ).as_string()


@lru_cache(maxsize=4096)
def ride_write(
    entity: Entity[Any],
    source_sql: str,
    out_columns: tuple[str, ...],
    new_columns: tuple[str, ...] = (),
    old_columns: tuple[str, ...] = (),
    diff_columns: tuple[str, ...] = (),
    shape: RecordShape = RecordShape((), ()),
) -> str:
    """Wrap an INSERT/UPDATE/DELETE ... RETURNING so its record rides in the same statement.

    ``new_columns`` go to ``new_values`` as a snapshot (create), ``old_columns`` to
    ``previous_values`` (delete), ``diff_columns`` are diffed against ``_o_<name>`` columns of the
    source (update). The record's ``changes``/``previous_values``/``new_values`` parameters are
    replaced by these SQL expressions; the other record fields stay bound.
    """
    exprs: dict[str, sql.Composable] = {}
    derived: list[sql.Composable] = []  # computed once per row in a CTE, however often used
    if new_columns:
        derived.append(sql.SQL("{} AS _new").format(snapshot_expr(entity, new_columns)))
        exprs["new_values"] = exprs["changes"] = sql.SQL("s._new")  # a create's changes: its snapshot
    if old_columns:
        exprs["previous_values"] = snapshot_expr(entity, old_columns)
    source_cte: sql.Composable = sql.SQL("s AS ({})").format(sql.SQL(source_sql))
    from_clause = sql.SQL("FROM s")
    if diff_columns:  # each image read once, straight from the written row
        exprs["changes"], exprs["previous_values"], exprs["new_values"] = update_images(
            entity, diff_columns)
    if derived:
        # MATERIALIZED: an inlined CTE would copy each expression into every place it is used.
        # It carries what the record reads of the row and nothing more: the ids, the columns an
        # image reads, the derived values (the row itself is returned from s).
        kept = dict.fromkeys((entity.pk, *((entity.subject,) if entity.subject else ()),
                              *old_columns))
        source_cte = sql.SQL("{}, d AS MATERIALIZED (SELECT {}, {} FROM s)").format(
            source_cte, _COMMA.join(sql.Identifier("s", c) for c in kept),
            _COMMA.join(derived))
        from_clause = sql.SQL("FROM d s")
    insert, values = _head(shape, exprs)
    return _RIDE_WRITE.format(
        source=source_cte, insert=insert, values=values, ids=_row_ids(entity),
        from_=from_clause, cols=_names(out_columns),
    ).as_string()


@lru_cache(maxsize=1024)
def ride_bulk(entity: Entity[Any], source_sql: str) -> str:
    """Wrap a multi-row write ... RETURNING id(, subject) so one BULK record lists every id."""
    ids, from_clause = _aggregated(entity.pk, entity.subject)
    return _RIDE_BULK.format(
        source=sql.SQL(source_sql), insert=_INSERT_COLS, params=_HEAD_PARAMS, ids=ids,
        from_=from_clause,
    ).as_string()


#: The condition a relaxed record carries (``AUDIT_READ_COMMIT=async``): evaluated once, when the
#: record is inserted, it sets ``synchronous_commit = off`` for the rest of the statement's own
#: transaction only, so the commit that carries the record does not wait for the WAL flush. Inside
#: the statement, it needs no statement or round trip of its own.
_RELAX = sql.SQL("set_config('synchronous_commit','off',true) IS NOT NULL")


def relaxed_commit(mode: str, autocommit: bool) -> bool:
    """Whether a read's record may commit without waiting for the WAL flush.

    Only when configured (``mode`` is ``async``) and on an autocommit connection outside a unit of
    work and outside any transaction the caller opened (the callers check both: such a read's
    record goes to lane 2), where the read's statement is its own transaction: never a
    transaction that goes on to write, whose commit must stay durable.
    """
    return mode == "async" and autocommit
