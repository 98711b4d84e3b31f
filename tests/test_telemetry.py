"""OpenTelemetry: a span per operation with PHI-free attributes, transactions as parents, retries
counted, metrics recorded — checked with the SDK's in-memory exporters over a real workload."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import psycopg
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from returns.result import Failure, Success

from wxdata import telemetry
from wxdata.cache import build_cache, configure_cache, reset_default
from wxdata.config import load_settings
from wxdata.context import ExecutionContext
from wxdata.domains import students
from wxdata.errors import NotFound, Retryable
from wxdata.tx import transactional, unit_of_work


@pytest.fixture
def otel() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    telemetry.instrument(tracer_provider, MeterProvider(metric_readers=[metrics]))
    try:
        yield spans, metrics
    finally:
        telemetry.uninstrument()


def _attributes(spans: InMemorySpanExporter) -> list[Any]:
    return [v for s in spans.get_finished_spans() for v in (s.attributes or {}).values()]


def test_spans_per_operation_with_phi_free_attributes(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, school: dict[str, uuid.UUID],
    make_student: Any, otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    spans, metrics = otel
    nurse = attrs.evolve(ctx, school_ids=frozenset({school["school_id"]}))
    secret_name = f"Zq{uuid.uuid4().hex[:10]}"
    student = make_student(first_name=secret_name, last_name="Sentinelson")
    students.find_by_id(conn, nurse, student.id).unwrap()
    students.find_many(conn, nurse, where={"first_name": secret_name}).unwrap()
    students.update(conn, nurse, student.id, {"grade": "6"}).unwrap()
    assert isinstance(students.find_by_id(conn, nurse, uuid.uuid4()).failure(), NotFound)
    finished = {s.name: s for s in spans.get_finished_spans()}
    by_id = [s for s in spans.get_finished_spans() if s.name == "wxdata find_by_id"]
    assert [s.attributes["wxdata.outcome"] for s in by_id] == ["ok", "NOT_FOUND"]
    assert by_id[0].attributes["wxdata.entity"] == "Student" and by_id[0].attributes["wxdata.rows"] == 1
    assert finished["wxdata find_many"].attributes["wxdata.rows"] == 1
    assert finished["wxdata update"].attributes["db.system"] == "postgresql"
    seeded = {secret_name, "Sentinelson", student.student_number, str(student.id),
              str(school["school_id"])}
    for value in _attributes(spans):
        assert not any(s in str(value) for s in seeded)
    data = metrics.get_metrics_data()
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "wxdata.operation.duration" in names


def test_operations_in_a_unit_of_work_are_children_of_its_span(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, school: dict[str, uuid.UUID],
    make_student: Any, otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    spans, _ = otel
    nurse = attrs.evolve(ctx, school_ids=frozenset({school["school_id"]}))
    student = make_student()
    with unit_of_work(conn, nurse):
        students.find_by_id(conn, nurse, student.id).unwrap()
        students.update(conn, nurse, student.id, {"grade": "7"}).unwrap()
    finished = spans.get_finished_spans()
    (tx,) = [s for s in finished if s.name == "wxdata transaction"]
    children = [s for s in finished if s.name in ("wxdata find_by_id", "wxdata update")]
    assert len(children) == 2
    assert all(c.parent is not None and c.parent.span_id == tx.context.span_id for c in children)
    assert tx.attributes["wxdata.tx.outcome"] == "commit"


def test_retries_are_counted_on_each_transaction_span(
    conn: psycopg.Connection[Any], ctx: ExecutionContext,
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    spans, _ = otel
    calls: list[int] = []

    @transactional(retries=2)
    def flaky(conn: psycopg.Connection[Any], ctx: ExecutionContext) -> Any:
        calls.append(1)
        return Failure(Retryable(sqlstate="40001")) if len(calls) < 3 else Success(len(calls))

    assert flaky(conn, ctx).unwrap() == 3
    txs = [s for s in spans.get_finished_spans() if s.name == "wxdata transaction"]
    assert [t.attributes["wxdata.tx.retries"] for t in txs] == [0, 1, 2]
    assert [t.attributes["wxdata.tx.outcome"] for t in txs] == ["rollback", "rollback", "commit"]


def test_cache_hits_and_misses_are_counted(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, school: dict[str, uuid.UUID],
    make_student: Any, otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    _, metrics = otel
    nurse = attrs.evolve(ctx, school_ids=frozenset({school["school_id"]}))
    student = make_student()
    configure_cache(build_cache(load_settings({"CACHE_BACKEND": "memory"}), subscribe_writes=True))
    try:
        for _ in range(3):
            students.find_by_student_number(conn, nurse, student.student_number).unwrap()
    finally:
        reset_default()
    points = [p for rm in metrics.get_metrics_data().resource_metrics for sm in rm.scope_metrics
              for m in sm.metrics if m.name == "wxdata.cache.requests" for p in m.data.data_points]
    counts = {p.attributes["wxdata.cache.hit"]: p.value for p in points}
    assert counts == {False: 1, True: 2}


def test_uninstrumented_operations_emit_nothing(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, make_student: Any,
) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    assert not telemetry.instrumented()
    students.find_by_id(conn, ctx, make_student().id)
    assert spans.get_finished_spans() == ()


def test_the_sealer_records_its_lag(
    fresh_database: Any, monkeypatch: pytest.MonkeyPatch,
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    import base64

    from wxdata.audit.chain import seal
    from wxdata.cli import main
    from wxdata.config import configure, settings

    _, metrics = otel
    url = fresh_database()
    with psycopg.connect(url, autocommit=True) as admin:
        seal(admin, b"k" * 32).unwrap()  # what the template database holds is sealed already
        admin.execute("INSERT INTO audit_log (action, entity_type, user_id, created_at) "
                      "VALUES ('READ', 'Student', 'u-lag', now() - interval '90 seconds')")
    key = base64.b64encode(b"k" * 32).decode()
    monkeypatch.setenv("AUDIT_HMAC_KEY", key)
    previous = configure(attrs.evolve(settings(), audit_hmac_key=b"k" * 32))
    try:
        assert main(["audit", "--database-url", url, "seal"]) == 0
    finally:
        configure(previous)
    points = [p for rm in metrics.get_metrics_data().resource_metrics for sm in rm.scope_metrics
              for m in sm.metrics if m.name == "wxdata.audit.seal.lag" for p in m.data.data_points]
    assert len(points) == 1 and points[0].count == 1 and points[0].max >= 89
