"""The service: students, their health records and an audited export, on ``wxdata.aio``.

One ``AsyncConnectionPool`` (:func:`wxdata.aio.create_pool`) for the process, opened and closed
with the application; every request builds its ``ExecutionContext`` from its headers
(:mod:`examples.fastapi_service.context`), checks a connection out for the duration of the call and
hands both to the async domain functions. Everything the database answers is already scoped to the
caller's schools (row-level security with the signed scope) and every read of student data carries
its disclosure record in the same statement; a failure of either is a typed ``DataError`` that
becomes the HTTP status it names, with a PHI-free body.

Endpoints:

- ``GET /students?grade=&page=&limit=``: a page of the caller's students, by name, with the total;
- ``GET /students/{id}``: one student (404 when it does not exist *or* is not in the caller's schools);
- ``GET /students/{id}/health-records?page=&limit=``: the student's health records, newest first;
- ``POST /students/{id}/health-records``: record a new health record (audited write);
- ``GET /students/export?format=csv|ndjson``: every student of the caller's schools. The body is
  built while the rows stream from a server-side cursor, and is sent only once the export's
  record (listing every student disclosed) has been committed: an export that cannot be recorded
  is a 503 with no data.
- ``GET /audit/export?format=json|csv|fhir&student_id=``: the audit trail (audit readers only: a
  refusal is a 403, recorded), streamed batch by batch from :func:`wxdata.aio.export.export_stream`
  with the connection held for the stream; its EXPORT record is committed at the end, and a client
  that goes away early is recorded as a failed export of what it received.

Run: ``DATABASE_URL=... uvicorn examples.fastapi_service.app:app`` (the URL of the application role,
which row-level security applies to).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal
from uuid import UUID

import attrs
from fastapi import Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response, StreamingResponse
from returns.result import Failure, Result, Success

from examples.fastapi_service.context import context_from_headers
from wxdata import ExecutionContext, aio
from wxdata.aio.domains import health_records, students
from wxdata.aio.export import export_stream
from wxdata.errors import DataError
from wxdata.query.paging import Page

NAME_ORDER = (("last_name", "asc"), ("first_name", "asc"))
NEWEST_FIRST = (("record_date", "desc"),)
EXPORT_COLUMNS = ("id", "student_number", "first_name", "last_name", "date_of_birth", "grade",
                  "school_id")


class Failed(Exception):
    """A ``DataError`` on its way to becoming an HTTP response."""

    def __init__(self, error: DataError) -> None:
        super().__init__(error.code)
        self.error = error


def _row(row: Any) -> dict[str, Any]:
    return jsonable_encoder(attrs.asdict(row, recurse=False))  # type: ignore[no-any-return]


def _page(page: Page[Any]) -> dict[str, Any]:
    return {"data": [_row(r) for r in page.data], "page": page.page, "limit": page.limit,
            "total": page.total, "pages": page.pages}


def _answer(result: Result[Any, DataError], shape: Callable[[Any], Any]) -> Any:
    """The shaped value, or :class:`Failed` (turned into the error's status by the handler)."""
    match result:
        case Success(value):
            return shape(value)
        case Failure(error):
            raise Failed(error)
    raise TypeError("not a Result")  # unreachable for a Result


def request_context(request: Request) -> ExecutionContext:
    """The caller's context from the request's headers (a FastAPI dependency); 422 when invalid."""
    built = context_from_headers(request.headers, request.client.host if request.client else None)
    return _answer(built, lambda ctx: ctx)  # type: ignore[no-any-return]


Ctx = Annotated[ExecutionContext, Depends(request_context)]


def create_app(database_url: str | None = None, *, min_size: int = 1, max_size: int = 10) -> FastAPI:
    """The application, with its pool opened at startup and closed at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await aio.create_pool(database_url, min_size=min_size, max_size=max_size,
                                               name="wxdata-example")
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(title="wxdata example service", lifespan=lifespan)

    @app.exception_handler(Failed)
    async def failed(request: Request, exc: Failed) -> JSONResponse:
        return JSONResponse(status_code=exc.error.status, content=jsonable_encoder(
            {"error": exc.error.to_dict()}))

    async def run(request: Request, call: Callable[[Any], Awaitable[Result[Any, DataError]]],
                  shape: Callable[[Any], Any]) -> Any:
        async with request.app.state.pool.connection() as conn:
            result = await call(conn)
        return _answer(result, shape)

    @app.get("/students")
    async def list_students(
        request: Request, ctx: Ctx, grade: str | None = None,
        page: Annotated[int, Query(ge=1)] = 1, limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> Any:
        where = {"grade": grade} if grade is not None else None
        return await run(request, lambda conn: students.find_many(
            conn, ctx, where, order_by=NAME_ORDER, page=page, limit=limit), _page)

    @app.get("/students/export")
    async def export_students(
        request: Request, ctx: Ctx, format: Literal["csv", "ndjson"] = "ndjson",
    ) -> Response:
        async def consume(rows: AsyncIterator[Any]) -> str:
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\r\n") if format == "csv" else None
            if writer is not None:
                writer.writerow(EXPORT_COLUMNS)
            async for row in rows:
                values = jsonable_encoder({c: getattr(row, c) for c in EXPORT_COLUMNS})
                if writer is not None:
                    writer.writerow([_cell(values[c]) for c in EXPORT_COLUMNS])
                else:
                    out.write(json.dumps(values, ensure_ascii=False, separators=(",", ":")) + "\n")
            return out.getvalue()

        body = await run(request, lambda conn: students.stream(
            conn, ctx, consume, order_by=NAME_ORDER), lambda text: text)
        media = "text/csv" if format == "csv" else "application/x-ndjson"
        return Response(body, media_type=media)

    @app.get("/audit/export")
    async def export_audit(
        request: Request, ctx: Ctx, format: Literal["csv", "json", "fhir"] = "json",
        student_id: UUID | None = None,
    ) -> StreamingResponse:
        pool = request.app.state.pool
        conn = await pool.getconn()
        stream = export_stream(conn, ctx, format, student_id=student_id)
        try:
            first = await anext(stream)
        except BaseException:
            await stream.aclose()
            await pool.putconn(conn)
            raise
        if isinstance(first, Failure):  # refused or invalid: nothing was read, a plain error
            await stream.aclose()
            await pool.putconn(conn)
            raise Failed(first.failure())

        async def body() -> AsyncIterator[str]:
            try:
                item = first
                while True:
                    match item:
                        case Success(str() as chunk):
                            yield chunk
                        case Success(_):  # the ExportReport: the EXPORT record is committed
                            return
                        case Failure(error):  # after the first bytes: cut the response short
                            raise Failed(error)
                    item = await anext(stream)
            finally:
                await stream.aclose()
                await pool.putconn(conn)

        media = {"csv": "text/csv", "json": "application/x-ndjson",
                 "fhir": "application/fhir+ndjson"}[format]
        return StreamingResponse(body(), media_type=media)

    @app.get("/students/{student_id}")
    async def get_student(request: Request, ctx: Ctx, student_id: UUID) -> Any:
        return await run(request, lambda conn: students.find_by_id(conn, ctx, student_id), _row)

    @app.get("/students/{student_id}/health-records")
    async def list_health_records(
        request: Request, ctx: Ctx, student_id: UUID,
        page: Annotated[int, Query(ge=1)] = 1, limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> Any:
        return await run(request, lambda conn: health_records.find_many(
            conn, ctx, {"student_id": student_id}, order_by=NEWEST_FIRST, page=page, limit=limit),
            _page)

    @app.post("/students/{student_id}/health-records", status_code=201)
    async def add_health_record(request: Request, ctx: Ctx, student_id: UUID,
                                values: dict[str, Any]) -> Any:
        return await run(request, lambda conn: health_records.create(
            conn, ctx, {**values, "student_id": student_id}), _row)

    return app


def _cell(value: Any) -> str:
    """A CSV cell no spreadsheet runs as a formula (the audit export's rule)."""
    from wxdata.audit.export import safe_cell

    return "" if value is None else safe_cell(str(value))


app = create_app(os.environ.get("DATABASE_URL"))
