"""Streamed, audited exports of the audit trail as CSV, JSON or FHIR AuditEvent NDJSON.

Rows come from a server-side (named) cursor in batches and are written as they arrive, so memory
stays flat however large the window. CSV cells that a spreadsheet would run as a formula (those
starting with ``= + - @``, a tab or a carriage return) are prefixed with a single quote. JSON is
JSON Lines (one object per line) or, with ``json_array=True``, one streamed array.

An export is a disclosure: a completed export writes one EXPORT record (rows, format, window,
filters) in the same transaction as the read; an export that fails after writing rows records a
failed EXPORT on lane 2, since what was written has left the database all the same. An output
that cannot be written (``OSError``) or a database error is answered as a ``Failure``; any other
exception (an output closed under the export, an interrupt) propagates after that record.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, BinaryIO, Literal, TextIO, cast
from uuid import UUID, uuid4

import attrs
import psycopg
from psycopg import sql
from psycopg.rows import dict_row, tuple_row
from returns.result import Failure, Result, Success

from wxdata.audit.fhir import to_audit_events
from wxdata.audit.lanes import write_detached
from wxdata.audit.record import AuditAction, AuditRecord, ComplianceType, severity_of
from wxdata.audit.reports import AUDIT_ENTITY, deny
from wxdata.audit.sql import record_insert
from wxdata.config import settings
from wxdata.context import ExecutionContext
from wxdata.errors import DataError, InvalidQuery, Unavailable
from wxdata.errors import from_db_error as _db_error
from wxdata.tx.scope import Isolation, current_scope, unit_of_work

Conn = psycopg.Connection[Any]
Format = Literal["csv", "json", "fhir"]
EXPORT_BATCH = 1000

#: First characters that make a spreadsheet evaluate a cell.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_RAW_TYPES = frozenset({"bool", "int2", "int4", "int8", "text", "varchar"})


@attrs.frozen(slots=True)
class ExportReport:
    """What an export wrote."""

    rows: int
    format: str
    seconds: float


def safe_cell(text: str) -> str:
    """A CSV cell no spreadsheet runs as a formula (prefixes a single quote when needed)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | dict):
        return safe_cell(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return safe_cell(str(value))


class _Utf8Sink:
    """Text writes onto a binary stream."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def write(self, text: str) -> int:
        self._out.write(text.encode("utf-8"))
        return len(text)


def _writer(out: TextIO | BinaryIO) -> Callable[[str], Any]:
    if isinstance(out, io.TextIOBase):
        return out.write
    if isinstance(out, io.BufferedIOBase | io.RawIOBase) or "b" in str(getattr(out, "mode", "")):
        return _Utf8Sink(out).write  # type: ignore[arg-type]
    return out.write  # type: ignore[return-value]


COLUMNS_SQL = (
    "SELECT a.attname, t.typname, t.typcategory FROM pg_attribute a "
    "JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = 'audit_log'::regclass "
    "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
)


_UTC_TEXT = sql.SQL("to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")


def _column(name: str, typ: str, category: str, fmt: Format) -> sql.Composable:
    ref = sql.Identifier("a", name)
    if typ in _RAW_TYPES:
        return ref
    if typ == "timestamptz":
        return _UTC_TEXT.format(ref)
    if typ in ("jsonb", "json") and fmt == "json":
        return ref  # parsed, so JSON output nests the document
    if category == "A":
        return sql.SQL("{}::text[]").format(ref)
    return sql.SQL("{}::text").format(ref)


def columns_of(rows: Sequence[tuple[str, str, str]],
               fmt: Format) -> tuple[tuple[str, ...], sql.Composable]:
    """Every audit_log column (rows of :data:`COLUMNS_SQL`), as JSON-ready expressions."""
    if fmt == "fhir":
        return (), sql.SQL("a.*")
    return (tuple(name for name, _typ, _category in rows),
            sql.SQL(",").join(_column(name, typ, category, fmt) for name, typ, category in rows))


def _where(since: datetime | None, until: datetime | None, student_id: UUID | None,
           entity_type: str | None, user_id: str | None) -> sql.Composable:
    parts = [sql.SQL("true")]
    if since is not None:
        parts.append(sql.SQL("a.created_at >= %(since)s"))
    if until is not None:
        parts.append(sql.SQL("a.created_at < %(until)s"))
    if student_id is not None:
        parts.append(sql.SQL("a.subject_ids @> ARRAY[%(student_id)s]::uuid[]"))
    if entity_type is not None:
        parts.append(sql.SQL("a.entity_type = %(entity_type)s"))
    if user_id is not None:
        parts.append(sql.SQL("a.user_id = %(user_id)s"))
    return sql.SQL(" AND ").join(parts)


_EXPORT_SQL = sql.SQL(
    "SELECT {select} FROM audit_log a WHERE {where} ORDER BY a.created_at, a.seq")


@attrs.frozen(slots=True, kw_only=True)
class ExportRequest:
    """A validated export: its window, filters and format, the statement, and its records."""

    ctx: ExecutionContext
    fmt: Format
    since: datetime | None
    until: datetime | None
    json_array: bool
    student_id: UUID | None
    entity_type: str | None
    user_id: str | None
    batch_size: int

    @classmethod
    def of(
        cls, ctx: ExecutionContext, fmt: str, since: datetime | None, until: datetime | None, *,
        json_array: bool = False, student_id: UUID | None = None, entity_type: str | None = None,
        user_id: str | None = None, batch_size: int = EXPORT_BATCH,
    ) -> Result[ExportRequest, DataError]:
        """Check the format and the window (timezone-aware datetimes)."""
        if fmt not in ("csv", "json", "fhir"):
            return Failure(InvalidQuery(field="format", rule="must be csv, json or fhir"))
        for name, value in (("since", since), ("until", until)):
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                return Failure(InvalidQuery(field=name, rule="must be a timezone-aware datetime"))
        return Success(cls(ctx=ctx, fmt=cast(Format, fmt), since=since, until=until,
                           json_array=json_array, student_id=student_id,
                           entity_type=entity_type, user_id=user_id, batch_size=batch_size))

    @property
    def params(self) -> dict[str, Any]:
        """The statement's bound values."""
        return {"since": self.since, "until": self.until, "student_id": self.student_id,
                "entity_type": self.entity_type, "user_id": self.user_id}

    def sql(self, select: sql.Composable) -> sql.Composed:
        """The export statement over the columns ``select`` (every value bound)."""
        where = _where(self.since, self.until, self.student_id, self.entity_type, self.user_id)
        return _EXPORT_SQL.format(select=select, where=where)

    def record(self, rows: int, success: bool, error: str | None = None) -> AuditRecord:
        """The EXPORT record: rows, format, window, filters (no values)."""
        student = self.student_id
        return AuditRecord(
            action=AuditAction.EXPORT, entity_type=AUDIT_ENTITY,
            subject_student_id=student, subject_ids=(student,) if student else (),
            is_phi=True, compliance_type=ComplianceType.HIPAA,
            severity=severity_of(AuditAction.EXPORT, None, self.ctx, success), success=success,
            error_message=error,
            metadata={"format": self.fmt, "since": self.since.isoformat() if self.since else None,
                      "until": self.until.isoformat() if self.until else None,
                      "entity_type": self.entity_type, "user_id": self.user_id, "rows": rows},
            tags=("audit-export",),
        )

    def encoder(self, names: tuple[str, ...]) -> Encoder:
        """The row shaper of this export's format."""
        return Encoder(self.fmt, names, self.json_array)


@attrs.define(slots=True)
class Encoder:
    """Rows to text, batch by batch: CSV (header first), JSON Lines / array, or FHIR NDJSON.

    Pure: ``head()``, then ``batch(rows)`` for every batch (tuples; dicts for FHIR), then
    ``tail()``. The sync and the async export share it.
    """

    fmt: Format
    names: tuple[str, ...]
    json_array: bool = False
    _first: bool = True

    def head(self) -> str:
        """The text before the first row (the CSV header, ``[`` of a JSON array)."""
        if self.fmt == "csv":
            return self._csv([self.names])
        return "[" if self.fmt == "json" and self.json_array else ""

    def batch(self, batch: Sequence[Any]) -> str:
        """One batch of rows as text."""
        if self.fmt == "csv":
            return self._csv([_cell(v) for v in r] for r in batch)
        if self.fmt == "fhir":
            return "".join(_DUMPS(event) + "\n" for row in batch for event in to_audit_events(row))
        parts = []
        for r in batch:
            text = _DUMPS(dict(zip(self.names, r, strict=True)))
            if self.json_array:
                parts.append(("\n" if self._first else ",\n") + text)
            else:
                parts.append(text + "\n")
            self._first = False
        return "".join(parts)

    def tail(self) -> str:
        """The text after the last row (``]`` of a JSON array)."""
        if self.fmt == "json" and self.json_array:
            return "\n]\n" if not self._first else "]\n"
        return ""

    @staticmethod
    def _csv(rows: Iterable[Iterable[Any]]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerows(rows)
        return buffer.getvalue()


_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=False).encode


def export(
    conn: Conn,
    ctx: ExecutionContext,
    out: TextIO | BinaryIO,
    fmt: Format = "csv",
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    json_array: bool = False,
    student_id: UUID | None = None,
    entity_type: str | None = None,
    user_id: str | None = None,
    batch_size: int = EXPORT_BATCH,
) -> Result[ExportReport, DataError]:
    """Stream the audit records of the window (oldest first) to ``out`` as CSV or JSON.

    Rows written before a failure are recorded as a failed EXPORT on lane 2: an ``OSError`` from
    ``out`` or a database error then answers a ``Failure``; any other exception (``out`` closed
    under the export, an interrupt) goes on to the caller once that record is written."""
    denied = deny(conn, ctx, "export")
    if denied is not None:
        return denied
    return export_request(
        ctx, fmt, since, until, in_scope=current_scope(conn) is not None, json_array=json_array,
        student_id=student_id, entity_type=entity_type, user_id=user_id, batch_size=batch_size,
    ).bind(lambda req: _export(conn, ctx, out, req))


def export_request(
    ctx: ExecutionContext, fmt: str, since: datetime | None, until: datetime | None, *,
    in_scope: bool, json_array: bool = False, student_id: UUID | None = None,
    entity_type: str | None = None, user_id: str | None = None, batch_size: int = EXPORT_BATCH,
) -> Result[ExportRequest, DataError]:
    """The checked request of an export (sync or async): its arguments, then that the connection
    has no open unit of work (``in_scope``: the export runs its own REPEATABLE READ one)."""

    def outside(req: ExportRequest) -> Result[ExportRequest, DataError]:
        return Failure(_IN_SCOPE) if in_scope else Success(req)

    return ExportRequest.of(ctx, fmt, since, until, json_array=json_array, student_id=student_id,
                            entity_type=entity_type, user_id=user_id,
                            batch_size=batch_size).bind(outside)


_IN_SCOPE = InvalidQuery(field="conn", rule="export needs a connection outside a unit of work")


def _export(conn: Conn, ctx: ExecutionContext, out: TextIO | BinaryIO,
            req: ExportRequest) -> Result[ExportReport, DataError]:
    batch_size = req.batch_size
    started = time.perf_counter()
    write = _writer(out)
    written = 0
    try:
        with unit_of_work(conn, ctx, isolation=Isolation.REPEATABLE_READ):
            listed = conn.execute(COLUMNS_SQL).fetchall() if req.fmt != "fhir" else []
            names, select = columns_of(listed, req.fmt)
            enc = req.encoder(names)
            conn.execute(CURSOR_FRACTION)
            factory: Any = dict_row if req.fmt == "fhir" else tuple_row
            with conn.cursor(name=cursor_name(), row_factory=factory) as cur:
                cur.itersize = batch_size
                cur.execute(req.sql(select), req.params)
                write(enc.head())
                while batch := cur.fetchmany(batch_size):
                    write(enc.batch(batch))
                    written += len(batch)
                write(enc.tail())
            conn.execute(*record_insert(ctx, req.record(written, True)),
                         prepare=settings().prepare)
    except OSError:
        _record_failure(conn, ctx, req, written, "OUTPUT_FAILED")
        return Failure(Unavailable(reason="export output could not be written"))
    except psycopg.Error as exc:
        error = _db_error(exc, AUDIT_ENTITY)
        _record_failure(conn, ctx, req, written, error.code)
        return Failure(error)
    except BaseException:  # the output's own exception, an interrupt: recorded, then it goes on
        _record_failure(conn, ctx, req, written, "OUTPUT_FAILED")
        raise
    return Success(ExportReport(written, req.fmt, time.perf_counter() - started))


#: Plan for reading every row of the cursor (not the first few fast).
CURSOR_FRACTION = "SELECT set_config('cursor_tuple_fraction', '1', true)"


def cursor_name() -> str:
    """A fresh server-side cursor name."""
    return f"wx_export_{uuid4().hex[:12]}"


def _record_failure(conn: Conn, ctx: ExecutionContext, req: ExportRequest, rows: int,
                    code: str) -> None:
    """Rows that left the database are a disclosure even when the export failed: lane 2."""
    if rows:
        write_detached(conn, ctx, req.record(rows, False, code))


__all__ = [
    "FORMULA_START",
    "Encoder",
    "ExportReport",
    "ExportRequest",
    "export",
    "export_request",
    "safe_cell",
]
