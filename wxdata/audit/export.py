"""Streamed, audited exports of the audit trail as CSV, JSON or FHIR AuditEvent NDJSON.

Rows come from a server-side (named) cursor in batches and are written as they arrive, so memory
stays flat however large the window. CSV cells that a spreadsheet would run as a formula (those
starting with ``= + - @``, a tab or a carriage return) are prefixed with a single quote. JSON is
JSON Lines (one object per line) or, with ``json_array=True``, one streamed array.

An export is a disclosure: a completed export writes one EXPORT record (rows, format, window,
filters) in the same transaction as the read; an export that fails after writing rows records a
failed EXPORT on lane 2, since what was written has left the database all the same.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, BinaryIO, Literal, TextIO
from uuid import UUID, uuid4

import attrs
import psycopg
from psycopg.rows import dict_row, tuple_row
from returns.result import Failure, Result, Success

from wxdata.audit.fhir import to_audit_events
from wxdata.audit.lanes import write_detached
from wxdata.audit.record import AuditAction, AuditRecord, ComplianceType, insert_sql, severity_of
from wxdata.audit.record import params as audit_params
from wxdata.audit.reports import AUDIT_ENTITY, deny
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


def _columns(conn: Conn, fmt: Format) -> tuple[tuple[str, ...], str]:
    """Every audit_log column, in table order, as JSON-ready expressions."""
    rows = conn.execute(
        "SELECT a.attname, t.typname, t.typcategory FROM pg_attribute a "
        "JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = 'audit_log'::regclass "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
    ).fetchall()
    names, exprs = [], []
    for name, typ, category in rows:
        ref = 'a."' + name.replace('"', '""') + '"'
        if typ in _RAW_TYPES:
            expr = ref
        elif typ == "timestamptz":
            expr = f"to_char({ref} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        elif typ in ("jsonb", "json") and fmt == "json":
            expr = ref  # parsed, so JSON output nests the document
        elif category == "A":
            expr = f"{ref}::text[]"
        else:
            expr = f"{ref}::text"
        names.append(name)
        exprs.append(expr)
    return tuple(names), ",".join(exprs)


def _where(since: datetime | None, until: datetime | None, student_id: UUID | None,
           entity_type: str | None, user_id: str | None) -> str:
    parts = ["true"]
    if since is not None:
        parts.append("a.created_at >= %(since)s")
    if until is not None:
        parts.append("a.created_at < %(until)s")
    if student_id is not None:
        parts.append("a.subject_ids @> ARRAY[%(student_id)s]::uuid[]")
    if entity_type is not None:
        parts.append("a.entity_type = %(entity_type)s")
    if user_id is not None:
        parts.append("a.user_id = %(user_id)s")
    return " AND ".join(parts)


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
    """Stream the audit records of the window (oldest first) to ``out`` as CSV or JSON."""
    denied = deny(conn, ctx, "export")
    if denied is not None:
        return denied
    if fmt not in ("csv", "json", "fhir"):
        return Failure(InvalidQuery(field="format", rule="must be csv, json or fhir"))
    for name, value in (("since", since), ("until", until)):
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            return Failure(InvalidQuery(field=name, rule="must be a timezone-aware datetime"))
    if current_scope(conn) is not None:
        return Failure(InvalidQuery(field="conn", rule="export needs a connection outside a "
                                                        "unit of work"))
    started = time.perf_counter()
    write = _writer(out)
    written = [0]
    metadata = {
        "format": fmt, "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "entity_type": entity_type, "user_id": user_id,
    }
    params = {"since": since, "until": until, "student_id": student_id,
              "entity_type": entity_type, "user_id": user_id}

    def record(success: bool, error: str | None = None) -> AuditRecord:
        return AuditRecord(
            action=AuditAction.EXPORT, entity_type=AUDIT_ENTITY,
            subject_student_id=student_id, subject_ids=(student_id,) if student_id else (),
            is_phi=True, compliance_type=ComplianceType.HIPAA,
            severity=severity_of(AuditAction.EXPORT, None, ctx, success), success=success,
            error_message=error, metadata={**metadata, "rows": written[0]},
            tags=("audit-export",),
        )

    try:
        with unit_of_work(conn, ctx, isolation=Isolation.REPEATABLE_READ):
            names, select = _columns(conn, fmt) if fmt != "fhir" else ((), "a.*")
            conn.execute("SELECT set_config('cursor_tuple_fraction', '1', true)")
            sql = (f"SELECT {select} FROM audit_log a "
                   f"WHERE {_where(since, until, student_id, entity_type, user_id)} "
                   "ORDER BY a.created_at, a.seq")
            if fmt == "fhir":
                with conn.cursor(name=f"wx_export_{uuid4().hex[:12]}", row_factory=dict_row) as dcur:
                    dcur.itersize = batch_size
                    dcur.execute(sql, params)
                    _stream_fhir(dcur, write, written, batch_size)
            else:
                with conn.cursor(name=f"wx_export_{uuid4().hex[:12]}", row_factory=tuple_row) as cur:
                    cur.itersize = batch_size
                    cur.execute(sql, params)
                    _stream(cur, names, fmt, json_array, write, written, batch_size)
            conn.execute(insert_sql(), audit_params(ctx, record(True)), prepare=settings().prepare)
    except OSError:
        _record_failure(conn, ctx, record, written[0], "OUTPUT_FAILED")
        return Failure(Unavailable(reason="export output could not be written"))
    except psycopg.Error as exc:
        error = _db_error(exc, AUDIT_ENTITY)
        _record_failure(conn, ctx, record, written[0], error.code)
        return Failure(error)
    return Success(ExportReport(written[0], fmt, time.perf_counter() - started))


def _record_failure(conn: Conn, ctx: ExecutionContext, record: Callable[..., AuditRecord],
                    rows: int, code: str) -> None:
    if rows:
        write_detached(conn, ctx, record(False, code))


def _stream(cur: psycopg.Cursor[tuple[Any, ...]], names: tuple[str, ...], fmt: Format,
            json_array: bool, write: Callable[[str], Any], written: list[int],
            batch_size: int) -> None:
    if fmt == "csv":
        sink = _Sink(write)
        rows = csv.writer(sink, lineterminator="\r\n")
        rows.writerow(names)
        while batch := cur.fetchmany(batch_size):
            rows.writerows([_cell(v) for v in r] for r in batch)
            written[0] += len(batch)
        return
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=False).encode
    if json_array:
        write("[")
    first = True
    while batch := cur.fetchmany(batch_size):
        parts = []
        for r in batch:
            text = dumps(dict(zip(names, r, strict=True)))
            if json_array:
                parts.append(("\n" if first else ",\n") + text)
            else:
                parts.append(text + "\n")
            first = False
        write("".join(parts))
        written[0] += len(batch)
    if json_array:
        write("\n]\n" if not first else "]\n")


def _stream_fhir(cur: psycopg.Cursor[dict[str, Any]], write: Callable[[str], Any],
                 written: list[int], batch_size: int) -> None:
    """FHIR NDJSON: one AuditEvent per line (several for a record that disclosed several students)."""
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    while batch := cur.fetchmany(batch_size):
        write("".join(dumps(event) + "\n" for row in batch for event in to_audit_events(row)))
        written[0] += len(batch)


class _Sink:
    """The ``write`` of a text sink as the object ``csv.writer`` expects."""

    def __init__(self, write: Callable[[str], Any]) -> None:
        self.write = write


__all__ = ["FORMULA_START", "ExportReport", "export", "safe_cell"]
