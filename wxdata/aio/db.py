"""Async connections and pools, built exactly like the sync ones (:mod:`wxdata.db`).

Same conninfo (:func:`wxdata.db.conninfo`), same keyword arguments (:func:`wxdata.db.connect_kwargs`:
behind ``DB_POOLER=transaction`` no statement is ever named), autocommit, the role checked on
every new connection, audit lane 2 routed and owned as for a sync pool, and the same PHI-safe
statement logging (``DB_SLOW_QUERY_MS`` or ``query_log``: :mod:`wxdata.observability`). What is
decided is decided once, in :mod:`wxdata.db`'s pure functions (:func:`wxdata.db.connection_options`,
:func:`wxdata.db.pool_options`, :func:`wxdata.db.must_roll_back`, :func:`wxdata.db.needs_ping`);
only the awaiting is here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from wxdata.config import Settings, settings
from wxdata.core.drive import arun
from wxdata.db import (
    _UNSET,
    LANE_APPLICATION_NAME,
    _query_log,
    connection_options,
    conninfo,
    mark_returned,
    must_roll_back,
    needs_ping,
    pool_options,
)
from wxdata.observability import AsyncTracedConnection, QueryLog, attach
from wxdata.tx.scope import check_plan

AConn = psycopg.AsyncConnection[Any]


async def connect(
    url: str | None = None, *, owner: bool = False, config: Settings | None = None,
    prepare_threshold: int | None = _UNSET, **overrides: Any,
) -> AConn:
    """Open one autocommit async connection (use it as an async context manager).

    The twin of :func:`wxdata.db.connect`: the application role by default, ``owner=True`` for
    the migration role; a role that bypasses row-level security is logged at WARNING; with
    ``DB_SLOW_QUERY_MS`` set its statements are logged PHI-safely (:mod:`wxdata.observability`).
    """
    config = config or settings()
    kwargs = connection_options(config, prepare_threshold)
    policy = _query_log(config)
    info = conninfo(url, config, owner=owner, **overrides)
    conn: AConn
    if policy is None:
        conn = await psycopg.AsyncConnection.connect(info, **kwargs)
    else:
        conn = await AsyncTracedConnection.connect(info, **kwargs)
        attach(conn, policy)
    if not owner:
        try:
            await arun(conn, check_plan(conn, config))
        except BaseException:
            await conn.close()
            raise
    return conn


async def _reset(conn: AConn) -> None:
    """On return to the pool: no transaction may survive a checkout."""
    if must_roll_back(conn):
        await conn.rollback()
        await conn.set_autocommit(True)
    mark_returned(conn)


async def check_if_idle(conn: AConn) -> None:
    """Checkout check that pings only the connections :func:`wxdata.db.needs_ping` names (new or
    idle longer than ``IDLE_CHECK_AFTER``), as the sync pool does."""
    if needs_ping(conn):
        await AsyncConnectionPool.check_connection(conn)


class AsyncPool(AsyncConnectionPool[AConn]):
    """An async pool that also owns the audit lane-2 pools its connections write to.

    A connection is reset in :meth:`putconn` itself (``on_return``), as the sync pool does, not
    through psycopg_pool's ``reset=``: with a reset callback psycopg_pool hands every returned
    connection to a worker task, so the next checkout of that connection waits for the task to
    run, and a task that runs after :meth:`close` leaves its connection open on the server.
    """

    def __init__(self, *args: Any, lane: Any = None,
                 on_return: Callable[[AConn], Awaitable[None]] | None = None,
                 **kwargs: Any) -> None:
        self.lane = lane  # the lane-2 owner (wxdata.audit.lanes.LaneOwner)
        self._on_return = on_return
        super().__init__(*args, **kwargs)

    async def putconn(self, conn: AConn) -> None:
        """Reset ``conn`` here, then return it to the pool (closed if the pool is)."""
        if self._on_return is not None and not (conn.closed or conn.broken or self.closed):
            try:
                await self._on_return(conn)
            except psycopg.Error:
                await conn.close()  # psycopg_pool counts it as returned bad and opens a new one
        await super().putconn(conn)

    async def close(self, timeout: float = 5.0) -> None:
        """Close the pool's connections, then the lane-2 pools only it was using."""
        try:
            await super().close(timeout)
        finally:
            if self.lane is not None:
                self.lane.close()


async def create_pool(
    url: str | None = None, *, min_size: int | None = None, max_size: int | None = None,
    name: str = "wxdata-async", open: bool = True,
    configure: Callable[[AConn], Awaitable[None]] | None = None,
    query_log: QueryLog | None = None, config: Settings | None = None, **kwargs: Any,
) -> AsyncPool:
    """An opened async pool of autocommit connections (the twin of :func:`wxdata.db.create_pool`).

    Each new connection is checked (role) and routed to the process's audit lane 2, which this
    pool owns and closes with itself. ``configure`` runs on each new connection after wxdata's
    own set-up; ``query_log`` (default: from ``DB_SLOW_QUERY_MS``) traces every statement
    PHI-safely (:mod:`wxdata.observability`).
    """
    from wxdata.audit.lanes import LaneOwner, LaneTarget, set_route  # lanes build on db

    config = config or settings()
    policy = query_log if query_log is not None else _query_log(config)
    owner = LaneOwner()
    target = LaneTarget.of(conninfo(url, config, application_name=LANE_APPLICATION_NAME), config)

    async def setup(conn: AConn) -> None:
        await conn.set_autocommit(True)
        set_route(conn, target, owner)  # type: ignore[arg-type]  # the route is only stored
        await arun(conn, check_plan(conn, config))
        if policy is not None:
            attach(conn, policy)
        if configure is not None:
            await configure(conn)

    if policy is not None:
        kwargs.setdefault("connection_class", AsyncTracedConnection)
    pool = AsyncPool(
        configure=setup, on_return=_reset, check=check_if_idle, open=False, lane=owner,
        **pool_options(url, config, min_size, max_size, name), **kwargs,
    )
    if open:
        await pool.open()
    return pool
