"""PHI-safe statement logging through both shells: sync (:mod:`wxdata.db`, :class:`Router`) and
async (:mod:`wxdata.aio`, :class:`AsyncRouter`) connections give the same records.

Each test runs a workload once per shell (``[sync]`` / ``[async]``) on connections wxdata opened
(``DB_SLOW_QUERY_MS``, a pool's ``query_log``, a router's ``RouterConfig.query_log``) and reads
what reached the ``wxdata.sql`` logger. A PHI sentinel is bound as a parameter and written as a
literal; no rendering of any record may contain it. The pure decision both shells share
(:func:`verdict`, :func:`failure_level`) is checked by properties.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from returns.result import Result, Success

import wxdata.aio as aio
from tests.integration.test_observability import Collect, _texts
from tests.integration.test_observability import captured as captured  # the fixture: every record, at DEBUG
from wxdata import ExecutionContext
from wxdata.aio.replicas import AsyncRouter
from wxdata.config import load_settings
from wxdata.db import connect, create_pool
from wxdata.errors import DataError
from wxdata.observability import (
    AsyncTracedConnection,
    AsyncTracedCursor,
    QueryLog,
    TracedConnection,
    failure_level,
    policy_of,
    verdict,
)
from wxdata.replicas import Router, RouterConfig

SHELLS = ("sync", "async")

# A statement's work, the same for both shells: (sql, params, expect a failure).
Work = list[tuple[str, Any, bool]]


def _sentinel() -> str:
    return f"Wendelmoor{uuid.uuid4().hex[:8].upper()}"


def _sql_records(captured: Collect) -> list[logging.LogRecord]:
    return [r for r in captured.records if r.name == "wxdata.sql"]


def _leaks(captured: Collect, secret: str) -> list[str]:
    return [text for r in captured.records for text in _texts(captured, r) if secret in text]


def _run_sync(conn: psycopg.Connection[Any], work: Work) -> None:
    for query, params, fails in work:
        if fails:
            with pytest.raises(psycopg.Error):
                conn.execute(query, params)
        else:
            conn.execute(query, params).fetchall()


async def _run_async(conn: psycopg.AsyncConnection[Any], work: Work) -> None:
    for query, params, fails in work:
        if fails:
            with pytest.raises(psycopg.Error):
                await conn.execute(query, params)
        else:
            await (await conn.execute(query, params)).fetchall()


def _through_connect(shell: str, url: str, slow_ms: str, work: Work) -> None:
    """``work`` on one connection from the shell's ``connect`` with ``DB_SLOW_QUERY_MS``."""
    config = load_settings({"DATABASE_URL": url, "DB_SLOW_QUERY_MS": slow_ms})
    if shell == "sync":
        with connect(url, config=config) as conn:
            assert isinstance(conn, TracedConnection)
            _run_sync(conn, work)
        return

    async def main() -> None:
        async with await aio.connect(url, config=config) as conn:
            assert isinstance(conn, AsyncTracedConnection)
            assert conn.cursor_factory is AsyncTracedCursor
            await _run_async(conn, work)

    asyncio.run(main())


def _through_pool(shell: str, url: str, policy: QueryLog, work: Work) -> None:
    """``work`` on a pooled connection of the shell's ``create_pool(query_log=policy)``."""
    if shell == "sync":
        with create_pool(url, min_size=1, max_size=1, query_log=policy) as pool, \
                pool.connection() as conn:
            assert policy_of(conn) == policy
            _run_sync(conn, work)
        return

    async def main() -> None:
        pool = await aio.create_pool(url, min_size=1, max_size=1, query_log=policy)
        try:
            async with pool.connection() as conn:
                assert isinstance(conn, AsyncTracedConnection) and policy_of(conn) == policy
                await _run_async(conn, work)
        finally:
            await pool.close()

    asyncio.run(main())


@pytest.mark.parametrize("shell", SHELLS)
def test_slow_statement_is_logged_by_shape_and_timing_never_by_value(
    shell: str, db_url: str, captured: Collect
) -> None:
    secret = _sentinel()
    _through_connect(shell, db_url, "15", [
        ("SELECT pg_sleep(0.03), %s::text AS who", (secret,), False),
        (f"SELECT pg_sleep(0.03), '{secret}' AS who", None, False),
    ])
    slow = [r for r in _sql_records(captured)
            if r.levelno == logging.WARNING and "pg_sleep" in r.wx_sql]  # type: ignore[attr-defined]
    assert [r.getMessage().split(":")[0] for r in slow] == ["slow query", "slow query"]
    assert [r.wx_sql for r in slow] == [  # type: ignore[attr-defined]
        "SELECT pg_sleep(?), %s::text AS who", "SELECT pg_sleep(?), ? AS who"]
    assert all(r.wx_ms >= 30 and r.wx_rows == 1 for r in slow)  # type: ignore[attr-defined]
    assert _leaks(captured, secret) == []


@pytest.mark.parametrize("shell", SHELLS)
def test_fast_statements_are_not_logged_unless_debug_is_on(
    shell: str, db_url: str, captured: Collect
) -> None:
    secret = _sentinel()
    quiet = logging.getLogger("wxdata.sql")
    quiet.setLevel(logging.INFO)
    try:
        _through_connect(shell, db_url, "60000", [("SELECT %s::text", (secret,), False)])
        assert _sql_records(captured) == []  # the connection's role check included
    finally:
        quiet.setLevel(logging.NOTSET)
    _through_connect(shell, db_url, "60000", [("SELECT %s::text", (secret,), False)])
    (record,) = [r for r in _sql_records(captured)
                 if r.wx_sql == "SELECT %s::text"]  # type: ignore[attr-defined]
    assert record.levelno == logging.DEBUG and record.getMessage().startswith("query:")
    assert record.wx_sql == "SELECT %s::text"  # type: ignore[attr-defined]
    assert _leaks(captured, secret) == []


@pytest.mark.parametrize("shell", SHELLS)
def test_failures_name_the_sqlstate_never_the_message(
    shell: str, db_url: str, captured: Collect
) -> None:
    secret = _sentinel()
    _through_pool(shell, db_url, QueryLog(slow_ms=None), [
        ("SELECT %s::int", (secret,), True),
        (f"SELECT * FROM no_such_table WHERE name = '{secret}'", None, True),
    ])
    failed = [r for r in _sql_records(captured) if r.getMessage().startswith("query failed")]
    assert [(r.levelno, r.wx_sqlstate) for r in failed] == [  # type: ignore[attr-defined]
        (logging.ERROR, "22P02"), (logging.ERROR, "42P01")]
    assert all(r.exc_info is None for r in failed)
    assert _leaks(captured, secret) == []


def test_both_shells_give_the_same_records(db_url: str, captured: Collect) -> None:
    secret = _sentinel()
    work: Work = [
        ("SELECT %s::text, 42, 'x'", (secret,), False),
        ("SELECT generate_series(1, %s)", (3,), False),
        ("SELECT 1 / %s", (0,), True),
    ]
    seen: dict[str, list[tuple[Any, ...]]] = {}
    for shell in SHELLS:
        start = len(captured.records)
        _through_pool(shell, db_url, QueryLog(slow_ms=0), work)
        seen[shell] = [(r.levelno, r.wx_sql, r.wx_rows, r.wx_sqlstate,  # type: ignore[attr-defined]
                        r.wx_fingerprint)  # type: ignore[attr-defined]
                       for r in captured.records[start:] if r.name == "wxdata.sql"]
    assert len(seen["sync"]) == 3
    assert seen["async"] == seen["sync"]
    assert _leaks(captured, secret) == []


def test_async_pipeline_is_timed_as_one_unit(db_url: str, captured: Collect) -> None:
    secret = _sentinel()

    async def main() -> int:
        pool = await aio.create_pool(db_url, min_size=1, max_size=1,
                                     query_log=QueryLog(slow_ms=0))
        try:
            async with pool.connection() as conn, conn.transaction():
                async with conn.pipeline():
                    await conn.execute("SELECT set_config('app.x', %s, true)", (secret,))
                    cur = await conn.execute("SELECT generate_series(1, %s)", (3,))
                return len(await cur.fetchall())
        finally:
            await pool.close()

    assert asyncio.run(main()) == 3
    units = [r for r in _sql_records(captured) if "generate_series" in r.wx_sql]  # type: ignore[attr-defined]
    (record,) = units
    assert record.wx_sql == (  # type: ignore[attr-defined]
        "SELECT set_config(?, %s, true) ; SELECT generate_series(?, %s)")
    assert record.wx_rows == 3  # type: ignore[attr-defined]
    assert _leaks(captured, secret) == []


@pytest.mark.parametrize("shell", SHELLS)
def test_the_routers_query_log_applies_to_both_shells(
    shell: str, db_url: str, ctx: ExecutionContext, captured: Collect
) -> None:
    secret = _sentinel()
    config = RouterConfig(monitor=False, query_log=QueryLog(slow_ms=0))
    settings = load_settings({"DATABASE_URL": db_url})
    query = "SELECT %s::text AS who"

    def read(conn: psycopg.Connection[Any], ctx: ExecutionContext) -> Result[int, DataError]:
        return Success(len(conn.execute(query, (secret,)).fetchall()))

    async def aread(conn: psycopg.AsyncConnection[Any],
                    ctx: ExecutionContext) -> Result[int, DataError]:
        return Success(len(await (await conn.execute(query, (secret,))).fetchall()))

    if shell == "sync":
        with Router.open(db_url, [], config=config, settings=settings, min_size=1,
                         max_size=1) as router:
            assert router.read(ctx, read) == Success(1)
            assert router.write(ctx, read) == Success(1)
    else:
        async def main() -> tuple[Any, Any]:
            async with await AsyncRouter.open(db_url, [], config=config, settings=settings,
                                              min_size=1, max_size=1) as router:
                return await router.read(ctx, aread), await router.write(ctx, aread)

        assert asyncio.run(main()) == (Success(1), Success(1))
    ours = [r for r in _sql_records(captured) if r.wx_sql == query]  # type: ignore[attr-defined]
    assert len(ours) == 2 and all(r.levelno == logging.WARNING for r in ours)
    assert _leaks(captured, secret) == []


def test_without_a_setting_async_connections_are_plain(db_url: str) -> None:
    quiet = load_settings({"DATABASE_URL": db_url})

    async def main() -> tuple[type, type, Any]:
        async with await aio.connect(db_url, config=quiet) as conn:
            single = (type(conn), conn.cursor_factory)
        pool = await aio.create_pool(db_url, min_size=1, max_size=1, config=quiet)
        try:
            async with pool.connection() as pooled:
                return single[0], single[1], (type(pooled), pooled.cursor_factory)
        finally:
            await pool.close()

    kind, factory, pooled = asyncio.run(main())
    assert kind is psycopg.AsyncConnection and factory is psycopg.AsyncCursor
    assert pooled == (psycopg.AsyncConnection, psycopg.AsyncCursor)


# --- the shared decision ----------------------------------------------------------------------

_MS = st.floats(min_value=0, max_value=1e7, allow_nan=False)
_THRESHOLD = st.none() | _MS


@given(slow_ms=_THRESHOLD, ms=_MS, more=_MS, debug=st.booleans())
def test_a_slow_statement_stays_slow_when_slower(
    slow_ms: float | None, ms: float, more: float, debug: bool
) -> None:
    policy = QueryLog(slow_ms=slow_ms)
    first = verdict(policy, ms, debug)
    later = verdict(policy, ms + more, debug)
    if first is not None and first[0] == logging.WARNING:
        assert later == (logging.WARNING, "slow query")
    assert (first == (logging.WARNING, "slow query")) == (slow_ms is not None and ms >= slow_ms)


@given(slow_ms=_THRESHOLD, ms=_MS)
def test_a_fast_statement_is_silent_without_debug(slow_ms: float | None, ms: float) -> None:
    policy = QueryLog(slow_ms=slow_ms)
    quiet, loud = verdict(policy, ms, False), verdict(policy, ms, True)
    assert quiet is None or quiet[0] == logging.WARNING
    assert loud is not None and (quiet is None) == (loud == (logging.DEBUG, "query"))


@given(state=st.from_regex(r"[0-9A-Z]{5}", fullmatch=True))
def test_failure_level_is_warning_only_for_expected_outcomes(state: str) -> None:
    expected = state[:2] in ("23", "40") or state in ("55P03", "57014", "25006", "42501")
    assert failure_level(state) == (logging.WARNING if expected else logging.ERROR)
