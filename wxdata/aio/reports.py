"""Audit reports on an AsyncConnection: the twins of :mod:`wxdata.audit.reports`, and every page of
a report as an async iterator.

Argument checks, statements, row shaping and records are the sync module's (``*_spec``,
:func:`~wxdata.audit.reports.plan_page`, :func:`~wxdata.audit.reports.statistics_of`,
:func:`~wxdata.audit.reports.denial`); only the I/O is here. The guarantees are the same: only
audit readers may run a report (a refusal is recorded on lane 2), and every page read is itself a
disclosure whose READ record is written in the page's transaction (on lane 2 in a read-only one;
no record, no page).

The iterators (``iter_entity_history``, ``iter_user_activity``, ``iter_accounting_of_disclosures``)
yield one ``Result`` per page, each page read and recorded in its own transaction, following the
keyset cursor to the end; they stop after the first ``Failure``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from psycopg.rows import tuple_row
from returns.result import Failure, Result, Success

from wxdata.aio.audit import write_record, write_surviving
from wxdata.aio.tx import run_in_scope
from wxdata.audit.record import AuditRecord
from wxdata.audit.reports import (
    AUDIT_ENTITY,
    DEFAULT_LIMIT,
    STATS_SQL,
    USERS_SQL,
    AuditEntry,
    AuditPage,
    AuditStatistics,
    Disclosure,
    PagePlan,
    ReportSpec,
    accounting_spec,
    check_statistics,
    denial,
    entity_history_spec,
    plan_page,
    statistics_of,
    statistics_record,
    user_activity_spec,
)
from wxdata.config import settings
from wxdata.context import ExecutionContext
from wxdata.errors import DataError
from wxdata.errors import from_db_error as _db_error

T = TypeVar("T")
U = TypeVar("U")
AConn = psycopg.AsyncConnection[Any]

__all__ = [
    "accounting_of_disclosures",
    "bind_async",
    "deny",
    "disclose",
    "entity_history",
    "iter_accounting_of_disclosures",
    "iter_entity_history",
    "iter_user_activity",
    "statistics",
    "user_activity",
]


async def bind_async(result: Result[T, DataError],
                     step: Callable[[T], Awaitable[Result[U, DataError]]]) -> Result[U, DataError]:
    """``result.bind(step)`` for an async ``step``: awaited on a success, skipped on a failure."""
    match result:
        case Success(value):
            return await step(value)
        case Failure(error):
            return Failure(error)
    raise TypeError("a Result is either a Success or a Failure")


async def deny(conn: AConn, ctx: ExecutionContext, report: str) -> Failure[DataError] | None:
    """Refuse (and record on lane 2) a caller whose role may not read the audit trail."""
    refused = denial(ctx, report)
    if refused is None:
        return None
    await write_surviving(conn, ctx, refused[0])
    return refused[1]


async def disclose(conn: AConn, ctx: ExecutionContext, work: Callable[[], Awaitable[T]],
                   record_of: Callable[[T], AuditRecord]) -> Result[T, DataError]:
    """``await work()`` and write its disclosure record in the same transaction (the twin of
    :func:`wxdata.audit.reports.disclose`): no record, no result."""

    async def body() -> Result[T, DataError]:
        try:
            out = await work()
        except psycopg.Error as exc:
            return Failure(_db_error(exc, AUDIT_ENTITY))
        recorded = await write_record(conn, ctx, record_of(out), disclosure=True)
        return recorded.map(lambda _: out)

    return await run_in_scope(conn, ctx, body)


async def _page(
    conn: AConn, ctx: ExecutionContext, spec: ReportSpec[T], *, since: datetime | None,
    until: datetime | None, cursor: str | None, limit: int,
) -> Result[AuditPage[T], DataError]:
    denied = await deny(conn, ctx, spec.report)
    if denied is not None:
        return denied
    return await bind_async(
        plan_page(ctx, spec, since=since, until=until, cursor=cursor, limit=limit),
        lambda plan: disclose(conn, ctx, lambda: _read_page(conn, plan), plan.record))


async def _read_page(conn: AConn, plan: PagePlan[T]) -> AuditPage[T]:
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(plan.sql, plan.bound, prepare=settings().prepare)
    return plan.page(await cur.fetchall())


async def _pages(
    conn: AConn, ctx: ExecutionContext, spec: Result[ReportSpec[T], DataError], *,
    since: datetime | None, until: datetime | None, limit: int,
) -> AsyncIterator[Result[AuditPage[T], DataError]]:
    cursor: str | None = None
    while True:
        page = await bind_async(spec, partial(_page, conn, ctx, since=since, until=until,
                                              cursor=cursor, limit=limit))
        yield page
        cursor = page.map(lambda p: p.next_cursor).value_or(None)
        if cursor is None:
            return


async def entity_history(
    conn: AConn, ctx: ExecutionContext, entity_type: str, entity_id: UUID | str, *,
    since: datetime | None = None, until: datetime | None = None, cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Result[AuditPage[AuditEntry], DataError]:
    """Every record about one row, oldest first (see :func:`wxdata.audit.reports.entity_history`)."""
    return await bind_async(entity_history_spec(entity_type, entity_id), partial(
        _page, conn, ctx, since=since, until=until, cursor=cursor, limit=limit))


async def user_activity(
    conn: AConn, ctx: ExecutionContext, user_id: str, since: datetime | None = None,
    until: datetime | None = None, *, cursor: str | None = None, limit: int = DEFAULT_LIMIT,
) -> Result[AuditPage[AuditEntry], DataError]:
    """Everything one user did in the window, oldest first."""
    return await bind_async(user_activity_spec(user_id), partial(
        _page, conn, ctx, since=since, until=until, cursor=cursor, limit=limit))


async def accounting_of_disclosures(
    conn: AConn, ctx: ExecutionContext, student_id: UUID | str, since: datetime | None = None,
    until: datetime | None = None, *, cursor: str | None = None, limit: int = DEFAULT_LIMIT,
    include_failures: bool = True,
) -> Result[AuditPage[Disclosure], DataError]:
    """The student's accounting of disclosures (HIPAA 164.528 / FERPA 99.32), oldest first."""
    return await bind_async(accounting_spec(student_id, since, until, include_failures), partial(
        _page, conn, ctx, since=since, until=until, cursor=cursor, limit=limit))


def iter_entity_history(
    conn: AConn, ctx: ExecutionContext, entity_type: str, entity_id: UUID | str, *,
    since: datetime | None = None, until: datetime | None = None, limit: int = DEFAULT_LIMIT,
) -> AsyncIterator[Result[AuditPage[AuditEntry], DataError]]:
    """Every page of :func:`entity_history`, each read and recorded in its own transaction."""
    return _pages(conn, ctx, entity_history_spec(entity_type, entity_id), since=since,
                  until=until, limit=limit)


def iter_user_activity(
    conn: AConn, ctx: ExecutionContext, user_id: str, since: datetime | None = None,
    until: datetime | None = None, *, limit: int = DEFAULT_LIMIT,
) -> AsyncIterator[Result[AuditPage[AuditEntry], DataError]]:
    """Every page of :func:`user_activity`."""
    return _pages(conn, ctx, user_activity_spec(user_id), since=since, until=until, limit=limit)


def iter_accounting_of_disclosures(
    conn: AConn, ctx: ExecutionContext, student_id: UUID | str, since: datetime | None = None,
    until: datetime | None = None, *, limit: int = DEFAULT_LIMIT, include_failures: bool = True,
) -> AsyncIterator[Result[AuditPage[Disclosure], DataError]]:
    """Every page of :func:`accounting_of_disclosures`."""
    return _pages(conn, ctx, accounting_spec(student_id, since, until, include_failures),
                  since=since, until=until, limit=limit)


async def statistics(
    conn: AConn, ctx: ExecutionContext, since: datetime | None = None,
    until: datetime | None = None, *, top_users: int = 20,
) -> Result[AuditStatistics, DataError]:
    """Counts in the window by action, entity type, severity and the busiest users."""
    denied = await deny(conn, ctx, "statistics")
    if denied is not None:
        return denied

    async def work(bound: dict[str, Any]) -> AuditStatistics:
        cur = conn.cursor(row_factory=tuple_row)
        await cur.execute(STATS_SQL, bound, prepare=settings().prepare)
        groups = await cur.fetchall()
        await cur.execute(USERS_SQL, bound, prepare=settings().prepare)
        return statistics_of(groups, await cur.fetchall(), since, until)

    return await bind_async(check_statistics(since, until, top_users), lambda bound: disclose(
        conn, ctx, lambda: work(bound), lambda _: statistics_record(ctx, since, until)))

