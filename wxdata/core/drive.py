"""The two drivers: execute a plan's effects on a sync or an async psycopg connection.

Both are the same loop: send the previous answer into the plan (or throw the error it raised),
execute the next effect, repeat until the plan returns. Nothing here decides anything.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

import psycopg
from psycopg.abc import PQGen
from psycopg.pq import ConnStatus, ExecStatus, PipelineStatus, TransactionStatus
from psycopg.rows import tuple_row
from psycopg.waiting import Wait

from wxdata import _connstate
from wxdata.core.effects import (
    Call,
    Command,
    ConnFacts,
    Copy,
    Detached,
    Effect,
    Execute,
    FetchOne,
    Hooks,
    Pipeline,
    Plan,
    Probe,
    Provenance,
    Rows,
    Sleep,
    Stream,
)
from wxdata.core.numbered import PARSED_EACH_TIME_BYTES, numbered
from wxdata.safelog import log_error

if TYPE_CHECKING:
    from psycopg.pq.abc import PGconn

    from wxdata.audit.record import AuditRecord
    from wxdata.context import ExecutionContext

log = logging.getLogger("wxdata.tx")

T = TypeVar("T")
Conn = psycopg.Connection[Any]
AConn = psycopg.AsyncConnection[Any]

_TUPLES_OK = ExecStatus.TUPLES_OK

#: The most results read to take a failed pipeline's connection out of pipeline mode (wxdata's
#: pipelines leave a few); past them the connection is closed.
_UNREAD_LIMIT = 64


def _facts(conn: Conn | AConn) -> ConnFacts:
    status = conn.info.transaction_status
    return ConnFacts(
        closed=conn.closed,
        idle=status == TransactionStatus.IDLE,
        in_error=status == TransactionStatus.INERROR,
        autocommit=conn.autocommit,
        names_statements=conn.prepare_threshold is not None,
    )


@functools.cache
def _write_detached() -> Callable[[Conn, ExecutionContext, AuditRecord], bool]:
    """:func:`wxdata.audit.lanes.write_detached`, imported on first need (lanes build on db, db
    on tx) and then held: no import statement runs per detached record."""
    from wxdata.audit.lanes import write_detached

    return write_detached


def _leave_pipeline(pgconn: PGconn) -> PQGen[bool]:
    """Read the results a failed pipeline left unread, then take the connection out of pipeline
    mode; False if that cannot be done.

    An error at the Sync itself (a deferred constraint or trigger failing as the pipeline's
    implicit transaction commits) comes as one result more than psycopg expects: it raises the
    error, leaves the Sync's own result unread and the connection in pipeline mode, busy, refusing
    every statement."""
    for _ in range(_UNREAD_LIMIT):
        try:
            pgconn.exit_pipeline_mode()
        except psycopg.OperationalError:
            pass
        else:
            return True
        if pgconn.status == ConnStatus.BAD:
            return False
        while pgconn.is_busy():
            while not (yield Wait.R):
                continue
            pgconn.consume_input()
        pgconn.get_result()
    return False


#: The error a plan gets for a pipeline whose results psycopg failed to read at its Sync.
_MISREAD = "the pipeline's results at its end could not be read"


def _misread(exc: BaseException) -> bool:
    """True when ``exc``, raised as a pipeline ended (its Sync), is psycopg failing to read the
    results, not a database error: an error at the Sync itself arriving with the Sync's own result
    runs it past the results it expects (an IndexError), the error itself lost."""
    return isinstance(exc, Exception) and not isinstance(exc, psycopg.Error)


def _closing() -> None:
    log.warning("closing a connection a failed pipeline left in an unknown state")


def _after_failed_pipeline(conn: Conn, exc: BaseException) -> None:
    """Leave ``conn`` idle after a pipeline failed with ``exc``: out of pipeline mode with
    nothing unread and its transaction rolled back; or closed, for its pool to discard it, when
    that cannot be done (an interruption leaves the server's work of unknown length)."""
    if conn.closed:
        return
    try:
        if conn.pgconn.pipeline_status != PipelineStatus.OFF:
            left = False
            if isinstance(exc, Exception):
                with conn.lock:
                    left = conn.wait(_leave_pipeline(conn.pgconn))
            if not left:
                _closing()
                conn.close()
                return
        if conn.pgconn.transaction_status != TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
    except Exception:  # noqa: BLE001 - the pipeline's error is the one raised
        _closing()
        conn.close()


async def _aafter_failed_pipeline(conn: AConn, exc: BaseException) -> None:
    """:func:`_after_failed_pipeline` on an async connection."""
    if conn.closed:
        return
    try:
        if conn.pgconn.pipeline_status != PipelineStatus.OFF:
            left = False
            if isinstance(exc, Exception):
                async with conn.lock:
                    left = await conn.wait(_leave_pipeline(conn.pgconn))
            if not left:
                _closing()
                await conn.close()
                return
        if conn.pgconn.transaction_status != TransactionStatus.IDLE:
            await conn.execute("ROLLBACK")
    except Exception:  # noqa: BLE001 - the pipeline's error is the one raised
        _closing()
        await conn.close()


def hook_failed(exc: BaseException) -> None:
    """Log a failed hook PHI-safely: a hook never undoes or hides the transaction's outcome."""
    log_error(log, "transaction hook failed (the transaction outcome stands)", exc)


# --- sync -------------------------------------------------------------------------------------


def _cursor(conn: Conn, slot: str) -> psycopg.Cursor[tuple[Any, ...]]:
    state = _connstate.of(conn)
    if state.raw_last:  # the slot's next statement goes through this cursor, not its raw one
        state.raw_last.discard(slot)
    cur: psycopg.Cursor[tuple[Any, ...]] | None = state.cursors.get(slot)
    if cur is None or cur.closed:
        cur = conn.cursor(row_factory=tuple_row)
        state.cursors[slot] = cur
    return cur


def _send(conn: Conn, e: Execute) -> psycopg.Cursor[tuple[Any, ...]]:
    """Execute ``e`` on its slot's cursor; the cursor that ran it.

    A statement psycopg would parse on every execution (wxdata's statements reach its bound on
    length, :data:`~wxdata.core.numbered.PARSED_EACH_TIME_BYTES`) goes with numbered placeholders
    through the slot's raw cursor (:mod:`wxdata.core.numbered`), on a connection whose cursors are
    psycopg's own (a traced connection's cursors log every statement as written)."""
    sql = e.sql
    form = None
    if type(sql) is str and len(sql) > PARSED_EACH_TIME_BYTES \
            and conn.cursor_factory is psycopg.Cursor:
        form = numbered(sql, e.params)
    if form is not None:
        raw: psycopg.RawCursor[tuple[Any, ...]] = _raw_cursor(conn, e.slot, psycopg.RawCursor)
        raw.execute(form[0], form[1], prepare=e.prepare)
        return raw
    cur = _cursor(conn, e.slot)
    cur.execute(sql, e.params, prepare=e.prepare)
    return cur


def _raw_cursor(conn: Conn | AConn, slot: str, make: Callable[..., Any]) -> Any:
    """The slot's raw cursor (made by ``make`` on first need), marked as the one that runs the
    slot's next statement."""
    state = _connstate.of(conn)
    raw = state.raw_cursors.get(slot)
    if raw is None or raw.closed:
        raw = make(conn, row_factory=tuple_row)
        state.raw_cursors[slot] = raw
    state.raw_last.add(slot)
    return raw


def _last(conn: Conn | AConn, slot: str) -> Any:
    """The cursor that ran the slot's last statement (its result is the one to describe)."""
    state = _connstate.of(conn)
    if slot in state.raw_last:
        return state.raw_cursors[slot]
    return state.cursors.get(slot)


def _rows(cur: psycopg.Cursor[tuple[Any, ...]] | psycopg.AsyncCursor[tuple[Any, ...]]) -> bool:
    result = cur.pgresult
    return result is not None and result.status == _TUPLES_OK


def _provenance(
    cur: psycopg.Cursor[tuple[Any, ...]] | psycopg.AsyncCursor[tuple[Any, ...]] | None,
) -> tuple[tuple[int, int], ...]:
    """(table oid, column number) of each column of the cursor's last result."""
    result = cur.pgresult if cur is not None else None
    if result is None:
        return ()
    return tuple((result.ftable(i), result.ftablecol(i)) for i in range(result.nfields))


class SyncIO:
    """Executes effects on a sync connection."""

    __slots__ = ("conn", "sleep")

    def __init__(self, conn: Conn, sleep: Callable[[float], None] = time.sleep) -> None:
        self.conn = conn
        self.sleep = sleep

    def execute(self, e: Execute) -> Rows:
        cur = _send(self.conn, e)
        return cur.fetchall() if _rows(cur) else []

    def handle(self, e: Effect) -> Any:
        conn = self.conn
        if type(e) is Execute:
            return self.execute(e)
        if type(e) is FetchOne:
            return conn.execute(e.sql, e.params).fetchone()
        if type(e) is Command:
            return conn.execute(e.sql).statusmessage
        if type(e) is Pipeline:
            cur = None
            try:
                with conn.pipeline():
                    for statement in e.statements[:-1]:
                        _send(conn, statement)
                    cur = _send(conn, e.statements[-1])
            except BaseException as exc:
                _after_failed_pipeline(conn, exc)
                if cur is not None and _misread(exc):
                    raise psycopg.OperationalError(_MISREAD) from exc
                raise
            return cur.fetchall() if _rows(cur) else []
        if type(e) is Provenance:
            return _provenance(_last(conn, e.slot))
        if type(e) is Probe:
            return _facts(conn)
        if type(e) is Detached:
            return _write_detached()(conn, e.ctx, e.record)
        if type(e) is Hooks:
            for hook in e.hooks:
                try:
                    value = hook()
                    if inspect.isgenerator(value):
                        run(conn, cast("Plan[Any]", value), self.sleep)
                    elif inspect.isawaitable(value):
                        if inspect.iscoroutine(value):
                            value.close()
                        raise TypeError("an async hook on a sync connection")
                except Exception as exc:  # noqa: BLE001 - logged PHI-safely
                    hook_failed(exc)
            return None
        if type(e) is Call:
            value = e.fn()
            if inspect.isgenerator(value):
                return run(conn, cast("Plan[Any]", value), self.sleep)
            return value
        if type(e) is Sleep:
            self.sleep(e.seconds)
            return None
        if type(e) is Copy:
            with _cursor(conn, "data").copy(e.statement) as copy:
                if e.types:
                    copy.set_types(e.types)
                for row in e.rows:
                    copy.write_row(row)
            return None
        if type(e) is Stream:
            with conn.cursor(name=e.name, row_factory=tuple_row) as named:
                named.itersize = e.batch
                named.execute(e.sql, e.params)
                shape = e.shape

                def rows() -> Iterator[Any]:
                    while batch := named.fetchmany(e.batch):
                        for values in batch:
                            yield shape(values)

                return e.consume(rows())
        raise TypeError(f"unknown effect {type(e).__name__}")


def run(conn: Conn, plan: Plan[T], sleep: Callable[[float], None] = time.sleep) -> T:
    """Execute ``plan`` on the sync connection ``conn`` and return its value.

    A statement (:class:`Execute`, the one effect of most data calls) and the description of
    its columns (:class:`Provenance`) are handled in the loop itself; every other effect goes
    through :class:`SyncIO`, made on first need.
    """
    io: SyncIO | None = None
    answer: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = plan.send(answer) if error is None else plan.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        error = None
        try:
            if type(effect) is Execute:
                sql = effect.sql
                if type(sql) is str and len(sql) > PARSED_EACH_TIME_BYTES:
                    cur = _send(conn, effect)
                else:  # most statements: the slot's cursor, as written (no call more)
                    cur = _cursor(conn, effect.slot)
                    cur.execute(sql, effect.params, prepare=effect.prepare)
                answer = cur.fetchall() if _rows(cur) else []
            elif type(effect) is Provenance:  # follows a statement: no I/O
                answer = _provenance(_last(conn, effect.slot))
            else:
                if io is None:
                    io = SyncIO(conn, sleep)
                answer = io.handle(effect)
        except BaseException as exc:  # noqa: BLE001 - thrown into the plan, which decides
            answer, error = None, exc


# --- async ------------------------------------------------------------------------------------


def _acursor(conn: AConn, slot: str) -> psycopg.AsyncCursor[tuple[Any, ...]]:
    state = _connstate.of(conn)
    if state.raw_last:  # the slot's next statement goes through this cursor, not its raw one
        state.raw_last.discard(slot)
    cur: psycopg.AsyncCursor[tuple[Any, ...]] | None = state.cursors.get(slot)
    if cur is None or cur.closed:
        cur = conn.cursor(row_factory=tuple_row)
        state.cursors[slot] = cur
    return cur


async def _asend(conn: AConn, e: Execute) -> psycopg.AsyncCursor[tuple[Any, ...]]:
    """:func:`_send` on an async connection."""
    sql = e.sql
    form = None
    if type(sql) is str and len(sql) > PARSED_EACH_TIME_BYTES \
            and conn.cursor_factory is psycopg.AsyncCursor:
        form = numbered(sql, e.params)
    if form is not None:
        raw: psycopg.AsyncRawCursor[tuple[Any, ...]] = _raw_cursor(
            conn, e.slot, psycopg.AsyncRawCursor)
        await raw.execute(form[0], form[1], prepare=e.prepare)
        return raw
    cur = _acursor(conn, e.slot)
    await cur.execute(sql, e.params, prepare=e.prepare)
    return cur


async def _asleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class AsyncIO:
    """Executes effects on an async connection."""

    __slots__ = ("conn", "sleep")

    def __init__(self, conn: AConn, sleep: Callable[[float], Any] = _asleep) -> None:
        self.conn = conn
        self.sleep = sleep

    async def handle(self, e: Effect) -> Any:
        conn = self.conn
        if type(e) is Execute:
            cur = await _asend(conn, e)
            return await cur.fetchall() if _rows(cur) else []
        if type(e) is FetchOne:
            return await (await conn.execute(e.sql, e.params)).fetchone()
        if type(e) is Command:
            return (await conn.execute(e.sql)).statusmessage
        if type(e) is Pipeline:
            acur = None
            try:
                async with conn.pipeline():
                    for statement in e.statements[:-1]:
                        await _asend(conn, statement)
                    acur = await _asend(conn, e.statements[-1])
            except BaseException as exc:
                await _aafter_failed_pipeline(conn, exc)
                if acur is not None and _misread(exc):
                    raise psycopg.OperationalError(_MISREAD) from exc
                raise
            return await acur.fetchall() if _rows(acur) else []
        if type(e) is Provenance:
            return _provenance(_last(conn, e.slot))
        if type(e) is Probe:
            return _facts(conn)
        if type(e) is Detached:
            # Lane 2 is a bounded sync pool shared by the process: a worker thread waits for it.
            return await asyncio.to_thread(_write_detached(), conn,  # type: ignore[arg-type]
                                           e.ctx, e.record)
        if type(e) is Hooks:
            for hook in e.hooks:
                try:
                    value = hook()
                    if inspect.isgenerator(value):
                        await arun(conn, cast("Plan[Any]", value), self.sleep)
                    elif inspect.isawaitable(value):
                        await value
                except Exception as exc:  # noqa: BLE001 - logged PHI-safely
                    hook_failed(exc)
            return None
        if type(e) is Call:
            value = e.fn()
            if inspect.isgenerator(value):
                return await arun(conn, cast("Plan[Any]", value), self.sleep)
            if inspect.isawaitable(value):
                return await value
            return value
        if type(e) is Sleep:
            await self.sleep(e.seconds)
            return None
        if type(e) is Copy:
            async with _acursor(conn, "data").copy(e.statement) as copy:
                if e.types:
                    copy.set_types(e.types)
                for row in e.rows:
                    await copy.write_row(row)
            return None
        if type(e) is Stream:
            async with conn.cursor(name=e.name, row_factory=tuple_row) as named:
                named.itersize = e.batch
                await named.execute(e.sql, e.params)
                shape = e.shape

                async def rows() -> AsyncIterator[Any]:
                    while batch := await named.fetchmany(e.batch):
                        for values in batch:
                            yield shape(values)

                value = e.consume(rows())
                return await value if inspect.isawaitable(value) else value
        raise TypeError(f"unknown effect {type(e).__name__}")


async def arun(conn: AConn, plan: Plan[T], sleep: Callable[[float], Any] = _asleep) -> T:
    """Execute ``plan`` on the async connection ``conn`` and return its value.

    As :func:`run`: a statement is handled in the loop, every other effect by :class:`AsyncIO`.
    """
    io: AsyncIO | None = None
    answer: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = plan.send(answer) if error is None else plan.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        error = None
        try:
            if type(effect) is Execute:
                sql = effect.sql
                if type(sql) is str and len(sql) > PARSED_EACH_TIME_BYTES:
                    cur = await _asend(conn, effect)
                else:  # most statements: the slot's cursor, as written (no call more)
                    cur = _acursor(conn, effect.slot)
                    await cur.execute(sql, effect.params, prepare=effect.prepare)
                answer = await cur.fetchall() if _rows(cur) else []
            elif type(effect) is Provenance:  # follows a statement: no I/O
                answer = _provenance(_last(conn, effect.slot))
            else:
                if io is None:
                    io = AsyncIO(conn, sleep)
                answer = await io.handle(effect)
        except BaseException as exc:  # noqa: BLE001 - thrown into the plan, which decides
            answer, error = None, exc
