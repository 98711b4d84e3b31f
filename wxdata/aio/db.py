"""Async connections and pools, built exactly like the sync ones (:mod:`wxdata.db`).

Same conninfo (:func:`wxdata.db.conninfo`), same keyword arguments (:func:`wxdata.db.connect_kwargs`:
behind ``DB_POOLER=transaction`` no statement is ever named), autocommit, the role checked on
every new connection, and audit lane 2 routed and owned as for a sync pool.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from wxdata.config import Settings, settings
from wxdata.core.drive import arun
from wxdata.db import (
    _UNSET,
    LANE_APPLICATION_NAME,
    connect_kwargs,
    conninfo,
    mark_returned,
    needs_ping,
)
from wxdata.tx.scope import check_plan

AConn = psycopg.AsyncConnection[Any]


async def connect(
    url: str | None = None, *, owner: bool = False, config: Settings | None = None,
    prepare_threshold: int | None = _UNSET, **overrides: Any,
) -> AConn:
    """Open one autocommit async connection (use it as an async context manager).

    The twin of :func:`wxdata.db.connect`: the application role by default, ``owner=True`` for
    the migration role; a role that bypasses row-level security is logged at WARNING.
    """
    config = config or settings()
    kwargs: dict[str, Any] = {"autocommit": True, **connect_kwargs(config)}
    if prepare_threshold is not _UNSET:
        if prepare_threshold is not None and config.transaction_pooled:
            raise ValueError(
                "prepare_threshold must be None behind a transaction pooler (DB_POOLER=transaction)"
            )
        kwargs["prepare_threshold"] = prepare_threshold
    conn = await psycopg.AsyncConnection.connect(conninfo(url, config, owner=owner, **overrides),
                                                 **kwargs)
    if not owner:
        try:
            await arun(conn, check_plan(conn))
        except BaseException:
            await conn.close()
            raise
    return conn


async def _reset(conn: AConn) -> None:
    """On return to the pool: no transaction may survive a checkout."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        await conn.rollback()
        await conn.set_autocommit(True)
    mark_returned(conn)


async def check_if_idle(conn: AConn) -> None:
    """Checkout check that pings only the connections :func:`wxdata.db.needs_ping` names (new or
    idle longer than ``IDLE_CHECK_AFTER``), as the sync pool does."""
    if needs_ping(conn):
        await AsyncConnectionPool.check_connection(conn)


class AsyncPool(AsyncConnectionPool[AConn]):
    """An async pool that also owns the audit lane-2 pools its connections write to."""

    def __init__(self, *args: Any, lane: Any = None, **kwargs: Any) -> None:
        self.lane = lane  # the lane-2 owner (wxdata.audit.lanes.LaneOwner)
        super().__init__(*args, **kwargs)

    async def close(self, timeout: float = 5.0) -> None:
        """Close the pool's connections, then the lane-2 pools only it was using."""
        try:
            await super().close(timeout)
        finally:
            if self.lane is not None:
                self.lane.close()


async def create_pool(
    url: str | None = None, *, min_size: int | None = None, max_size: int | None = None,
    name: str = "wxdata-async", open: bool = True, config: Settings | None = None,
    **kwargs: Any,
) -> AsyncPool:
    """An opened async pool of autocommit connections (the twin of :func:`wxdata.db.create_pool`).

    Each new connection is checked (role) and routed to the process's audit lane 2, which this
    pool owns and closes with itself.
    """
    from wxdata.audit.lanes import LaneOwner, LaneTarget, set_route  # lanes build on db

    config = config or settings()
    owner = LaneOwner()
    target = LaneTarget.of(conninfo(url, config, application_name=LANE_APPLICATION_NAME), config)

    async def setup(conn: AConn) -> None:
        await conn.set_autocommit(True)
        set_route(conn, target, owner)  # type: ignore[arg-type]  # the route is only stored
        await arun(conn, check_plan(conn))

    pool = AsyncPool(
        conninfo(url, config),
        min_size=config.pool_min if min_size is None else min_size,
        max_size=config.pool_max if max_size is None else max_size,
        name=name,
        configure=setup,
        reset=_reset,
        check=check_if_idle,
        open=False,
        kwargs={"autocommit": True, **connect_kwargs(config)},
        lane=owner,
        **kwargs,
    )
    if open:
        await pool.open()
    return pool
