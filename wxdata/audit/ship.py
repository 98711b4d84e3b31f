"""Ship the sealed audit trail to a SIEM: in chain order, at least once, from a persisted mark.

The outbox is the chain itself: sealed records have a gap-free ``position``; a sink's high-water
mark (``audit_ship_mark``) is the last position it confirmed. Each run reads the sealed records
after the mark, turns each into FHIR R4 AuditEvents (:mod:`wxdata.audit.fhir`: ids, codes and
field names, never values), sends them as one batch, and moves the mark only when the sink
confirmed the batch. A sink that is down fails the run with ``Unavailable``; the next run starts
again from the mark, so nothing is skipped (a batch the sink received but did not confirm is sent
again: deduplicate by ``seq``, which every message carries).

Sinks:

- ``syslog+tcp://host:port`` and ``syslog+tls://host:port`` — RFC 5424 messages with octet-counting
  framing (RFC 6587), the transport IHE ATNA uses. A batch is confirmed when the receiver has read
  it all and closed its side after our half-close (with TLS: after our close_notify); a receiver
  that dies with unread data resets the connection instead, and the batch is sent again. TCP
  carries no application acknowledgement: use a receiver that queues to disk if a crash between
  reading and storing must not lose a batch.
- ``file:///path/to/audit.ndjson`` — JSON lines appended and fsynced; ``stdout`` for a pipeline.
- ``otlp+http://host:port`` and ``otlp+https://host:port`` — OpenTelemetry log records over
  OTLP/HTTP (``POST /v1/logs``), one per AuditEvent: the event as a structured body, ``seq`` and
  ``position`` as attributes, severity from the outcome. A batch is confirmed when the collector
  answered the export with success; a refused or failed export is sent again. Needs the optional
  extra ``wxdata[otel-logs]`` (the OpenTelemetry SDK and its OTLP/HTTP exporter: the wire format
  and retry rules are theirs to get right, not ours to re-implement).

``wxdata audit ship --sink URL --once`` ships what is pending; ``--every SECONDS`` keeps shipping.
:func:`lag` reports what a sink still has to receive (records and age), for metrics and alerts.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import attrs
import psycopg
from psycopg.rows import dict_row
from returns.result import Failure, Result, Success

from wxdata.audit.fhir import to_audit_events
from wxdata.errors import DataError, InvalidQuery, Unavailable
from wxdata.errors import from_db_error as _db_error

Conn = psycopg.Connection[Any]
SHIP_BATCH = 500
#: RFC 5424 structured-data id (32473 is the enterprise number reserved for documentation).
SD_ID = "wxdata@32473"
#: Facility 10 (security/authorization, as IHE ATNA uses) times 8, plus severity.
_FACILITY = 10 * 8


class SinkDown(Exception):
    """The sink did not take or did not confirm a batch (carries no record content)."""


@attrs.frozen(slots=True)
class Shipped:
    """One audit record ready to send: its chain position, seq and FHIR AuditEvents."""

    position: int
    seq: int
    recorded: datetime
    outcome: str
    events: tuple[dict[str, Any], ...]


class Sink(Protocol):
    """Where shipped records go; ``send`` returns only once the batch is confirmed."""

    name: str

    def send(self, batch: Sequence[Shipped]) -> None:
        """Deliver and confirm the batch, or raise :class:`SinkDown`."""


def _severity(outcome: str) -> int:
    """Syslog severity from the FHIR outcome: 6 informational, 4 warning, 3 error, 2 critical."""
    return {"0": 6, "4": 4, "8": 3, "12": 2}.get(outcome, 5)


def syslog_message(item: Shipped, event: dict[str, Any], hostname: str, app: str = "wxdata") -> bytes:
    """One RFC 5424 message: header, ``[wxdata@32473 seq= position=]``, the AuditEvent as JSON."""
    stamp = item.recorded.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    pri = _FACILITY + _severity(item.outcome)
    data = f'[{SD_ID} seq="{item.seq}" position="{item.position}"]'
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return f"<{pri}>1 {stamp} {hostname} {app} - AUDIT {data} {body}".encode()


def frame(message: bytes) -> bytes:
    """Octet-counting framing (RFC 6587 3.4.1): ``LENGTH SP MESSAGE``."""
    return str(len(message)).encode() + b" " + message


@attrs.define
class SyslogSink:
    """RFC 5424 over TCP, or TLS when ``tls`` is given; one connection per batch."""

    name: str
    host: str
    port: int
    tls: ssl.SSLContext | None = None
    timeout: float = 10.0
    hostname: str = attrs.field(factory=lambda: socket.gethostname()[:255] or "-")

    def send(self, batch: Sequence[Shipped]) -> None:
        payload = b"".join(frame(syslog_message(item, event, self.hostname))
                           for item in batch for event in item.events)
        try:
            raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise SinkDown(f"cannot connect ({type(exc).__name__})") from None
        sock: socket.socket = raw
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(raw, server_hostname=self.host)
            sock.sendall(payload)
            if isinstance(sock, ssl.SSLSocket):
                try:
                    sock = sock.unwrap()  # our close_notify follows the last record
                except ssl.SSLEOFError:
                    return  # the receiver read up to our close_notify, then closed: confirmed
            sock.shutdown(socket.SHUT_WR)
            self._await_close(sock)
        except (OSError, ssl.SSLError) as exc:
            raise SinkDown(f"batch not confirmed ({type(exc).__name__})") from None
        finally:
            sock.close()

    def _await_close(self, sock: socket.socket) -> None:
        """The receiver read everything and closed: our confirmation."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                if not sock.recv(4096):
                    return
            except ssl.SSLEOFError:
                return
        raise SinkDown("the receiver did not close the connection")


@attrs.define
class JsonLinesSink:
    """JSON lines (one AuditEvent per line, with ``seq`` and ``position``) to a file or stdout."""

    name: str
    path: str | None  # None: standard output

    def send(self, batch: Sequence[Shipped]) -> None:
        lines = "".join(
            json.dumps({"seq": item.seq, "position": item.position, "event": event},
                       ensure_ascii=False, separators=(",", ":")) + "\n"
            for item in batch for event in item.events)
        try:
            if self.path is None:
                sys.stdout.write(lines)
                sys.stdout.flush()
                return
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(lines)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise SinkDown(f"cannot write ({type(exc).__name__})") from None


#: OpenTelemetry severity numbers (logs data model): INFO 9, WARN 13, ERROR 17, FATAL 21.
_OTEL_SEVERITY = {"0": (9, "INFO"), "4": (13, "WARN"), "8": (17, "ERROR"), "12": (21, "FATAL")}


def _plain(value: Any) -> Any:
    """A JSON value without nulls (OTLP's AnyValue has no null inside maps and arrays)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value if v is not None]
    return value


@attrs.define
class OtelLogsSink:
    """OpenTelemetry log records, one per AuditEvent, handed to an SDK log-record exporter.

    ``exporter`` is any ``opentelemetry.sdk._logs.export.LogRecordExporter`` (the OTLP/HTTP one
    for a collector); a batch is confirmed only when ``export`` reports success.
    """

    name: str
    exporter: Any
    service: str = "wxdata"
    _resource: Any = attrs.field(init=False, default=None)

    def _records(self, batch: Sequence[Shipped]) -> list[Any]:
        from opentelemetry._logs import LogRecord, SeverityNumber
        from opentelemetry.sdk._logs import ReadableLogRecord
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        if self._resource is None:
            self._resource = Resource.create({"service.name": self.service})
        scope = InstrumentationScope("wxdata.audit.ship")
        observed = time.time_ns()
        out = []
        for item in batch:
            number, text = _OTEL_SEVERITY.get(item.outcome, (9, "INFO"))
            stamp = int(item.recorded.timestamp() * 1_000_000) * 1_000
            for event in item.events:
                record = LogRecord(
                    timestamp=stamp, observed_timestamp=observed,
                    severity_number=SeverityNumber(number), severity_text=text,
                    body=_plain(json.loads(json.dumps(event, default=str))),
                    attributes={"wxdata.audit.seq": item.seq,
                                "wxdata.audit.position": item.position},
                    event_name="wxdata.audit")
                out.append(ReadableLogRecord(record, resource=self._resource,
                                             instrumentation_scope=scope))
        return out

    def send(self, batch: Sequence[Shipped]) -> None:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        try:
            result = self.exporter.export(self._records(batch))
        except Exception as exc:  # noqa: BLE001 - any exporter error leaves the batch unsent
            raise SinkDown(f"export failed ({type(exc).__name__})") from None
        if result is not LogRecordExportResult.SUCCESS:
            raise SinkDown("the collector did not confirm the export")


def _otlp_sink(scheme: str, host: str, port: int, cafile: str | None,
               timeout: float) -> Result[Sink, DataError]:
    try:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    except ImportError:
        return Failure(InvalidQuery(field="sink", rule="otlp sinks need the optional extra: "
                                                      "pip install 'wxdata[otel-logs]'"))
    base = "https" if scheme == "otlp+https" else "http"
    exporter = OTLPLogExporter(endpoint=f"{base}://{host}:{port}/v1/logs",
                               certificate_file=cafile, timeout=timeout)
    return Success(OtelLogsSink(f"{scheme}://{host}:{port}", exporter))


def sink_from_url(url: str, *, cafile: str | None = None,
                  timeout: float = 10.0) -> Result[Sink, DataError]:
    """A sink from ``syslog+tcp://``, ``syslog+tls://``, ``otlp+http(s)://``, ``file://``, ``stdout``.

    ``timeout`` bounds one delivery attempt (seconds): a sink that does not answer within it is
    down for this run.
    """
    if url == "stdout":
        return Success(JsonLinesSink("stdout", None))
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.path:
        return Success(JsonLinesSink(url, parts.path))
    if parts.scheme in ("syslog+tcp", "syslog+tls") and parts.hostname and parts.port:
        tls = None
        if parts.scheme == "syslog+tls":
            tls = ssl.create_default_context(cafile=cafile)
        return Success(SyslogSink(f"{parts.scheme}://{parts.hostname}:{parts.port}",
                                  parts.hostname, parts.port, tls, timeout=timeout))
    if parts.scheme in ("otlp+http", "otlp+https") and parts.hostname and parts.port:
        return _otlp_sink(parts.scheme, parts.hostname, parts.port, cafile, timeout)
    return Failure(InvalidQuery(field="sink", rule="must be syslog+tcp://host:port, "
                                                  "syslog+tls://host:port, otlp+http://host:port, "
                                                  "otlp+https://host:port, file:///path or stdout"))


@attrs.frozen(slots=True)
class ShipReport:
    """What one run shipped and where the sink's mark stands."""

    sink: str
    shipped: int
    batches: int
    position: int


@attrs.frozen(slots=True)
class Lag:
    """What a sink has not received yet."""

    sink: str
    position: int
    pending: int
    oldest_pending_seconds: float | None


_PENDING_SQL = (
    "SELECT s.position, a.* FROM audit_seal s JOIN audit_log a ON a.id = s.audit_id "
    "WHERE s.position > %(mark)s ORDER BY s.position LIMIT %(limit)s"
)


def _mark(conn: Conn, sink: str) -> int:
    conn.execute("INSERT INTO audit_ship_mark (sink, position) VALUES (%s, 0) "
                 "ON CONFLICT (sink) DO NOTHING", (sink,))
    row = conn.execute("SELECT position FROM audit_ship_mark WHERE sink = %s", (sink,)).fetchone()
    return int(row[0]) if row else 0


def _pending(conn: Conn, mark: int, limit: int) -> list[Shipped]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_PENDING_SQL, {"mark": mark, "limit": limit}).fetchall()
    out = []
    for row in rows:
        events = tuple(to_audit_events(row))
        out.append(Shipped(int(row["position"]), int(row["seq"]), row["created_at"],
                           events[0]["outcome"], events))
    return out


def ship(conn: Conn, sink: Sink, *, batch_size: int = SHIP_BATCH,
         max_batches: int | None = None) -> Result[ShipReport, DataError]:
    """Send every sealed record after the sink's mark, batch by batch, moving the mark on success.

    ``Failure(Unavailable)`` when the sink is down: what was confirmed before stays confirmed.
    """
    shipped = batches = 0
    try:
        position = _mark(conn, sink.name)
        while max_batches is None or batches < max_batches:
            batch = _pending(conn, position, batch_size)
            if not batch:
                break
            try:
                sink.send(batch)
            except SinkDown as down:
                return Failure(Unavailable(reason=f"audit sink {sink.name}: {down}"))
            position = batch[-1].position
            conn.execute("UPDATE audit_ship_mark SET position = %s, shipped = shipped + %s, "
                         "updated_at = now() WHERE sink = %s", (position, len(batch), sink.name))
            shipped += len(batch)
            batches += 1
    except psycopg.Error as exc:
        return Failure(_db_error(exc, "AuditLog"))
    return Success(ShipReport(sink.name, shipped, batches, position))


def lag(conn: Conn, sink: str) -> Result[Lag, DataError]:
    """Records sealed but not yet confirmed by ``sink``, and the age of the oldest of them."""
    try:
        position = _mark(conn, sink)
        row = conn.execute(
            "SELECT count(*), extract(epoch FROM now() - min(a.created_at)) FROM audit_seal s "
            "JOIN audit_log a ON a.id = s.audit_id WHERE s.position > %s", (position,)).fetchone()
    except psycopg.Error as exc:
        return Failure(_db_error(exc, "AuditLog"))
    pending, age = row if row else (0, None)
    return Success(Lag(sink, position, int(pending), None if age is None else float(age)))


__all__ = [
    "JsonLinesSink",
    "Lag",
    "OtelLogsSink",
    "ShipReport",
    "Shipped",
    "Sink",
    "SinkDown",
    "SyslogSink",
    "frame",
    "lag",
    "ship",
    "sink_from_url",
    "syslog_message",
]
