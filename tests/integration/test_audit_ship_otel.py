"""Shipping the sealed trail as OpenTelemetry log records over OTLP/HTTP to a receiver started by
the test (an HTTP server decoding the OTLP protobuf request, as a collector does): stopped mid-
stream and restarted, it gets every record in chain order once deduplicated by seq, and no value
of a record reaches it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.integration.test_audit_ship import _sealed_seqs, _write
from tests.ports import free_port
from wxdata.audit.chain import seal
from wxdata.audit.ship import OtelLogsSink, Shipped, lag, ship, sink_from_url
from wxdata.cli import main

KEY = b"test-ship-audit-key-0123456789abcdefgh"  # the key tests.integration.test_audit_ship seals with


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


class Collector:
    """An OTLP/HTTP logs receiver on a private port; keeps what it received, in arrival order."""

    def __init__(self) -> None:
        self.port = free_port()
        self.records: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Collector:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportLogsServiceRequest()
                request.ParseFromString(body)
                collector.raw.append(body)
                for resource in request.resource_logs:
                    service = {kv.key: _value(kv.value) for kv in resource.resource.attributes}
                    for scope in resource.scope_logs:
                        for rec in scope.log_records:
                            attrs = {kv.key: _value(kv.value) for kv in rec.attributes}
                            collector.records.append({
                                "service": service.get("service.name"),
                                "scope": scope.scope.name, "event_name": rec.event_name,
                                "severity": rec.severity_number, "time": rec.time_unix_nano,
                                "seq": attrs["wxdata.audit.seq"],
                                "position": attrs["wxdata.audit.position"],
                                "body": _value(rec.body)})
                reply = ExportLogsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"otlp+http://127.0.0.1:{self.port}"


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector().start()
    try:
        yield server
    finally:
        server.stop()


def _deduplicated(records: list[dict[str, Any]]) -> list[int]:
    seen: dict[int, None] = {}
    for record in records:
        seen.setdefault(record["seq"], None)
    return list(seen)


def test_a_collector_stopped_mid_stream_gets_every_record_in_order_after_restart(
    fresh_database: Callable[[], str], collector: Collector,
) -> None:
    with psycopg.connect(fresh_database(), autocommit=True) as conn:
        _write(conn, 90)
        total = len(_sealed_seqs(conn))
        sink = sink_from_url(collector.url, timeout=2).unwrap()
        assert isinstance(sink, OtelLogsSink)
        sent: list[int] = []

        class StopsMidStream:
            name = sink.name

            def send(self, batch: Sequence[Shipped]) -> None:
                if len(sent) == 2:
                    collector.stop()  # the collector goes down in the middle of the run
                sink.send(batch)
                sent.append(len(batch))

        down = ship(conn, StopsMidStream(), batch_size=20)
        assert down.failure().code == "UNAVAILABLE" and sent == [20, 20]
        assert lag(conn, sink.name).unwrap().pending == total - 40
        _write(conn, 15)  # the trail keeps growing while the collector is down
        assert ship(conn, sink, batch_size=20).failure().code == "UNAVAILABLE"
        collector.start()  # same port: the sink's URL is unchanged
        report = ship(conn, sink, batch_size=20).unwrap()
        expected = _sealed_seqs(conn)
        assert report.shipped == len(expected) - 40 and lag(conn, sink.name).unwrap().pending == 0
        assert _deduplicated(collector.records) == expected  # all of them, in chain order
        positions = [r["position"] for r in collector.records]
        assert positions == sorted(positions)
        first = collector.records[0]
        assert first["service"] == "wxdata" and first["scope"] == "wxdata.audit.ship"
        assert first["event_name"] == "wxdata.audit" and first["severity"] == 9  # INFO
        assert first["body"]["resourceType"] == "AuditEvent" and first["time"] > 0


def test_only_ids_codes_and_field_names_reach_the_collector(
    fresh_database: Callable[[], str], collector: Collector,
) -> None:
    secret = "Zanzibar-Q7-peanut-anaphylaxis"
    with psycopg.connect(fresh_database(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO audit_log (action, entity_type, user_id, subject_ids, new_values, "
            "previous_values, changes) VALUES ('UPDATE', 'Allergy', 'u-otel-phi', "
            "ARRAY[gen_random_uuid()], jsonb_build_object('reaction', %s::text), "
            "jsonb_build_object('reaction', 'none'), "
            "jsonb_build_object('reaction', jsonb_build_object('old', 'none', 'new', %s::text)))",
            (secret, secret))
        seal(conn, KEY).unwrap()
        ship(conn, sink_from_url(collector.url, timeout=2).unwrap()).unwrap()
    assert collector.records, "the collector received the records"
    assert all(secret.encode() not in body for body in collector.raw)
    updates = [r for r in collector.records if r["body"]["action"] == "U"]
    assert updates, "the update's AuditEvent arrived"


def test_a_collector_that_is_not_there_moves_no_mark(fresh_database: Callable[[], str]) -> None:
    with psycopg.connect(fresh_database(), autocommit=True) as conn:
        _write(conn, 5)
        sink = sink_from_url(f"otlp+http://127.0.0.1:{free_port()}", timeout=1).unwrap()
        result = ship(conn, sink)
        assert result.failure().code == "UNAVAILABLE"
        assert lag(conn, sink.name).unwrap().position == 0


def test_the_cli_ships_to_an_otlp_collector(
    fresh_database: Callable[[], str], collector: Collector,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = fresh_database()
    with psycopg.connect(url, autocommit=True) as conn:
        _write(conn, 7)
        expected = _sealed_seqs(conn)
    assert main(["audit", "--database-url", url, "ship", "--sink", collector.url, "--once"]) == 0
    assert _deduplicated(collector.records) == expected
    assert main(["audit", "--database-url", url, "ship", "--sink", collector.url, "--lag"]) == 0
    assert "0 pending" in capsys.readouterr().out
    assert main(["audit", "--database-url", url, "ship", "--sink", "otlp+http://nohost"]) == 2
