"""The ``transactional`` decorator: a unit of work around any ``(conn, ctx, ...) -> Result`` function.

``Success`` commits (or releases the savepoint), ``Failure`` rolls the scope back and is returned
unchanged, an exception rolls back and propagates, a database error (including one raised by
``COMMIT`` itself) becomes a ``Failure``; so does a rollback that could not keep the record of a
disclosure made inside (``Failure(Unavailable)``, see :class:`wxdata.tx.DisclosureNotRecorded`),
which is never retried. At the outermost level a serialization failure or deadlock
(``Retryable``, SQLSTATE 40001/40P01) re-runs the whole function after a jittered exponential
backoff, a bounded number of times; nothing else is retried. A nested level that meets one condemns
the whole transaction (its snapshot is no longer valid): the outermost level then rolls back and
retries even if the caller swallowed the nested ``Failure``.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import attrs
import psycopg
from returns.result import Failure, Result, Success

from wxdata import telemetry
from wxdata.context import ExecutionContext
from wxdata.core.drive import run
from wxdata.core.effects import Call, Plan, Sleep
from wxdata.core.steps import enter, leave
from wxdata.errors import DataError, Retryable, Unavailable, from_db_error
from wxdata.tx.scope import (
    _RANK,
    AnyConn,
    DisclosureNotRecorded,
    Isolation,
    RollbackScope,
    Scope,
    ScopeError,
    current_scope,
    scope_plan,
)

P = ParamSpec("P")
T = TypeVar("T")

Conn = psycopg.Connection[Any]

#: Default number of retries of the outermost scope on 40001/40P01.
DEFAULT_RETRIES = 3


@attrs.frozen(slots=True)
class TxOptions:
    """The options a ``transactional`` function declared (read by ``audited`` to open its scope)."""

    isolation: Isolation | None = None
    read_only: bool = False
    deferrable: bool = False
    retries: int = DEFAULT_RETRIES
    audit: bool = False


def backoff_delay(attempt: int, base: float = 0.01, cap: float = 1.0) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0.0, min(cap, base * (2**attempt)))  # noqa: S311 - jitter, not crypto


#: What a unit of work answers when a disclosure made inside it could not be recorded.
UNRECORDED = Unavailable(reason="audit lane 2 unavailable: a disclosure could not be recorded")


def _body_result(body: Callable[[], Any]) -> Plan[Result[T, DataError]]:
    try:
        result: Result[T, DataError] = yield Call(body)
    except psycopg.Error as exc:
        return Failure(from_db_error(exc))
    return result


def _attempt(
    conn: AnyConn, ctx: ExecutionContext, body: Callable[[], Any], options: TxOptions,
    adopt: object | None,
) -> Plan[tuple[Result[T, DataError], Scope | None]]:
    """One run of ``body`` in its own level: (its Result, the outermost scope if opened here).

    Success commits (releases) the level; a Failure, or a Success in a transaction a nested level
    doomed, rolls it back quietly and is the answer; a database error (COMMIT's included) becomes
    a Failure.
    """
    sub = scope_plan(conn, ctx, isolation=options.isolation, read_only=options.read_only,
                     deferrable=options.deferrable, audit=options.audit and adopt is not _NESTED)
    opened: Scope | None = None
    try:
        scope: Scope = yield from enter(sub)
        if scope.depth == 1:
            opened = scope
            scope.frames[-1].adopt = adopt
        try:
            result: Result[T, DataError] = yield Call(body)
        except BaseException as exc:  # noqa: BLE001 - handed to the level, which re-raises or not
            yield from leave(sub, exc)
            raise ScopeError(
                "RollbackScope escaped a transactional body: return a Failure instead") from None
        if isinstance(result, Success) and opened is not None and opened.doomed is not None:
            result = Failure(opened.doomed)
        yield from leave(sub, RollbackScope() if isinstance(result, Failure) else None)
    except psycopg.Error as exc:
        return Failure(from_db_error(exc)), opened
    return result, opened


_NESTED = object()


def scope_run_plan(
    conn: AnyConn,
    ctx: ExecutionContext,
    body: Callable[[], Any],
    options: TxOptions,
    *,
    adopt: object | None = None,
    token: object | None = None,
) -> Plan[Result[T, DataError]]:
    """The plan of :func:`run_in_scope`: ``body()`` answers a Result, a plan answering one, or
    (under the async driver) an awaitable of one."""
    if options.retries < 0:
        raise ValueError("retries must be >= 0")
    scope = current_scope(conn)
    if scope is not None:
        top = scope.frames[-1]
        if token is not None and top.adopt is token:
            top.adopt = None
            if _RANK[options.isolation] > _RANK[scope.isolation]:
                raise ScopeError(f"adopted scope has weaker isolation than {options.isolation}")
            return (yield from _body_result(body))
        result: Result[T, DataError]
        result, _ = yield from _attempt(conn, ctx, body, options, _NESTED)
        if scope.unrecorded:  # the savepoint's disclosures lost their records: fail closed
            return Failure(UNRECORDED)
        match result:
            case Failure(Retryable() as error):
                scope.doom(error)
        return result

    attempt = 0
    while True:
        reset = telemetry.attempt.set(attempt)
        try:
            result, opened = yield from _attempt(conn, ctx, body, options, adopt)
        except DisclosureNotRecorded:
            return Failure(UNRECORDED)
        finally:
            telemetry.attempt.reset(reset)
        if isinstance(result, Success):
            return result
        if opened is not None and opened.unrecorded:  # rolled back, a disclosure lost its record
            return Failure(UNRECORDED)
        match result:
            case Failure(Retryable()) if attempt < options.retries:
                pass  # a serialization failure or deadlock: try the whole unit again
            case _:
                return result
        yield Sleep(backoff_delay(attempt))
        attempt += 1


def run_in_scope(
    conn: Conn,
    ctx: ExecutionContext,
    body: Callable[[], Result[T, DataError]],
    *,
    isolation: Isolation | None = None,
    read_only: bool = False,
    deferrable: bool = False,
    retries: int = DEFAULT_RETRIES,
    audit: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    adopt: object | None = None,
    token: object | None = None,
) -> Result[T, DataError]:
    """Run ``body`` in a unit of work: commit on Success, roll back on Failure, retry 40001/40P01.

    Nested in an open scope the body runs in a savepoint and is never retried there (the outermost
    level retries). ``adopt``/``token`` are for decorators only: the outermost level opened with
    ``adopt=x`` lets the first nested call presenting ``token=x`` run in that level without a
    savepoint (the adopter's Result decides for both).
    """
    options = TxOptions(isolation, read_only, deferrable, retries, audit)
    return run(conn, scope_run_plan(conn, ctx, body, options, adopt=adopt, token=token), sleep)


def transactional(
    isolation: Isolation | None = None,
    *,
    read_only: bool = False,
    deferrable: bool = False,
    retries: int = DEFAULT_RETRIES,
    audit: bool = False,
) -> Callable[
    [Callable[Concatenate[Conn, ExecutionContext, P], Result[T, DataError]]],
    Callable[Concatenate[Conn, ExecutionContext, P], Result[T, DataError]],
]:
    """Decorate a ``(conn, ctx, ...) -> Result`` function to run in its own unit of work.

    Outermost: BEGIN with the options, COMMIT on Success, retries on 40001/40P01 (``retries``
    times). Nested in an open unit of work: a savepoint. ``audit=True`` also records
    TRANSACTION_COMMIT / TRANSACTION_ROLLBACK.
    """
    options = TxOptions(isolation, read_only, deferrable, retries, audit)
    if retries < 0:
        raise ValueError("retries must be >= 0")

    def decorate(
        fn: Callable[Concatenate[Conn, ExecutionContext, P], Result[T, DataError]],
    ) -> Callable[Concatenate[Conn, ExecutionContext, P], Result[T, DataError]]:
        @functools.wraps(fn)
        def wrapper(
            conn: Conn, ctx: ExecutionContext, /, *args: P.args, **kwargs: P.kwargs
        ) -> Result[T, DataError]:
            return run_in_scope(
                conn,
                ctx,
                lambda: fn(conn, ctx, *args, **kwargs),
                isolation=isolation,
                read_only=read_only,
                deferrable=deferrable,
                retries=retries,
                audit=audit,
                token=options,
            )

        wrapper.__wx_tx__ = options  # type: ignore[attr-defined]  # copied on by functools.wraps
        return wrapper

    return decorate


def tx_options(fn: Callable[..., Any]) -> TxOptions | None:
    """The options of the ``transactional`` function ``fn`` wraps (through ``functools.wraps``)."""
    options = getattr(fn, "__wx_tx__", None)
    return options if isinstance(options, TxOptions) else None
