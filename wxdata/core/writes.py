"""The write plans: create, update (cross-field validation under a row lock), delete/restore,
bulk update (the bulk load is :mod:`wxdata.core.bulk`)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

import attrs
from psycopg.types.json import Jsonb
from returns.result import Failure, Result, Success

from wxdata.audit import sql as audit_sql
from wxdata.audit.record import AuditAction
from wxdata.audit.redact import redact_row
from wxdata.bulk import BulkOutcome
from wxdata.context import ExecutionContext
from wxdata.core import ride
from wxdata.core.auditing import (
    _announce,
    _fail_write,
    _note_scope_denial,
    _record,
    _riding,
    _write_record,
    _writes_audited,
)
from wxdata.core.effects import Plan
from wxdata.core.execute import (
    _NO_RETRY,
    MAX_BULK,
    R,
    Where,
    _Err,
    _run,
    _uuid,
    _where,
)
from wxdata.errors import (
    Conflict,
    DataError,
    FieldError,
    InvalidQuery,
    NotFound,
    ValidationFailed,
)
from wxdata.query import compiler
from wxdata.schema._rows import row_maker
from wxdata.schema.spec import Entity, Kind, Validator, validator_reads
from wxdata.schema.validate import (
    changes_checker,
    create_checker,
    merged_view,
    validate_changes,
    validate_create,
)
from wxdata.tx.decorators import scope_run_plan
from wxdata.tx.scope import (
    AnyConn,
    ScopeError,
    current_scope,
)

#: The record shape of an unaudited write's statement (it carries no record).
_NO_RECORD = audit_sql.RecordShape((), ())


@functools.lru_cache(maxsize=1024)
def _managed_names(entity: Entity[Any], creating: bool) -> tuple[str, ...]:
    """The columns a write stamps with the acting user, once per entity and kind of write."""
    kinds = ("created_by", "updated_by") if creating else ("updated_by",)
    return tuple(name for kind in kinds if (name := entity.managed(kind)) is not None)


def _clean_values(entity: Entity[Any], values: Mapping[str, Any], *,
                  creating: bool) -> dict[str, Any]:
    """A new row's clean values (``creating``) or an update's clean changes, as
    :func:`~wxdata.schema.validate.validate_create` and
    :func:`~wxdata.schema.validate.validate_changes` give them; ``_Err`` naming every field
    error. Values the entity's precompiled check passes are clean without a ``Success`` made and
    taken apart again on every write; any others take the validating function's path."""
    check, validate = ((create_checker, validate_create) if creating
                       else (changes_checker, validate_changes))
    clean = check(entity)(values) if values else None
    if clean is not None:
        return clean
    match validate(entity, values):
        case Success(valid):
            checked: dict[str, Any] = valid
            return checked
        case refused:
            raise _Err(refused.failure())


def _ordered(entity: Entity[Any], names: Iterable[str]) -> tuple[str, ...]:
    if type(names) is dict:
        return _ordered_names(entity, tuple(names))
    wanted = set(names)
    return tuple(n for n in entity.by_name if n in wanted)


@functools.lru_cache(maxsize=4096)
def _ordered_names(entity: Entity[Any], names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` in the entity's column order, once per entity and set of names in that order."""
    wanted = set(names)
    return tuple(n for n in entity.by_name if n in wanted)


def create(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[R], values: Mapping[str, Any]
) -> Plan[Result[R, DataError]]:
    """Insert a validated row and return it as stored (defaults included)."""
    try:
        clean = _clean_values(entity, values, creating=True)
    except _Err as err:
        return (yield from _fail_write(conn, ctx, entity, AuditAction.CREATE, err.error))
    # No id is sent: the key column's server default makes it (no caller can set a key), the row
    # comes back with it, and the record's snapshot is read from that row. The clean values are
    # this call's own dict: the acting user is stamped into it (no column it holds is managed).
    for name in _managed_names(entity, True):
        clean[name] = ctx.user_id
    columns = _ordered(entity, clean)
    params = _write_params(entity, clean)
    if _writes_audited():
        snap = (entity.pk, *(c for c in columns if c in values))
        riding = _riding(ctx, entity, AuditAction.CREATE)
        sql = _insert_statement(entity, columns, snap, riding.shape)
        params.update(riding.params(ctx))
    else:
        sql = _insert_statement(entity, columns, None, _NO_RECORD)
    try:
        rows = yield from _run(conn, ctx, entity, sql, params)
    except _Err as err:
        return (yield from _fail_write(conn, ctx, entity, AuditAction.CREATE, err.error))
    row = row_maker(entity.row_type)(rows[0])
    yield from _announce(conn, entity, "CREATE", (getattr(row, entity.pk),), row=row)
    return Success(row)


@functools.lru_cache(maxsize=4096)
def _insert_statement(
    entity: Entity[Any], columns: tuple[str, ...], snapshot: tuple[str, ...] | None,
    shape: audit_sql.RecordShape,
) -> str:
    """The INSERT of ``columns`` returning the row, with its CREATE record (a snapshot of
    ``snapshot``, the record's ``shape``) riding in it unless ``snapshot`` is None: once per
    entity and shape."""
    out = entity.column_names
    sql = compiler.insert_row(entity, columns, out)
    if snapshot is None:
        return sql
    return ride.write(entity, sql, out, shape, new_columns=snapshot)


#: The first PostgreSQL (``server_version_num``) whose RETURNING can name the row an UPDATE
#: replaced (``old.<column>``): the audited update then needs no locking self-join for its diff.
RETURNING_OLD_SINCE = 180000


@functools.lru_cache(maxsize=4096)
def _update_statement(
    entity: Entity[Any], columns: tuple[str, ...], check: bool,
    shape: audit_sql.RecordShape | None, old_returning: bool = False, optimistic: bool = False,
) -> str:
    """The UPDATE of ``columns`` by id returning the row, with its diff record (the record's
    ``shape``) riding in it unless ``shape`` is None: once per entity and shape.
    ``old_returning``: the server returns the replaced row itself (PostgreSQL 18); otherwise the
    old row is read in the statement, ``optimistic``-ally or locked
    (:func:`wxdata.query.compiler.update_row`)."""
    out = entity.column_names
    audited = shape is not None
    sql = compiler.update_row(entity, columns, out, check, with_old=audited,
                              old_returning=old_returning, optimistic=optimistic)
    if shape is None:
        return sql
    return ride.write(entity, sql, out, shape, diff_columns=columns)


def _write_params(entity: Entity[Any], clean: Mapping[str, Any]) -> dict[str, Any]:
    """Bound parameters for a write: each value under its column's own name (no column is named
    as a statement's other parameters are: :func:`wxdata.schema.spec.entity`), JSON columns
    wrapped so they bind as jsonb. A new dict, to which the caller adds the statement's other
    parameters; a copy of ``clean`` when no JSON column is written (copied whole, where renaming
    each value cost ten times as much on every create and update)."""
    json_columns = _json_columns(entity)
    if json_columns and not json_columns.isdisjoint(clean):
        return {k: Jsonb(v) if v is not None and k in json_columns else v
                for k, v in clean.items()}
    return dict(clean)


@functools.lru_cache(maxsize=1024)
def _json_columns(entity: Entity[Any]) -> frozenset[str]:
    """The entity's JSON columns (bound as jsonb): once per entity."""
    return frozenset(name for name, c in entity.by_name.items() if c.kind is Kind.JSON)


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
    try:
        clean = _clean_values(entity, changes, creating=False)
    except _Err as err:
        return (yield from _fail_write(conn, ctx, entity, AuditAction.UPDATE, err.error, key))
    if expected_version is not None and (
        isinstance(expected_version, bool) or not isinstance(expected_version, int)
    ):
        return Failure(ValidationFailed(entity.name, (FieldError("version", "must be an integer"),)))
    relevant = _relevant_validators(entity, tuple(clean)) if entity.validators else ()
    if relevant:
        return (yield from _update_validated(conn, ctx, entity, key, clean, expected_version,
                                             relevant))
    return (yield from _update(conn, ctx, entity, key, clean, expected_version))


@functools.lru_cache(maxsize=4096)
def _relevant_validators(entity: Entity[Any], changed: tuple[str, ...]) -> tuple[Validator, ...]:
    """The cross-field validators an update of ``changed`` must run (those reading any of them,
    or declaring nothing): once per entity and set of changed columns."""
    return tuple(
        v for v in entity.validators
        if (declared := validator_reads(v)) is None or not declared.isdisjoint(changed)
    )


def _update(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[R], key: UUID, clean: dict[str, Any],
    expected_version: int | None,
) -> Plan[Result[R, DataError]]:
    columns = _ordered(entity, clean)
    check = expected_version is not None and entity.versioned
    riding = _riding(ctx, entity, AuditAction.UPDATE) if _writes_audited() else None
    shape = riding.shape if riding else None
    # Before PostgreSQL 18 the record's old row is read in the statement: first without a lock,
    # joined by its address; if nothing was updated (the row changed since the snapshot, or is not
    # there), the locking form decides, so the old row is always the one replaced. An unaudited
    # update reads no old row: the server's version does not change its statement.
    old_returning = shape is not None and conn.pgconn.server_version >= RETURNING_OLD_SINCE
    optimistic = shape is not None and not old_returning
    sql = _update_statement(entity, columns, check, shape, old_returning, optimistic)
    params = _write_params(entity, clean)
    params["_id"] = key
    params["_uid"] = ctx.user_id
    params["_version"] = expected_version
    if riding is not None:
        params.update(riding.params(ctx))
    try:
        rows = yield from _run(conn, ctx, entity, sql, params)
        if not rows and optimistic:
            rows = yield from _run(conn, ctx, entity,
                                   _update_statement(entity, columns, check, shape), params)
        if not rows:
            raise _Err((yield from _missing_or_stale(conn, ctx, entity, key, check)))
    except _Err as err:
        return (yield from _fail_write(conn, ctx, entity, AuditAction.UPDATE, err.error, key))
    row = row_maker(entity.row_type)(rows[0])
    yield from _announce(conn, entity, "UPDATE", (key,), row=row, columns=columns)
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
        merged = merged_view(row_maker(entity.row_type)(rows[0]), clean)
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
        riding = _riding(ctx, entity, action)
        sql = ride.write(entity, sql, out, riding.shape, old_columns=old)
        params.update(riding.params(ctx))
    try:
        rows = yield from _run(conn, ctx, entity, sql, params)
        if not rows:
            raise _Err(NotFound(entity=entity.name))
    except _Err as err:
        return (yield from _fail_write(conn, ctx, entity, action, err.error, key))
    row = row_maker(entity.row_type)(rows[0])
    yield from _announce(conn, entity, action.value, (key,), row=row)
    return Success(row)


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
    match validate_changes(entity, changes):
        case Success(clean):
            pass
        case refused:
            return (yield from _fail_write(conn, ctx, entity, AuditAction.BULK_UPDATE,
                                           refused.failure()))
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
            yield from _announce(conn, entity, "BULK_UPDATE", ids, subjects,
                                 columns=columns)
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
