"""OpenTelemetry spans and metrics for wxdata operations, PHI-free, off until instrumented.

``pip install 'wxdata[otel]'`` brings ``opentelemetry-api``; wxdata never needs it otherwise. A
service that exports traces calls :func:`instrument` once at start-up (after configuring its
tracer and meter providers); from then on:

- every public data operation (``find_by_id``, ``find_many``, ``create``, ``update``, ... of
  :mod:`wxdata.crud`, :mod:`wxdata.aio.crud` and every domain module and its async twin) is a
  span ``wxdata <operation>`` with the attributes ``wxdata.entity``, ``wxdata.operation``,
  ``wxdata.outcome`` (``ok`` or the error code), ``wxdata.rows``, ``wxdata.cache.hit`` (when a
  cache answered or missed), ``wxdata.audit.lane`` (``statement`` when the record rode in the
  statement, ``detached`` on lane 2) and ``db.system=postgresql``;
- every outermost unit of work is a span ``wxdata transaction`` (``wxdata.tx.retries``: the
  attempt number after serialization failures, ``wxdata.tx.outcome``: commit or rollback), parent
  of the operations run inside it;
- metrics: ``wxdata.operation.duration`` (histogram, seconds, by entity/operation/outcome),
  ``wxdata.cache.requests`` (counter, by entity and hit), ``wxdata.audit.lane2.failures``
  (counter), ``wxdata.audit.seal.lag`` (histogram, seconds, recorded by the sealer).

Attributes never hold values, ids or SQL parameters: only entity and operation names, counts and
codes. An exception propagating through a span ends it with status ERROR, described by
:func:`wxdata.safelog.describe` (class names, SQLSTATE, constraint, where it was raised) and named
in ``exception.type``; no exception event, message or traceback is recorded. Uninstrumented, an
operation pays one attribute check.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar, cast

import attrs
from returns.result import Failure, Success

from wxdata.safelog import describe

P = ParamSpec("P")
T = TypeVar("T")
G = TypeVar("G")  # a plan (the generator a shell drives)


@attrs.define(slots=True)
class _State:
    tracer: Any = None
    duration: Any = None
    cache_requests: Any = None
    lane_failures: Any = None
    seal_lag: Any = None


_state = _State()


def instrument(tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Start emitting spans and metrics (providers default to the global ones)."""
    from opentelemetry import metrics, trace

    from wxdata import __version__

    tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("wxdata", __version__)
    meter = (meter_provider or metrics.get_meter_provider()).get_meter("wxdata", __version__)
    _state.duration = meter.create_histogram(
        "wxdata.operation.duration", unit="s", description="wxdata operation latency")
    _state.cache_requests = meter.create_counter(
        "wxdata.cache.requests", description="cache lookups by entity and hit")
    _state.lane_failures = meter.create_counter(
        "wxdata.audit.lane2.failures", description="audit records lane 2 could not write")
    _state.seal_lag = meter.create_histogram(
        "wxdata.audit.seal.lag", unit="s", description="age of the oldest unsealed record")
    _state.tracer = tracer


def uninstrument() -> None:
    """Stop emitting (tests, shutdown)."""
    _state.tracer = None


def instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _state.tracer is not None


def _rows(value: Any) -> int:
    if isinstance(value, tuple | list):
        return len(value)
    data = getattr(value, "data", None)  # a Page
    if isinstance(data, tuple | list):
        return len(data)
    return 0 if value is None else 1


def _outcome(result: Any) -> tuple[str, int | None]:
    """``ok`` or the failure's code, and how many rows a Success holds."""
    match result:
        case Success(value):
            return "ok", _rows(value)
        case Failure(error):
            return str(getattr(error, "code", "error")), None
    return "ok", None


def _entity(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The entity name of a ``(conn, ctx, entity, ...)`` call (empty when there is none)."""
    target = args[2] if len(args) > 2 else None
    return str(getattr(target, "name", None) or getattr(kwargs.get("entity"), "name", "") or "")


def _raised(span: Any, exc: Exception) -> None:
    """Mark ``span`` as ended by ``exc``: status ERROR described by :func:`describe` and the
    exception's class name in ``exception.type``. Never the exception's text or traceback, which
    may quote row values (OpenTelemetry's own recording exports both, so spans are opened without
    it)."""
    if not span.is_recording():
        return
    from opentelemetry.trace import StatusCode

    span.set_attribute("exception.type", type(exc).__qualname__)
    span.set_status(StatusCode.ERROR, describe(exc))


@contextlib.contextmanager
def _measured(tracer: Any, operation: str, name: str) -> Iterator[Callable[[T], T]]:
    """The span of one call, current while the call runs; yields ``finish(result)``, which sets
    the outcome and rows. The duration is recorded once the span has ended (not when the call
    raised: the span then ends with status ERROR, its description and ``exception.type`` naming
    the exception's class and where it was raised, never its text)."""
    started = time.perf_counter()
    outcomes: list[str] = []
    with tracer.start_as_current_span(f"wxdata {operation}", record_exception=False,
                                      set_status_on_exception=False) as span:
        span.set_attribute("db.system", "postgresql")
        span.set_attribute("wxdata.operation", operation)
        if name:
            span.set_attribute("wxdata.entity", name)

        def finish(result: T) -> T:
            outcome, rows = _outcome(result)
            span.set_attribute("wxdata.outcome", outcome)
            if rows is not None:
                span.set_attribute("wxdata.rows", rows)
            outcomes.append(outcome)
            return result

        try:
            yield finish
        except Exception as exc:
            _raised(span, exc)
            raise
    for outcome in outcomes:
        _state.duration.record(time.perf_counter() - started,
                               {"wxdata.entity": name, "wxdata.operation": operation,
                                "wxdata.outcome": outcome})


def traced(operation: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorate a ``(conn, ctx, entity, ...)`` data function: a span and a duration per call.

    A coroutine function stays one: its span is current in the awaiting task's context from the
    first step to the answer, so concurrent tasks' spans are siblings under whatever was current
    when each task started, never nested into one another.
    """
    def wrap(fn: Callable[P, T]) -> Callable[P, T]:
        if inspect.iscoroutinefunction(fn):
            return cast(Callable[P, T], _traced_coroutine(operation, fn))

        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            tracer = _state.tracer
            if tracer is None:
                return fn(*args, **kwargs)
            with _measured(tracer, operation, _entity(args, kwargs)) as finish:
                return finish(fn(*args, **kwargs))
        return call
    return wrap


def traced_shell(
    operation: str,
    plan: Callable[..., G],
    drive: Callable[[Any, G], T],
    entity: str = "",
) -> Callable[..., T]:
    """The sync function of ``plan``: ``call(conn, ...)`` drives ``plan(conn, ...)`` with
    ``drive`` (the sync driver), a span and a duration per call as :func:`traced` gives.

    One frame between the caller and the driver: the data functions' shell and their tracing
    are the same call, not a traced wrapper around a shell. ``entity``: the entity's name when
    the function is bound to one (a domain's finder); otherwise the call's third argument is
    its entity, as for :func:`traced`.
    """
    def call(conn: Any, /, *args: Any, **kwargs: Any) -> T:
        tracer = _state.tracer
        if tracer is None:
            return drive(conn, plan(conn, *args, **kwargs))
        with _measured(tracer, operation, entity or _entity((conn, *args), kwargs)) as finish:
            return finish(drive(conn, plan(conn, *args, **kwargs)))
    return call


def atraced_shell(
    operation: str,
    plan: Callable[..., G],
    drive: Callable[[Any, G], Awaitable[T]],
    entity: str = "",
) -> Callable[..., Coroutine[Any, Any, T]]:
    """:func:`traced_shell` of the async shell: ``drive`` is the async driver, awaited; the span
    is current in the awaiting task's context, as :func:`traced` gives a coroutine function."""
    async def call(conn: Any, /, *args: Any, **kwargs: Any) -> T:
        tracer = _state.tracer
        if tracer is None:
            return await drive(conn, plan(conn, *args, **kwargs))
        with _measured(tracer, operation, entity or _entity((conn, *args), kwargs)) as finish:
            return finish(await drive(conn, plan(conn, *args, **kwargs)))
    return call


def _traced_coroutine(
    operation: str, fn: Callable[P, Awaitable[T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """The async form of :func:`traced` (same span, attributes and metric)."""
    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        tracer = _state.tracer
        if tracer is None:
            return await fn(*args, **kwargs)
        with _measured(tracer, operation, _entity(args, kwargs)) as finish:
            return finish(await fn(*args, **kwargs))
    return call


#: The retry attempt of the transaction about to open (0 for the first), set by the retry loop.
attempt: ContextVar[int] = ContextVar("wxdata_tx_attempt", default=0)


@attrs.define(slots=True)
class TransactionSpan:
    """An open ``wxdata transaction`` span, current until :meth:`end`."""

    span: Any
    token: Any

    def end(self, outcome: str) -> None:
        """Record the outcome (``commit`` / ``rollback``), end the span, restore the context."""
        from opentelemetry import context

        self.span.set_attribute("wxdata.tx.outcome", outcome)
        self.span.end()
        context.detach(self.token)


def begin_transaction(isolation: str | None, read_only: bool) -> TransactionSpan | None:
    """Open the span of an outermost unit of work and make it current (None uninstrumented)."""
    tracer = _state.tracer
    if tracer is None:
        return None
    from opentelemetry import context, trace

    span = tracer.start_span("wxdata transaction", attributes={
        "db.system": "postgresql", "wxdata.tx.isolation": str(isolation) if isolation else "default",
        "wxdata.tx.read_only": read_only, "wxdata.tx.retries": attempt.get(),
    }, record_exception=False, set_status_on_exception=False)
    return TransactionSpan(span, context.attach(trace.set_span_in_context(span)))


def note(key: str, value: str | int | bool) -> None:
    """Set a PHI-free attribute on the current wxdata span (cache hit, audit lane, retries)."""
    if _state.tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attribute(key, value)


def cache_request(entity: str, hit: bool) -> None:
    """Count a cache lookup and mark the current span."""
    if _state.tracer is None:
        return
    _state.cache_requests.add(1, {"wxdata.entity": entity, "wxdata.cache.hit": hit})
    note("wxdata.cache.hit", hit)


def lane_failure(action: str) -> None:
    """Count an audit record lane 2 could not write."""
    if _state.tracer is None:
        return
    _state.lane_failures.add(1, {"wxdata.audit.action": action})


def seal_lag(seconds: float) -> None:
    """Record the age of the oldest record a sealing run found unsealed."""
    if _state.tracer is None:
        return
    _state.seal_lag.record(seconds)


__all__ = [
    "attempt",
    "begin_transaction",
    "cache_request",
    "instrument",
    "instrumented",
    "lane_failure",
    "note",
    "seal_lag",
    "traced",
    "uninstrument",
]
