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
from returns.result import Failure, Result

from wxdata import telemetry
from wxdata.context import ExecutionContext
from wxdata.errors import DataError, Retryable, Unavailable, from_db_error
from wxdata.tx.scope import (
    _RANK,
    DisclosureNotRecorded,
    Isolation,
    Scope,
    ScopeError,
    current_scope,
    unit_of_work,
)

P = ParamSpec("P")
T = TypeVar("T")

Conn = psycopg.Connection[Any]

#: Default number of retries of the outermost scope on 40001/40P01.
DEFAULT_RETRIES = 3


class _FailureSignal(Exception):
    """Carries a Failure out of the ``with`` block so the scope rolls back (never escapes)."""

    def __init__(self, result: Result[Any, Any]) -> None:
        super().__init__("failure")
        self.result = result


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


def _body_result(body: Callable[[], Result[T, DataError]]) -> Result[T, DataError]:
    try:
        return body()
    except psycopg.Error as exc:
        return Failure(from_db_error(exc))


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
    if retries < 0:
        raise ValueError("retries must be >= 0")
    scope = current_scope(conn)
    if scope is not None:
        top = scope.frames[-1]
        if token is not None and top.adopt is token:
            top.adopt = None
            if _RANK[isolation] > _RANK[scope.isolation]:
                raise ScopeError(f"adopted scope has weaker isolation than {isolation}")
            return _body_result(body)
        try:
            with unit_of_work(conn, ctx, isolation=isolation, read_only=read_only,
                              deferrable=deferrable):
                result = body()
                if isinstance(result, Failure):
                    raise _FailureSignal(result)
            return result
        except _FailureSignal as signal:
            result = signal.result
        except psycopg.Error as exc:
            result = Failure(from_db_error(exc))
        if scope.unrecorded:  # the savepoint's disclosures lost their records: fail closed
            return Failure(UNRECORDED)
        error = result.failure()
        if isinstance(error, Retryable):
            scope.doom(error)
        return result

    attempt = 0
    while True:
        token = telemetry.attempt.set(attempt)
        units: list[Scope] = []
        try:
            with unit_of_work(conn, ctx, isolation=isolation, read_only=read_only,
                              deferrable=deferrable, audit=audit) as opened:
                units.append(opened)
                opened.frames[-1].adopt = adopt
                result = body()
                if isinstance(result, Failure):
                    raise _FailureSignal(result)
                if opened.doomed is not None:
                    raise _FailureSignal(Failure(opened.doomed))
            return result
        except _FailureSignal as signal:
            result = signal.result
        except psycopg.Error as exc:
            result = Failure(from_db_error(exc))
        except DisclosureNotRecorded:
            return Failure(UNRECORDED)
        finally:
            telemetry.attempt.reset(token)
        if units and units[0].unrecorded:  # rolled back, and a disclosure lost its record
            return Failure(UNRECORDED)
        error = result.failure()
        if not isinstance(error, Retryable) or attempt >= retries:
            return result
        sleep(backoff_delay(attempt))
        attempt += 1


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
