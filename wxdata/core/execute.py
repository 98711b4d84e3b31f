"""Running one statement from a plan: the context applied (pipelined outside a unit of work),
the pooler check, database errors as DataErrors; input checks shared by the data plans."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from returns.result import Failure, Result, Success

from wxdata import _connstate
from wxdata.config import settings
from wxdata.context import OTHER_PRINCIPAL, ExecutionContext, same_principal
from wxdata.core.effects import Execute, Pipeline, Plan, Rows
from wxdata.errors import (
    ContextRefused,
    DataError,
    FieldError,
    Forbidden,
    InvalidQuery,
    NotFound,
    Unavailable,
    ValidationFailed,
)
from wxdata.errors import from_db_error as _db_error
from wxdata.query.filters import Node, bind_where, flat_params
from wxdata.schema._rows import row_maker
from wxdata.schema.spec import Entity
from wxdata.schema.validate import unstorable_text
from wxdata.tx.decorators import TxOptions
from wxdata.tx.scope import (
    POOLER_UNSAFE,
    AnyConn,
    check_context,
    context_for,
    current_scope,
    may_name_statements,
    role_facts,
    role_refusal,
)

R = TypeVar("R")


T = TypeVar("T")
B = TypeVar("B")


Where = Mapping[str, Any] | Node | None


MAX_BULK = 100_000


STREAM_BATCH = 1000


_NO_RETRY = TxOptions(retries=0)


class _Err(Exception):
    """Internal: carries a DataError out of a nested helper to the function's Result boundary.

    Kept on purpose instead of ``returns`` composition. The helpers it leaves are plans (``yield
    from``), which ``bind``/``flow`` cannot thread, so composing them means a ``Success`` per step
    and a test of it in every caller, on the success path of every call. Measured with callgrind
    (a by-id plan of one input check and one statement, driven to the end, 20,000 calls): about
    11,900 instructions per call with this exception, about 23,700 with each step answering a
    Result checked by ``is_successful`` -- some 11,900 more per call, about 6% of a whole
    ``find_by_id``'s client instructions. A ``try`` costs nothing until it raises, and raising
    happens only on the failure path. Every public plan still answers a Result; ``_Err`` never
    leaves this package.
    """

    def __init__(self, error: DataError) -> None:
        super().__init__(error.code)
        self.error = error


def _checked(result: Result[T, DataError]) -> T:
    """The value of a composed check inside a plan; its failure leaves the plan as :class:`_Err`.

    Compose the checks a plan needs with ``bind`` first, then take the value once."""
    match result:
        case Success(value):
            return value  # type: ignore[no-any-return]  # a captured value is Any to mypy
    raise _Err(result.failure())


def _run(
    conn: AnyConn, ctx: ExecutionContext, entity: Entity[Any], sql: str, params: Mapping[str, Any]
) -> Plan[Rows]:
    """Execute one prepared statement and fetch all rows; DB errors become _Err.

    Inside a unit of work the context is already applied. Outside one, a role subject to
    row-level security sends the context's ``set_config(..., true)`` and the statement in one
    pipeline (one implicit transaction, one round trip). Returns :func:`_run_built`'s plan itself
    (no generator frame of its own between the caller and the driver).
    """
    return _run_built(conn, ctx, entity.name, sql, params, _as_fetched)


def _run_named(
    conn: AnyConn, ctx: ExecutionContext, name: str, sql: str, params: Mapping[str, Any]
) -> Plan[Rows]:
    """:func:`_run` of a statement that names its entity (``name``, in its errors) by hand."""
    return _run_built(conn, ctx, name, sql, params, _as_fetched)


def _as_fetched(rows: Rows) -> Rows:
    return rows


def _run_built(
    conn: AnyConn, ctx: ExecutionContext, name: str, sql: str, params: Mapping[str, Any],
    build: Callable[[Rows], list[B]],
) -> Plan[list[B]]:
    """:func:`_run_named`, answering ``build(rows)``: a caller that only builds the rows returns
    this plan itself rather than a generator of its own around it (one frame less per effect).
    The settings are read once for every check of the call."""
    try:
        config = settings()
        if may_name_statements(conn, config):
            raise _Err(Unavailable(reason=POOLER_UNSAFE))
        prepare = config.prepare
        state = _connstate.of(conn)
        if state.scope is None:  # outside a unit of work (no owner thread to check)
            facts = state.role  # learnt on the connection's first statement
            if facts is None:
                facts = yield from role_facts(conn)
            if not facts.privileged or config.transaction_pooled:
                # prepare_plan's work with the role's facts already known: the context checked,
                # the role refused or the scope signed. A privileged role needs no scope, but
                # behind a pooler the timeouts ride the context. Context and statement go in one
                # pipeline: statements pipelined before a Sync run in one implicit transaction, so
                # ``set_config(..., true)`` ends with the statement.
                check_context(ctx, config)
                prepared = context_for(facts, ctx)
                rows: Rows = yield Pipeline((
                    Execute(prepared.sql, prepared.params, prepare, "context"),
                    Execute(sql, params, prepare),
                ))
                return build(rows)
            # A privileged role on a direct connection: nothing rides with the statement, so the
            # same checks as prepare_plan's without building a context statement that is never sent.
            check_context(ctx, config)
            refusal = role_refusal(facts, ctx, config)
            if refusal is not None:
                raise ContextRefused(refusal)
        else:
            opened = current_scope(conn)  # the unit of work is used from its owner thread
            check_context(ctx, config)
            if opened is not None and not same_principal(opened.ctx, ctx):
                raise ContextRefused(Forbidden(entity=name, reason=OTHER_PRINCIPAL))
        rows = yield Execute(sql, params, prepare)
    except psycopg.Error as exc:
        raise _Err(_db_error(exc, name)) from None
    except UnicodeEncodeError:  # its text (the whole value) never leaves: ``from None``
        raise _Err(ValidationFailed(entity=name, errors=(
            FieldError(_unencodable(params), "must be valid Unicode (no lone surrogates)"),
        ))) from None
    return build(rows)


def _unencodable(params: Mapping[str, Any] | Sequence[Any]) -> str:
    """The name of the parameter psycopg could not encode (a text with a lone surrogate), or
    ``parameters`` when it is not a top-level text."""
    named = params.items() if isinstance(params, Mapping) else enumerate(params)
    for key, value in named:
        if isinstance(value, str) and unstorable_text(value) is not None:
            return str(key)
    return "parameters"


def _uuid(value: object, field: str = "id") -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str) and len(value) <= 64:
        try:
            return UUID(value)
        except ValueError:
            pass
    raise _Err(InvalidQuery(field=field, rule="must be a UUID"))


def _projection(entity: Entity[Any], select: tuple[str, ...]) -> tuple[str, ...]:
    """The columns to fetch: the projection plus pk and subject (needed by audit and events)."""
    extra = [c for c in dict.fromkeys((entity.pk, entity.subject)) if c and c not in select]
    return (*select, *extra)


def _rows_builder(
    entity: Entity[R], fetch: tuple[str, ...], select: tuple[str, ...] | None, offset: int = 0
) -> Callable[[list[tuple[Any, ...]]], list[Any]]:
    if select is None:
        # each field read from its position in the fetched tuple (after ``offset`` leading
        # values, in the order fetched): no slicing or reordering of the tuple first
        make = row_maker(entity.row_type,
                         tuple(offset + fetch.index(c) for c in entity.column_names))
        return lambda rows: list(map(make, rows))
    names = fetch
    return lambda rows: [dict(zip(names, r[offset:], strict=True)) for r in rows]


def _where(entity: Entity[Any], where: Where) -> tuple[Any, dict[str, Any]]:
    """The filter's shape and its values as the ``p0, p1...`` parameters (InvalidQuery: _Err)."""
    flat = flat_params(entity, where)  # the common filter, bound without its containers
    if flat is not None:
        return flat
    bound = bind_where(entity, where)
    match bound:
        case Success(b):
            return b.shape, {f"p{i}": v for i, v in enumerate(b.values)}
        case _:
            raise _Err(bound.failure())


def _first(entity: Entity[R], rows: list[R]) -> Result[R, DataError]:
    """The first row, or NotFound."""
    return Success(rows[0]) if rows else Failure(NotFound(entity=entity.name))


def _deleted(include_deleted: bool) -> str:
    return "all" if include_deleted else "live"
