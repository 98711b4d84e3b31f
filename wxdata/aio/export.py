"""The audit trail exported as an async stream of text chunks (CSV, JSON Lines / array, FHIR
AuditEvent NDJSON): the twin of :func:`wxdata.audit.export.export`.

Validation, statement, records and row shaping are the sync module's
(:class:`~wxdata.audit.export.ExportRequest`, :class:`~wxdata.audit.export.Encoder`); rows come
from a server-side cursor in batches, so memory stays flat. :func:`export_stream` yields
``Success(chunk)`` per batch and ends with the outcome: ``Success(ExportReport)`` once the EXPORT
record is committed in the read's transaction, or the ``Failure``; rows already handed out are then
recorded as a failed EXPORT on lane 2 (they left the database all the same). A consumer that stops
early (a client gone) counts as a failure after the rows it took. :func:`export` drives the stream
into an async (or sync) ``write`` callable and answers the outcome.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row, tuple_row
from returns.result import Failure, Result, Success

from wxdata.aio.audit import write_surviving
from wxdata.aio.reports import deny
from wxdata.aio.tx import unit_of_work
from wxdata.audit.export import (
    COLUMNS_SQL,
    CURSOR_FRACTION,
    EXPORT_BATCH,
    ExportReport,
    ExportRequest,
    columns_of,
    cursor_name,
    export_request,
)
from wxdata.audit.reports import AUDIT_ENTITY
from wxdata.audit.sql import record_insert
from wxdata.config import settings
from wxdata.context import ExecutionContext
from wxdata.errors import DataError, InvalidQuery, Unavailable
from wxdata.errors import from_db_error as _db_error
from wxdata.tx.scope import Isolation, current_scope

AConn = psycopg.AsyncConnection[Any]
Chunk = Result[str | ExportReport, DataError]

__all__ = ["export", "export_stream"]


async def export_stream(
    conn: AConn,
    ctx: ExecutionContext,
    fmt: str = "csv",
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    json_array: bool = False,
    student_id: UUID | None = None,
    entity_type: str | None = None,
    user_id: str | None = None,
    batch_size: int = EXPORT_BATCH,
) -> AsyncGenerator[Chunk, None]:
    """``Success(text)`` per batch, then ``Success(ExportReport)`` or a final ``Failure``."""
    denied = await deny(conn, ctx, "export")
    if denied is not None:
        yield denied
        return
    checked = export_request(
        ctx, fmt, since, until, in_scope=current_scope(conn) is not None, json_array=json_array,
        student_id=student_id, entity_type=entity_type, user_id=user_id, batch_size=batch_size)
    match checked:
        case Success(req):
            # closed with this generator, so a consumer stopping early still records its rows
            async with aclosing(_stream(conn, ctx, req)) as stream:
                async for chunk in stream:
                    yield chunk
        case Failure():
            yield checked


async def _stream(conn: AConn, ctx: ExecutionContext, req: ExportRequest
                  ) -> AsyncGenerator[Chunk, None]:
    batch_size = req.batch_size
    started = time.perf_counter()
    sent = 0
    error: DataError | None = None
    try:
        async with unit_of_work(conn, ctx, isolation=Isolation.REPEATABLE_READ):
            listed = await (await conn.execute(COLUMNS_SQL)).fetchall() if req.fmt != "fhir" else []
            names, select = columns_of(listed, req.fmt)
            enc = req.encoder(names)
            await conn.execute(CURSOR_FRACTION)
            factory: Any = dict_row if req.fmt == "fhir" else tuple_row
            async with conn.cursor(name=cursor_name(), row_factory=factory) as cur:
                cur.itersize = batch_size
                await cur.execute(req.sql(select), req.params)
                head = enc.head()
                while batch := await cur.fetchmany(batch_size):
                    sent += len(batch)  # counted when handed out: a disclosure from then on
                    yield Success(head + enc.batch(batch))
                    head = ""
                yield Success(head + enc.tail())
            await conn.execute(*record_insert(ctx, req.record(sent, True)),
                               prepare=settings().prepare)
    except psycopg.Error as exc:
        error = _db_error(exc, AUDIT_ENTITY)
    except GeneratorExit:  # the consumer stopped: what it took is a disclosure all the same
        if sent:
            await write_surviving(conn, ctx, req.record(sent, False, "OUTPUT_FAILED"))
        raise
    if error is not None:
        if sent:
            await write_surviving(conn, ctx, req.record(sent, False, error.code))
        yield Failure(error)
        return
    yield Success(ExportReport(sent, req.fmt, time.perf_counter() - started))


async def export(
    conn: AConn,
    ctx: ExecutionContext,
    write: Callable[[str], Awaitable[Any] | Any],
    fmt: str = "csv",
    since: datetime | None = None,
    until: datetime | None = None,
    **options: Any,
) -> Result[ExportReport, DataError]:
    """Drive :func:`export_stream` into ``write`` (awaited when it returns an awaitable)."""
    stream = export_stream(conn, ctx, fmt, since, until, **options)
    try:
        async for item in stream:
            match item:
                case Failure():
                    return item
                case Success(ExportReport() as report):
                    return Success(report)
                case Success(text):
                    try:
                        outcome = write(text)
                        if inspect.isawaitable(outcome):
                            await outcome
                    except OSError:
                        await stream.aclose()  # records what was handed out as a failed export
                        return Failure(Unavailable(reason="export output could not be written"))
    finally:
        await stream.aclose()
    return Failure(InvalidQuery(field="export", rule="stream ended without an outcome"))
