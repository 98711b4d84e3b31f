"""Async units of work: the same plans as :mod:`wxdata.tx`, driven on an AsyncConnection.

:func:`unit_of_work` is an async context manager (BEGIN + context in one round trip, savepoints
when nested, COMMIT/ROLLBACK, hooks after the outermost COMMIT only); :func:`transactional`
decorates ``async def f(conn, ctx, ...) -> Result`` (savepoints when nested, retries of
serialization failures and deadlocks with jittered backoff). Hooks may be sync callables or
return awaitables (coroutines are awaited). The scope is kept in the connection's state
(:mod:`wxdata._connstate`): :func:`current_scope` answers it for either kind of connection.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from returns.result import Result

from wxdata.context import ExecutionContext
from wxdata.core.drive import _asleep, arun
from wxdata.core.steps import enter, leave
from wxdata.errors import DataError
from wxdata.tx.decorators import DEFAULT_RETRIES, TxOptions, scope_run_plan
from wxdata.tx.scope import (
    Hook,
    Isolation,
    Scope,
    current_scope,
    hooks_now,
    on_rollback,
    scope_plan,
)

P = ParamSpec("P")
T = TypeVar("T")
AConn = psycopg.AsyncConnection[Any]

__all__ = [
    "after_commit",
    "current_scope",
    "on_rollback",
    "run_in_scope",
    "transactional",
    "unit_of_work",
]


@asynccontextmanager
async def unit_of_work(
    conn: AConn,
    ctx: ExecutionContext,
    *,
    isolation: Isolation | None = None,
    read_only: bool = False,
    deferrable: bool = False,
    audit: bool = False,
) -> AsyncIterator[Scope]:
    """Open a transaction (or a savepoint inside one); commit on exit, roll back on exception.

    The twin of :func:`wxdata.tx.unit_of_work` (same plan): raise
    :class:`~wxdata.tx.RollbackScope` to roll this level back quietly.
    """
    plan = scope_plan(conn, ctx, isolation=isolation, read_only=read_only,
                      deferrable=deferrable, audit=audit)
    scope: Scope = await arun(conn, enter(plan))
    try:
        yield scope
    except BaseException as exc:  # noqa: BLE001 - handed to the level, which re-raises or not
        await arun(conn, leave(plan, exc))  # raises unless the level swallowed it
    else:
        await arun(conn, leave(plan, None))


async def run_in_scope(
    conn: AConn,
    ctx: ExecutionContext,
    body: Callable[[], Awaitable[Result[T, DataError]]],
    *,
    isolation: Isolation | None = None,
    read_only: bool = False,
    deferrable: bool = False,
    retries: int = DEFAULT_RETRIES,
    audit: bool = False,
    sleep: Callable[[float], Awaitable[None]] = _asleep,
    adopt: object | None = None,
    token: object | None = None,
) -> Result[T, DataError]:
    """Run ``await body()`` in a unit of work: commit on Success, roll back on Failure, retry
    40001/40P01 at the outermost level (see :func:`wxdata.tx.run_in_scope`)."""
    options = TxOptions(isolation, read_only, deferrable, retries, audit)
    return await arun(conn, scope_run_plan(conn, ctx, body, options, adopt=adopt, token=token),
                      sleep)


def transactional(
    isolation: Isolation | None = None,
    *,
    read_only: bool = False,
    deferrable: bool = False,
    retries: int = DEFAULT_RETRIES,
    audit: bool = False,
) -> Callable[
    [Callable[Concatenate[AConn, ExecutionContext, P], Awaitable[Result[T, DataError]]]],
    Callable[Concatenate[AConn, ExecutionContext, P], Awaitable[Result[T, DataError]]],
]:
    """Decorate ``async def f(conn, ctx, ...) -> Result`` to run in its own unit of work
    (savepoint when nested); the twin of :func:`wxdata.tx.transactional`."""
    options = TxOptions(isolation, read_only, deferrable, retries, audit)
    if retries < 0:
        raise ValueError("retries must be >= 0")

    def decorate(
        fn: Callable[Concatenate[AConn, ExecutionContext, P], Awaitable[Result[T, DataError]]],
    ) -> Callable[Concatenate[AConn, ExecutionContext, P], Awaitable[Result[T, DataError]]]:
        @functools.wraps(fn)
        async def wrapper(
            conn: AConn, ctx: ExecutionContext, /, *args: P.args, **kwargs: P.kwargs
        ) -> Result[T, DataError]:
            return await arun(conn, scope_run_plan(
                conn, ctx, lambda: fn(conn, ctx, *args, **kwargs), options, token=options))

        wrapper.__wx_tx__ = options  # type: ignore[attr-defined]  # read by audited
        return wrapper

    return decorate


async def after_commit(conn: AConn, hook: Hook) -> None:
    """Run ``hook`` after the open unit of work commits, or now if none is open (awaited if it
    returns an awaitable)."""
    await arun(conn, hooks_now(conn, hook))



