"""The ``transactional`` decorator: a unit of work around any ``(conn, ctx, ...) -> Result`` function.

``Success`` commits (or releases the savepoint), ``Failure`` rolls the scope back and is returned
unchanged, an exception rolls back and propagates. At the outermost level a serialization failure
or deadlock (``Retryable``, SQLSTATE 40001/40P01) re-runs the whole function after a jittered
exponential backoff, a bounded number of times; nothing else is retried.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from returns.result import Failure, Result

from wxdata.context import ExecutionContext
from wxdata.errors import DataError, Retryable, from_db_error
from wxdata.tx.scope import Isolation, RollbackScope, current_scope, unit_of_work

P = ParamSpec("P")
T = TypeVar("T")
E = TypeVar("E", bound=DataError)

Conn = psycopg.Connection[Any]


class _FailureSignal(RollbackScope):
    def __init__(self, result: Result[Any, Any]) -> None:
        super().__init__("failure")
        self.result = result


def backoff_delay(attempt: int, base: float = 0.01, cap: float = 1.0) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0.0, min(cap, base * (2**attempt)))  # noqa: S311 - jitter, not crypto


def run_in_scope(
    conn: Conn,
    ctx: ExecutionContext,
    body: Callable[[], Result[T, DataError]],
    *,
    isolation: Isolation | None = None,
    read_only: bool = False,
    deferrable: bool = False,
    retries: int = 3,
    sleep: Callable[[float], None] = time.sleep,
) -> Result[T, DataError]:
    """Run ``body`` in a unit of work: commit on Success, roll back on Failure, retry 40001/40P01."""
    outermost = current_scope(conn) is None
    attempt = 0
    while True:
        try:
            with unit_of_work(
                conn, ctx, isolation=isolation, read_only=read_only, deferrable=deferrable
            ):
                result = body()
                if isinstance(result, Failure):
                    raise _FailureSignal(result)
            return result
        except _FailureSignal as signal:
            result = signal.result
        except psycopg.Error as exc:
            result = Failure(from_db_error(exc))
        if not (outermost and isinstance(result, Failure)):
            return result
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
    retries: int = 3,
) -> Callable[
    [Callable[Concatenate[Conn, ExecutionContext, P], Result[T, DataError]]],
    Callable[Concatenate[Conn, ExecutionContext, P], Result[T, DataError]],
]:
    """Decorate a ``(conn, ctx, ...) -> Result`` function to run in its own unit of work."""

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
            )

        wrapper.__wrapped_transactional__ = True  # type: ignore[attr-defined]
        return wrapper

    return decorate
