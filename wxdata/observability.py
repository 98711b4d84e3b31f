"""PHI-safe query logging: slow statements and database errors, by SQL shape, never by value.

Attach a :class:`QueryLog` to a connection (:func:`attach`) or to every connection of a pool
(``configure=policy.attach`` and ``connection_class=TracedConnection``) and each statement is timed.
Records go to the stdlib logger ``wxdata.sql``:

- a statement at or over ``slow_ms`` -> WARNING ``slow query``;
- any other statement -> DEBUG ``query``, only when that logger is enabled for DEBUG;
- a statement that fails -> WARNING (integrity, serialization, lock/statement timeouts, read-only)
  or ERROR (anything else) ``query failed``, with the SQLSTATE and the exception class only.

What a record holds: the statement *shape* (:func:`sql_shape`: placeholders kept, every string,
dollar-quoted and numeric literal replaced by ``?``, comments dropped, capped in length), a short
fingerprint of the shape, the duration, the row count, the SQLSTATE and the server (host:port). It
never holds bound parameter values, PostgreSQL's message or DETAIL (both can echo values: a unique
violation's DETAIL prints the duplicate key), nor exception info. The same fields are on the record
as attributes (``wx_sql``, ``wx_ms``, ``wx_rows``, ``wx_sqlstate``, ``wx_fingerprint``,
``wx_server``) for structured handlers.

Cost: nothing when not attached (plain psycopg cursors); when attached, two clock reads and a
comparison per statement, and the shape is computed (and memoised per statement text) only when a
record is actually emitted. Statements sent in pipeline mode are timed as one unit from entering to
leaving the outermost ``conn.pipeline()`` block: :class:`TracedConnection` does that; on a plain
connection pipelined statements are not logged.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache
from typing import Any, Self

import attrs
import psycopg
from psycopg import sql
from psycopg.abc import Params, Query
from psycopg.copy import AsyncWriter, Writer
from psycopg.rows import Row

from wxdata import _connstate

LOGGER = "wxdata.sql"

#: SQLSTATE classes/codes logged at WARNING when they fail (expected outcomes, not faults).
_EXPECTED = ("23", "40", "55P03", "57014", "25006", "42501")

Conn = psycopg.Connection[Any]
AConn = psycopg.AsyncConnection[Any]
AnyConn = Conn | AConn


@attrs.frozen(slots=True, kw_only=True)
class QueryLog:
    """What to log: statements at or over ``slow_ms`` (None: none), every statement at DEBUG."""

    slow_ms: float | None = 500.0
    logger: str = LOGGER
    max_sql_chars: int = 2000

    def attach(self, conn: AnyConn) -> None:
        """Trace ``conn`` with this policy (usable as a pool ``configure`` callback)."""
        attach(conn, self)

    async def aattach(self, conn: AConn) -> None:
        """Trace the async ``conn`` with this policy (an async pool's ``configure`` callback)."""
        attach(conn, self)


def _traced(conn: AnyConn) -> tuple[QueryLog, logging.Logger] | None:
    """The policy and logger tracing ``conn`` (kept in the connection's state), if any."""
    state = _connstate.peek(conn)
    found: tuple[QueryLog, logging.Logger] | None = state.query_log if state else None
    return found


def attach(conn: AnyConn, policy: QueryLog) -> None:
    """Trace every statement of ``conn`` (sync or async; cursors created from now on) with
    ``policy``."""
    _connstate.of(conn).query_log = (policy, logging.getLogger(policy.logger))
    if isinstance(conn, psycopg.AsyncConnection):
        conn.cursor_factory = AsyncTracedCursor
        conn.server_cursor_factory = AsyncTracedServerCursor
    else:
        conn.cursor_factory = TracedCursor
        conn.server_cursor_factory = TracedServerCursor


def detach(conn: AnyConn) -> None:
    """Stop tracing ``conn`` (cursors already created stay traced classes but log nothing)."""
    state = _connstate.peek(conn)
    if state is not None:
        state.query_log = None
    if isinstance(conn, psycopg.AsyncConnection):
        conn.cursor_factory = psycopg.AsyncCursor
        conn.server_cursor_factory = psycopg.AsyncServerCursor
    else:
        conn.cursor_factory = psycopg.Cursor
        conn.server_cursor_factory = psycopg.ServerCursor


def policy_of(conn: AnyConn) -> QueryLog | None:
    """The policy attached to ``conn``, if any."""
    found = _traced(conn)
    return found[0] if found else None


# --- SQL shape ----------------------------------------------------------------------------------

# One scanner, two readings of backslashes inside '...' (standard_conforming_strings on or off):
# a character survives only if both readings keep it, so neither reading can smuggle a literal out.
_COMMON = r"""
  (?P<ident>"(?:[^"]|"")*")
| (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*|)\$.*?\$(?P=tag)\$)
| (?P<dollar_open>\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$.*)
| (?P<line_comment>--[^\n]*)
| (?P<block_comment>/\*.*?\*/)
| (?P<block_open>/\*.*)
| (?P<param>%\([^)\s]{1,64}\)[sbt]|%[sbt]|%%|\$\d+)
| (?P<word>[A-Za-z_][A-Za-z_0-9$]*)
| (?P<number>\.?\d(?:[A-Za-z0-9_.]|(?<=[eE])[+-])*)
"""
_STANDARD = re.compile(  # E'...' escapes backslashes whatever standard_conforming_strings says
    r"(?P<string>[eE]'(?:[^'\\]|\\.|'')*'|(?:U&|[A-Za-z])?'(?:[^']|'')*')"
    r"|(?P<string_open>[A-Za-z]?'.*)|" + _COMMON,
    re.S | re.X,
)
_ESCAPED = re.compile(
    r"(?P<string>(?:U&|[A-Za-z])?'(?:[^'\\]|\\.|'')*')|(?P<string_open>[A-Za-z]?'.*)|" + _COMMON,
    re.S | re.X,
)
_MASKED = frozenset(
    ("string", "string_open", "dollar", "dollar_open", "number", "line_comment", "block_comment",
     "block_open")
)


def _keep_mask(text: str, scanner: re.Pattern[str], keep: bytearray) -> None:
    for match in scanner.finditer(text):
        kind = match.lastgroup
        if kind in _MASKED:
            start, end = match.span()
            keep[start:end] = bytes(end - start)


def _mask_literals(text: str) -> str:
    keep = bytearray(b"\x01") * len(text)
    _keep_mask(text, _STANDARD, keep)
    _keep_mask(text, _ESCAPED, keep)
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        if keep[i]:
            j = i
            while j < n and keep[j]:
                j += 1
            out.append(text[i:j])
        else:
            j = i
            while j < n and not keep[j]:
                j += 1
            out.append("?")
        i = j
    return " ".join("".join(out).split())


@lru_cache(maxsize=4096)
def _shape_of_text(text: str, limit: int) -> tuple[str, str]:
    shape = _mask_literals(text)
    fingerprint = hashlib.blake2s(shape.encode("utf-8"), digest_size=6).hexdigest()
    if len(shape) > limit:
        shape = shape[: max(limit - 1, 0)] + "…"
    return shape, fingerprint


def _query_text(query: Any, conn: AnyConn | None) -> str:
    if isinstance(query, str):
        return query
    if isinstance(query, bytes | bytearray | memoryview):
        return bytes(query).decode("utf-8", "replace")
    if isinstance(query, sql.Composable):
        try:  # literals render as quoted text, which the scanner then masks
            return query.as_string(conn)
        except Exception:  # noqa: BLE001 - a shape must never fail the statement
            return "<composed statement>"
    return f"<{type(query).__name__} statement>"  # t-strings: no text without their values


def sql_shape(query: Any, conn: AnyConn | None = None, limit: int = 2000) -> str:
    """The statement with placeholders kept and every literal value replaced by ``?``."""
    return _shape_of_text(_query_text(query, conn), limit)[0]


def shape_and_fingerprint(query: Any, conn: AnyConn | None = None, limit: int = 2000) -> tuple[str, str]:
    """:func:`sql_shape` and a 12-hex-digit fingerprint of the full shape."""
    return _shape_of_text(_query_text(query, conn), limit)


# --- emitting ---------------------------------------------------------------------------------


def _server(conn: AnyConn) -> str:
    try:
        info = conn.info
        return f"{info.host}:{info.port}"
    except Exception:  # noqa: BLE001 - a closed connection has no info; the record still goes out
        return "?"


def verdict(policy: QueryLog, ms: float, debug: bool) -> tuple[int, str] | None:
    """What a finished statement of ``ms`` milliseconds becomes: (level, label), or None.

    At or over the policy's ``slow_ms``: WARNING ``slow query``; otherwise DEBUG ``query`` when
    ``debug`` (the logger is enabled for DEBUG); otherwise nothing. Pure: both shells decide here.
    """
    if policy.slow_ms is not None and ms >= policy.slow_ms:
        return logging.WARNING, "slow query"
    if debug:
        return logging.DEBUG, "query"
    return None


def failure_level(sqlstate: str) -> int:
    """The level of a failed statement: WARNING for expected outcomes (integrity, serialization,
    lock/statement timeouts, read-only), ERROR for anything else. Pure."""
    return logging.WARNING if sqlstate.startswith(_EXPECTED) else logging.ERROR


def _finished(conn: AnyConn, query: Any, seconds: float, rows: int) -> None:
    found = _traced(conn)
    if found is None or query == "":  # "" is the pool's liveness ping, not a statement
        return
    policy, log = found
    ms = seconds * 1000.0
    decided = verdict(policy, ms, log.isEnabledFor(logging.DEBUG))
    if decided is None or not log.isEnabledFor(decided[0]):
        return
    level, label = decided
    shape, fingerprint = shape_and_fingerprint(query, conn, policy.max_sql_chars)
    server = _server(conn)
    log.log(
        level, "%s: %.3f ms, rows=%d, server=%s, fingerprint=%s, sql=%s",
        label, ms, rows, server, fingerprint, shape,
        extra={"wx_sql": shape, "wx_ms": ms, "wx_rows": rows, "wx_sqlstate": None,
               "wx_fingerprint": fingerprint, "wx_server": server},
    )


def _failed(conn: AnyConn, query: Any, seconds: float, exc: BaseException) -> None:
    found = _traced(conn)
    if found is None:
        return
    policy, log = found
    state = getattr(exc, "sqlstate", None) or ""
    level = failure_level(state)
    if not log.isEnabledFor(level):
        return
    ms = seconds * 1000.0
    shape, fingerprint = shape_and_fingerprint(query, conn, policy.max_sql_chars)
    server = _server(conn)
    log.log(
        level, "query failed: sqlstate=%s (%s), %.3f ms, server=%s, fingerprint=%s, sql=%s",
        state or "-", type(exc).__name__, ms, server, fingerprint, shape,
        extra={"wx_sql": shape, "wx_ms": ms, "wx_rows": -1, "wx_sqlstate": state or None,
               "wx_fingerprint": fingerprint, "wx_server": server},
    )


def _joined(statements: Iterable[tuple[Any, Any]], conn: AnyConn) -> str:
    return " ; ".join(_query_text(q, conn) for q, _ in statements)


# --- timing, shared by both shells -----------------------------------------------------------


class _Timed:
    """Times the statement run inside it and hands the outcome to :func:`_finished` or
    :func:`_failed`. A plain (sync) context manager, so the sync and the async classes share it:
    ``with _Timed(...): await ...`` times the awaited statement."""

    __slots__ = ("conn", "cursor", "query", "start")

    def __init__(self, conn: AnyConn, query: Any, cursor: Any) -> None:
        self.conn, self.query, self.cursor = conn, query, cursor
        self.start = 0.0

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        seconds = time.perf_counter() - self.start
        if exc is None:
            _finished(self.conn, self.query, seconds, self.cursor.rowcount)
        elif isinstance(exc, psycopg.Error):
            _failed(self.conn, self.query, seconds, exc)


_Queued = list[tuple[Any, Any]]  # (statement, its cursor) in the open pipeline


def _note_pipelined(conn: AnyConn, query: Any, cursor: Any) -> bool:
    """Whether ``conn`` is in pipeline mode (the statement is then queued for the pipeline's
    record, if the pipeline is traced, instead of timed alone)."""
    if not conn.pgconn.pipeline_status:
        return False
    state = _connstate.peek(conn)
    queued: _Queued | None = state.pipeline if state else None
    if queued is not None:
        queued.append((query, cursor))
    return True


class _PipelineTimer:
    """Times the outermost traced pipeline of a connection as one unit (both shells)."""

    __slots__ = ("conn", "queued", "start", "state")

    def __init__(self, conn: AnyConn) -> None:
        self.conn = conn
        self.state = _connstate.of(conn)
        self.queued: _Queued | None = None
        self.start = 0.0

    def __enter__(self) -> None:
        if self.state.query_log is None or self.state.pipeline is not None:
            return  # untraced, or nested in a traced pipeline that already times it
        self.queued = self.state.pipeline = []
        self.start = time.perf_counter()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        queued = self.queued
        if queued is None:
            return
        self.state.pipeline = None
        seconds = time.perf_counter() - self.start
        if exc is None:
            if queued:  # rows: those of the last statement (the one the context statements serve)
                _finished(self.conn, _joined(queued, self.conn), seconds, queued[-1][1].rowcount)
        elif isinstance(exc, psycopg.Error):
            _failed(self.conn, _joined(queued, self.conn), seconds, exc)


# --- cursor and connection classes ------------------------------------------------------------


# The base implementations, called untyped: their overloads (t-string templates take no params)
# cannot be matched by a pass-through of a ``Query`` union.
_BASE_EXECUTE: Any = psycopg.Cursor.execute
_BASE_SERVER_EXECUTE: Any = psycopg.ServerCursor.execute
_BASE_AEXECUTE: Any = psycopg.AsyncCursor.execute
_BASE_ASERVER_EXECUTE: Any = psycopg.AsyncServerCursor.execute


class TracedCursor(psycopg.Cursor[Row]):
    """A client cursor that times each statement and logs it through the connection's policy."""

    __slots__ = ()

    def execute(
        self,
        query: Query,
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        """Execute a statement, timing and logging it when the connection is traced."""
        conn = self.connection
        if _note_pipelined(conn, query, self):
            return _BASE_EXECUTE(self, query, params, prepare=prepare, binary=binary)  # type: ignore[no-any-return]
        with _Timed(conn, query, self):
            _BASE_EXECUTE(self, query, params, prepare=prepare, binary=binary)
        return self

    def executemany(
        self, query: Query, params_seq: Iterable[Params], *, returning: bool = False
    ) -> None:
        """Execute a statement for each parameter set, timed as one unit."""
        conn = self.connection
        if _note_pipelined(conn, query, self):
            return super().executemany(query, params_seq, returning=returning)
        with _Timed(conn, query, self):
            super().executemany(query, params_seq, returning=returning)
        return None

    @contextmanager
    def copy(
        self, statement: Query, params: Params | None = None, *, writer: Writer | None = None
    ) -> Iterator[psycopg.Copy]:
        """A COPY, timed from start to the end of the block."""
        with _Timed(self.connection, statement, self), \
                super().copy(statement, params, writer=writer) as cp:
            yield cp


class TracedServerCursor(psycopg.ServerCursor[Row]):
    """A server-side (named) cursor whose DECLARE is timed and logged."""

    __slots__ = ()

    def execute(
        self,
        query: Query,
        params: Params | None = None,
        *,
        binary: bool | None = None,
        **kwargs: Any,
    ) -> Self:
        """Declare the cursor, timing and logging the statement."""
        with _Timed(self.connection, query, self):
            _BASE_SERVER_EXECUTE(self, query, params, binary=binary, **kwargs)
        return self


class TracedConnection(psycopg.Connection[Row]):
    """A connection whose pipelines are timed as one unit (statements in them are logged together).

    Use it as a pool's ``connection_class`` (or ``TracedConnection.connect(...)``) together with
    :func:`attach`; untraced (no policy attached) it behaves exactly like ``psycopg.Connection``.
    """

    @contextmanager
    def pipeline(self) -> Iterator[psycopg.Pipeline]:
        """Enter pipeline mode; the outermost block is timed and logged as one unit."""
        with _PipelineTimer(self), super().pipeline() as pipe:
            yield pipe


class AsyncTracedCursor(psycopg.AsyncCursor[Row]):
    """The async twin of :class:`TracedCursor` (same timing, same records)."""

    __slots__ = ()

    async def execute(
        self,
        query: Query,
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        """Execute a statement, timing and logging it when the connection is traced."""
        conn = self.connection
        if _note_pipelined(conn, query, self):
            return await _BASE_AEXECUTE(self, query, params, prepare=prepare, binary=binary)  # type: ignore[no-any-return]
        with _Timed(conn, query, self):
            await _BASE_AEXECUTE(self, query, params, prepare=prepare, binary=binary)
        return self

    async def executemany(
        self, query: Query, params_seq: Iterable[Params], *, returning: bool = False
    ) -> None:
        """Execute a statement for each parameter set, timed as one unit."""
        conn = self.connection
        if _note_pipelined(conn, query, self):
            return await super().executemany(query, params_seq, returning=returning)
        with _Timed(conn, query, self):
            await super().executemany(query, params_seq, returning=returning)
        return None

    @asynccontextmanager
    async def copy(
        self, statement: Query, params: Params | None = None, *,
        writer: AsyncWriter | None = None,
    ) -> AsyncIterator[psycopg.AsyncCopy]:
        """A COPY, timed from start to the end of the block."""
        with _Timed(self.connection, statement, self):
            async with super().copy(statement, params, writer=writer) as cp:
                yield cp


class AsyncTracedServerCursor(psycopg.AsyncServerCursor[Row]):
    """The async twin of :class:`TracedServerCursor`: its DECLARE is timed and logged."""

    __slots__ = ()

    async def execute(
        self,
        query: Query,
        params: Params | None = None,
        *,
        binary: bool | None = None,
        **kwargs: Any,
    ) -> Self:
        """Declare the cursor, timing and logging the statement."""
        with _Timed(self.connection, query, self):
            await _BASE_ASERVER_EXECUTE(self, query, params, binary=binary, **kwargs)
        return self


class AsyncTracedConnection(psycopg.AsyncConnection[Row]):
    """The async twin of :class:`TracedConnection`: the outermost traced pipeline is timed and
    logged as one unit; untraced it behaves exactly like ``psycopg.AsyncConnection``."""

    @asynccontextmanager
    async def pipeline(self) -> AsyncIterator[psycopg.AsyncPipeline]:
        """Enter pipeline mode; the outermost block is timed and logged as one unit."""
        with _PipelineTimer(self):
            async with super().pipeline() as pipe:
                yield pipe
