"""OpenTelemetry: a span per operation with PHI-free attributes, transactions as parents, retries
counted, metrics recorded — checked with the SDK's in-memory exporters over a real workload.

The workload tests run through both shells (see :mod:`tests.shells`); the ``test_async_*`` tests
and the concurrency test drive the async API natively with ``asyncio``; the rest run once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from returns.result import Failure, Success

import wxdata.aio as aio
from tests.shells import parametrise
from wxdata import telemetry
from wxdata.aio import crud as acrud
from wxdata.aio.domains import students as astudents
from wxdata.cache import build_cache, configure_cache, reset_default
from wxdata.cache.aio import build_async_cache, configure_async_cache, reset_async_cache
from wxdata.cache.aio import cached as acached
from wxdata.config import load_settings
from wxdata.context import ExecutionContext
from wxdata.domains import students
from wxdata.errors import Conflict, NotFound, Retryable
from wxdata.schema import STUDENTS
from wxdata.tx import transactional, unit_of_work

#: Native asyncio, the sealer command, or a pure wrapper: no shell to choose, runs once.
once = pytest.mark.sync_only
parametrise(globals())


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


@once  # a cached domain finder: sync API only (async: test_async_cache_hits_and_misses_are_counted)
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


@once
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


# --- the async shell --------------------------------------------------------------------------


def _shapes(spans: InMemorySpanExporter) -> list[tuple[str, dict[str, Any]]]:
    """Name and attributes of every wxdata operation span, in the order they ended."""
    return [(s.name, dict(s.attributes or {})) for s in spans.get_finished_spans()
            if s.name != "wxdata transaction"]


def _duration_points(metrics: InMemoryMetricReader) -> dict[tuple[Any, ...], int]:
    return {(p.attributes["wxdata.entity"], p.attributes["wxdata.operation"],
             p.attributes["wxdata.outcome"]): p.count
            for rm in metrics.get_metrics_data().resource_metrics for sm in rm.scope_metrics
            for m in sm.metrics if m.name == "wxdata.operation.duration"
            for p in m.data.data_points}


@once
def test_async_calls_are_spans_with_the_sync_attributes_and_no_phi(
    conn: psycopg.Connection[Any], db_url: str, ctx: ExecutionContext,
    school: dict[str, uuid.UUID], make_student: Any,
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    spans, metrics = otel
    nurse = attrs.evolve(ctx, school_ids=frozenset({school["school_id"]}))
    secret_name = f"Zq{uuid.uuid4().hex[:10]}"
    student = make_student(first_name=secret_name, last_name="Sentinelson")
    missing = uuid.uuid4()

    def sync_calls() -> None:
        students.find_by_id(conn, nurse, student.id).unwrap()
        students.find_many(conn, nurse, where={"first_name": secret_name}).unwrap()
        students.update(conn, nurse, student.id, {"grade": "6"}).unwrap()
        students.update(conn, nurse, student.id, {"grade": "7"}, expected_version=1)
        students.find_by_id(conn, nurse, missing)
        students.ops.stream(conn, nurse, lambda rows: sum(1 for _ in rows),
                            {"first_name": secret_name}).unwrap()
        students.search(conn, nurse, secret_name).unwrap()  # a domain finder

    async def async_calls() -> None:
        async def consume(rows: AsyncIterator[Any]) -> int:
            return len([r async for r in rows])

        async with await aio.connect(db_url) as aconn:
            (await astudents.find_by_id(aconn, nurse, student.id)).unwrap()
            (await astudents.find_many(aconn, nurse, where={"first_name": secret_name})).unwrap()
            (await astudents.update(aconn, nurse, student.id, {"grade": "6"})).unwrap()
            await astudents.update(aconn, nurse, student.id, {"grade": "7"}, expected_version=1)
            await astudents.find_by_id(aconn, nurse, missing)
            (await acrud.stream(aconn, nurse, STUDENTS, consume,
                                {"first_name": secret_name})).unwrap()
            (await astudents.search(aconn, nurse, secret_name)).unwrap()

    spans.clear()  # the set-up's create
    before = _duration_points(metrics)
    sync_calls()
    sync_shapes = _shapes(spans)
    sync_points = _duration_points(metrics)
    spans.clear()
    asyncio.run(async_calls())
    async_shapes = _shapes(spans)
    assert [name for name, _ in async_shapes] == [
        "wxdata find_by_id", "wxdata find_many", "wxdata update", "wxdata update",
        "wxdata find_by_id", "wxdata stream", "wxdata search"]
    assert async_shapes == sync_shapes
    assert async_shapes[3][1]["wxdata.outcome"] == Conflict.code
    assert async_shapes[4][1]["wxdata.outcome"] == "NOT_FOUND"
    assert async_shapes[0][1]["wxdata.entity"] == "Student" and async_shapes[0][1]["wxdata.rows"] == 1
    # every call names its entity: the generic functions by their argument, a finder by its own
    assert all(attributes["wxdata.entity"] == "Student" for _, attributes in async_shapes)
    seeded = {secret_name, "Sentinelson", student.student_number, str(student.id), str(missing),
              str(school["school_id"])}
    for value in _attributes(spans):
        assert not any(s in str(value) for s in seeded)
    # one duration per call, under the same labels as the sync calls: each count grew as much
    grew = {k: v - before.get(k, 0) for k, v in sync_points.items()}
    assert sum(grew.values()) == 7
    assert _duration_points(metrics) == {k: v + grew.get(k, 0) for k, v in sync_points.items()}


@once
def test_async_operations_in_a_unit_of_work_are_children_of_its_span(
    db_url: str, ctx: ExecutionContext, school: dict[str, uuid.UUID], make_student: Any,
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    spans, _ = otel
    nurse = attrs.evolve(ctx, school_ids=frozenset({school["school_id"]}))
    student = make_student()

    async def work() -> None:
        async with await aio.connect(db_url) as aconn:
            async with aio.unit_of_work(aconn, nurse):
                (await astudents.find_by_id(aconn, nurse, student.id)).unwrap()
                (await astudents.update(aconn, nurse, student.id, {"grade": "7"})).unwrap()
            (await astudents.find_by_id(aconn, nurse, student.id)).unwrap()

    asyncio.run(work())
    finished = spans.get_finished_spans()
    (tx,) = [s for s in finished if s.name == "wxdata transaction"]
    inside = [s for s in finished if s.name in ("wxdata find_by_id", "wxdata update")][:2]
    after = [s for s in finished if s.name == "wxdata find_by_id"][-1]
    assert [s.name for s in inside] == ["wxdata find_by_id", "wxdata update"]
    assert all(c.parent is not None and c.parent.span_id == tx.context.span_id for c in inside)
    assert after.parent is None  # the unit of work's span is no longer current
    assert tx.attributes["wxdata.tx.outcome"] == "commit"


@once
def test_async_retries_are_counted_on_each_transaction_span(
    db_url: str, ctx: ExecutionContext, otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    spans, _ = otel
    calls: list[int] = []

    @aio.transactional(retries=2)
    async def flaky(conn: psycopg.AsyncConnection[Any], ctx: ExecutionContext) -> Any:
        calls.append(1)
        return Failure(Retryable(sqlstate="40001")) if len(calls) < 3 else Success(len(calls))

    async def work() -> Any:
        async with await aio.connect(db_url) as aconn:
            return await flaky(aconn, ctx)

    assert asyncio.run(work()).unwrap() == 3
    txs = [s for s in spans.get_finished_spans() if s.name == "wxdata transaction"]
    assert [t.attributes["wxdata.tx.retries"] for t in txs] == [0, 1, 2]
    assert [t.attributes["wxdata.tx.outcome"] for t in txs] == ["rollback", "rollback", "commit"]


@once
def test_concurrent_tasks_spans_never_nest_into_each_other(
    db_url: str, ctx: ExecutionContext, school: dict[str, uuid.UUID], make_student: Any,
) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    request_tracer = provider.get_tracer("tests")
    nurse = attrs.evolve(ctx, school_ids=frozenset({school["school_id"]}))
    pupils = [make_student(), make_student()]

    @telemetry.traced("probe")
    async def probe(conn: Any, ctx: ExecutionContext, entity: Any, opened: asyncio.Event,
                    wait: asyncio.Event) -> Any:
        opened.set()
        await wait.wait()
        return Success(())

    async def in_unit(aconn: Any, student: Any, grade: str) -> None:
        async with aio.unit_of_work(aconn, nurse):
            (await astudents.find_by_id(aconn, nurse, student.id)).unwrap()
            await asyncio.sleep(0)  # the other task's statements run in between
            (await astudents.update(aconn, nurse, student.id, {"grade": grade})).unwrap()

    async def work() -> None:
        first_open, second_done, now = asyncio.Event(), asyncio.Event(), asyncio.Event()
        now.set()

        async def second(conn: Any) -> None:
            await first_open.wait()  # opens and ends its span while the first one is open
            await probe(conn, nurse, STUDENTS, asyncio.Event(), now)
            second_done.set()

        with request_tracer.start_as_current_span("request"):
            async with await aio.connect(db_url) as a, await aio.connect(db_url) as b:
                await asyncio.gather(probe(a, nurse, STUDENTS, first_open, second_done),
                                     second(b))
                await asyncio.gather(in_unit(a, pupils[0], "3"), in_unit(b, pupils[1], "4"))

    telemetry.instrument(provider, MeterProvider(metric_readers=[InMemoryMetricReader()]))
    try:
        asyncio.run(work())
    finally:
        telemetry.uninstrument()
    finished = spans.get_finished_spans()
    (root,) = [s for s in finished if s.name == "request"]
    probes = [s for s in finished if s.name == "wxdata probe"]
    assert len(probes) == 2
    assert all(p.parent is not None and p.parent.span_id == root.context.span_id for p in probes)
    assert all(p.attributes["wxdata.entity"] == "Student" for p in probes)
    # the second probe ran wholly inside the first one's lifetime, yet is its sibling
    first, second = sorted(probes, key=lambda s: s.start_time)
    assert first.start_time < second.start_time and second.end_time < first.end_time
    txs = [s for s in finished if s.name == "wxdata transaction"]
    assert len(txs) == 2
    assert all(t.parent is not None and t.parent.span_id == root.context.span_id for t in txs)
    ops = [s for s in finished if s.name in ("wxdata find_by_id", "wxdata update")]
    by_parent = {t.context.span_id: sorted(s.name for s in ops if s.parent is not None
                                           and s.parent.span_id == t.context.span_id)
                 for t in txs}
    assert list(by_parent.values()) == [["wxdata find_by_id", "wxdata update"]] * 2


@once
def test_async_cache_hits_and_misses_are_counted(
    db_url: str, ctx: ExecutionContext, school: dict[str, uuid.UUID], make_student: Any,
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    _, metrics = otel
    nurse = attrs.evolve(ctx, school_ids=frozenset({school["school_id"]}))
    student = make_student()

    @acached(entity=STUDENTS)
    async def by_number(conn: psycopg.AsyncConnection[Any], ctx: ExecutionContext,
                        number: str) -> Any:
        return await acrud.find_one(conn, ctx, STUDENTS, {"student_number": number})

    async def work() -> None:
        async with await aio.connect(db_url) as aconn:
            for _ in range(3):
                (await by_number(aconn, nurse, student.student_number)).unwrap()

    configure_async_cache(build_async_cache(load_settings({"CACHE_BACKEND": "memory"})))
    try:
        asyncio.run(work())
    finally:
        reset_async_cache()
    points = [p for rm in metrics.get_metrics_data().resource_metrics for sm in rm.scope_metrics
              for m in sm.metrics if m.name == "wxdata.cache.requests" for p in m.data.data_points]
    counts = {p.attributes["wxdata.cache.hit"]: p.value for p in points}
    assert counts == {False: 1, True: 2}


_results = st.one_of(
    st.builds(Success, st.lists(st.integers(), max_size=5)),
    st.builds(Success, st.none() | st.integers()),
    st.builds(lambda e: Failure(e), st.sampled_from(
        [NotFound(entity="Student"), Conflict(entity="Student", reason="stale version"),
         Retryable(sqlstate="40001")])),
)


@once
@given(results=st.lists(_results, min_size=1, max_size=6))
def test_a_coroutine_is_traced_exactly_as_a_function(results: list[Any]) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry.instrument(provider, MeterProvider(metric_readers=[InMemoryMetricReader()]))
    try:
        @telemetry.traced("probe")
        def sync_probe(conn: Any, ctx: Any, entity: Any, result: Any) -> Any:
            return result

        @telemetry.traced("probe")
        async def async_probe(conn: Any, ctx: Any, entity: Any, result: Any) -> Any:
            await asyncio.sleep(0)
            return result

        assert asyncio.iscoroutinefunction(async_probe)
        assert [sync_probe(None, None, STUDENTS, r) for r in results] == results
        sync_shapes = _shapes(spans)
        spans.clear()

        async def run_all() -> list[Any]:
            return [await async_probe(None, None, STUDENTS, r) for r in results]

        assert asyncio.run(run_all()) == results
        assert _shapes(spans) == sync_shapes and len(sync_shapes) == len(results)
    finally:
        telemetry.uninstrument()


# --- exceptions through a span: status and class name, never the exception's text ---------------


def _exported_texts(spans: InMemorySpanExporter) -> list[str]:
    """Every text an exporter ships of each finished span: name, attributes, status description,
    events and their attributes, links' attributes."""
    out: list[str] = []
    for s in spans.get_finished_spans():
        out.append(s.name)
        out.extend(str(v) for v in (s.attributes or {}).values())
        out.append(str(s.status.description or ""))
        for event in s.events:
            out.append(event.name)
            out.extend(str(v) for v in (event.attributes or {}).values())
        for link in s.links:
            out.extend(str(v) for v in (link.attributes or {}).values())
    return out


def _assert_raised_without_phi(
    spans: InMemorySpanExporter, name: str, exc_type: type[BaseException], secret: str,
) -> None:
    """``secret`` is nowhere in what is exported; the span ``name`` ended with status ERROR, no
    exception event, and names the exception's class."""
    from opentelemetry.trace import StatusCode

    leaked = [t for t in _exported_texts(spans) if secret in t]
    assert leaked == [], f"PHI exported in a span: {leaked[:2]}"
    (span,) = [s for s in spans.get_finished_spans() if s.name == name]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["exception.type"] == exc_type.__qualname__
    assert (span.status.description or "").startswith(exc_type.__name__)
    assert "wxdata.outcome" not in span.attributes
    assert [e.name for e in span.events] == []


def _duplicate_key_error(admin_conn: psycopg.Connection[Any], student_id: uuid.UUID) -> psycopg.Error:
    """The UniqueViolation of inserting a copy of a student; PostgreSQL's DETAIL quotes the key."""
    try:
        admin_conn.execute(
            "INSERT INTO students (student_number, first_name, last_name, date_of_birth,"
            " grade, gender, enrollment_date, school_id, district_id)"
            " SELECT student_number, first_name, last_name, date_of_birth, grade, gender,"
            " enrollment_date, school_id, district_id FROM students WHERE id = %s",
            (student_id,))
    except psycopg.errors.UniqueViolation as exc:
        return exc
    raise AssertionError("the copy was inserted")


@once
def test_a_stream_consumer_exception_exports_no_phi_in_the_span(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, school: dict[str, uuid.UUID],
    make_student: Any, otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    """A consumer that fails on a row and quotes it propagates through ``stream``: the span ends
    with status ERROR naming ``ValueError``, and the row's values are nowhere in it."""
    spans, metrics = otel
    secret = f"Zq{uuid.uuid4().hex[:10]}"
    make_student(first_name=secret, last_name="Sentinelson")
    nurse = attrs.evolve(ctx, school_ids=frozenset({school["school_id"]}))
    before = _duration_points(metrics)

    def consume(rows: Iterator[Any]) -> int:
        for row in rows:
            raise ValueError(f"cannot export {row.first_name} born {row.date_of_birth}")
        return 0

    with pytest.raises(ValueError, match=secret):
        students.stream(conn, nurse, consume, {"first_name": secret})
    _assert_raised_without_phi(spans, "wxdata stream", ValueError, secret)
    assert _duration_points(metrics) == before  # no duration for a call that raised


@once
def test_an_async_stream_consumer_exception_exports_no_phi_in_the_span(
    db_url: str, ctx: ExecutionContext, school: dict[str, uuid.UUID], make_student: Any,
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    """The async twin: a consumer raising ``KeyError(<first name>)`` through ``aio`` ``stream``."""
    spans, _ = otel
    secret = f"Zq{uuid.uuid4().hex[:10]}"
    make_student(first_name=secret)
    nurse = attrs.evolve(ctx, school_ids=frozenset({school["school_id"]}))

    async def consume(rows: AsyncIterator[Any]) -> int:
        async for row in rows:
            raise KeyError(row.first_name)
        return 0

    async def work() -> None:
        async with await aio.connect(db_url) as aconn:
            with pytest.raises(KeyError, match=secret):
                await acrud.stream(aconn, nurse, STUDENTS, consume, {"first_name": secret})

    asyncio.run(work())
    _assert_raised_without_phi(spans, "wxdata stream", KeyError, secret)


@once
def test_a_chained_database_error_through_a_stream_exports_no_detail_in_the_span(
    conn: psycopg.Connection[Any], admin_conn: psycopg.Connection[Any], ctx: ExecutionContext,
    school: dict[str, uuid.UUID], make_student: Any,
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    """A consumer's own write meets a unique violation (its DETAIL quotes the key) and wraps it
    (``raise ... from exc``): the span names both classes and the SQLSTATE, never the DETAIL."""
    spans, _ = otel
    secret = f"STU-Zq{uuid.uuid4().hex[:8]}"
    make_student(student_number=secret)
    nurse = attrs.evolve(ctx, school_ids=frozenset({school["school_id"]}))

    def consume(rows: Iterator[Any]) -> int:
        for row in rows:
            error = _duplicate_key_error(admin_conn, row.id)
            assert secret in (error.diag.message_detail or "")
            raise RuntimeError("export step failed") from error
        return 0

    with pytest.raises(RuntimeError):
        students.stream(conn, nurse, consume, {"student_number": secret})
    _assert_raised_without_phi(spans, "wxdata stream", RuntimeError, secret)
    (span,) = [s for s in spans.get_finished_spans() if s.name == "wxdata stream"]
    assert "caused by UniqueViolation sqlstate=23505" in (span.status.description or "")


@once
@pytest.mark.parametrize("wrapper", ["traced", "traced coroutine", "traced_shell", "atraced_shell"])
def test_every_traced_operation_records_a_chained_database_error_without_its_detail(
    wrapper: str, conn: psycopg.Connection[Any], admin_conn: psycopg.Connection[Any],
    ctx: ExecutionContext, make_student: Any,
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    """Each way wxdata opens an operation's span (a data function, a coroutine function, the sync
    and the async shell) lets an exception through unchanged and exports only its description."""
    spans, _ = otel
    secret = f"STU-Zq{uuid.uuid4().hex[:8]}"
    error = _duplicate_key_error(admin_conn, make_student(student_number=secret).id)
    assert secret in (error.diag.message_detail or "")
    raised = RuntimeError("step failed")  # PHI only in the chained DETAIL

    def fail() -> Any:
        raise raised from error

    @telemetry.traced("probe")
    def function(conn: Any, ctx: Any, entity: Any) -> Any:
        return fail()

    @telemetry.traced("probe")
    async def coroutine(conn: Any, ctx: Any, entity: Any) -> Any:
        await asyncio.sleep(0)
        return fail()

    async def adrive(conn: Any, plan: Any) -> Any:
        await asyncio.sleep(0)
        return fail()

    shell = telemetry.traced_shell("probe", lambda conn, *a: None, lambda conn, plan: fail(),
                                   "Student")
    ashell = telemetry.atraced_shell("probe", lambda conn, *a: None, adrive, "Student")
    calls: dict[str, Any] = {
        "traced": lambda: function(conn, ctx, STUDENTS),
        "traced coroutine": lambda: asyncio.run(coroutine(conn, ctx, STUDENTS)),
        "traced_shell": lambda: shell(conn, ctx),
        "atraced_shell": lambda: asyncio.run(ashell(conn, ctx)),
    }
    with pytest.raises(RuntimeError) as caught:
        calls[wrapper]()
    assert caught.value is raised and caught.value.__cause__ is error
    _assert_raised_without_phi(spans, "wxdata probe", RuntimeError, secret)
    (span,) = [s for s in spans.get_finished_spans() if s.name == "wxdata probe"]
    assert span.attributes is not None and span.attributes["wxdata.entity"] == "Student"
    assert "caused by UniqueViolation sqlstate=23505" in (span.status.description or "")
