"""The async replica router: the same routing, lag bounds, fallback and read-your-writes as
:class:`wxdata.replicas.Router`, on ``AsyncConnection`` pools (:func:`wxdata.aio.create_pool`).

Every decision is the shared pure core's (:class:`wxdata.replicas.servers.Routing`: which replica,
which WAL position a context needs, what a status row means, backoff); this module only does the
I/O: pools, probes, the monitor task, checkouts. See :mod:`wxdata.replicas.router` for the
guarantees, which are the same:

- ``await router.read(ctx, fn, *args)`` runs ``await fn(conn, ctx, *args)`` on a replica that is
  up, within the lag bounds and caught up with the context's last commit, in a read-only unit of
  work (its disclosure records go to the primary on audit lane 2), else on the primary; a replica
  failing under a read is marked down and the read re-run elsewhere;
- ``await router.write(ctx, fn, *args)`` runs on the primary; a write that committed there makes
  the context read from the primary until a replica has replayed its commit position;
- nested checkouts in the same task reuse the connection of the enclosing one;
- health: the monitor task, or without one a background round started by the first read that
  finds a check due (as the sync router's background thread), or :meth:`AsyncRouter.check_all`.

The router belongs to one event loop (its state is changed only between awaits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import attrs
import psycopg
from psycopg_pool import PoolTimeout
from returns.result import Failure, Result

from wxdata.aio.db import AsyncPool, create_pool
from wxdata.aio.tx import run_in_scope, unit_of_work
from wxdata.audit.lanes import lane_health, route_lane
from wxdata.config import Settings
from wxdata.context import ExecutionContext
from wxdata.db import conninfo, side_connect_kwargs
from wxdata.errors import DataError, from_db_error
from wxdata.pool_metrics import RouterHealth, retire_counters
from wxdata.replicas.config import RouterConfig
from wxdata.replicas.ledger import UNKNOWN
from wxdata.replicas.router import mark_replica, pushed
from wxdata.replicas.servers import (
    COMMIT_LSN,
    DOWN,
    REPLAY_LSN,
    STATUS_PRIMARY,
    STATUS_REPLICA,
    UP,
    RouterState,
    Routing,
    Server,
    retire,
    router_fields,
)
from wxdata.safelog import log_error
from wxdata.tx.events import WriteEvent, add_write_listener

log = logging.getLogger("wxdata.replicas")

P = ParamSpec("P")
T = TypeVar("T")
AConn = psycopg.AsyncConnection[Any]

__all__ = ["AsyncRouter"]


@attrs.define(slots=True, eq=False)
class _Checkout:
    router: AsyncRouter
    server: Server
    conn: AConn
    key: str
    write: bool
    dirty: bool = False


_ACTIVE: ContextVar[tuple[_Checkout, ...]] = ContextVar("wxdata_async_router_checkouts", default=())


def _on_write(event: WriteEvent) -> None:
    """Write listener: a committed write in this task marks its write checkouts' contexts pending."""
    for co in _ACTIVE.get():
        if co.write and not co.dirty:
            co.dirty = True
            co.router.routing.ledger.begin_write(co.key)


@attrs.define(slots=True, eq=False)
class AsyncRouter(RouterState):
    """One primary and N replicas, each with its own async pool. Build with :meth:`open`."""

    _check_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)
    _monitor: asyncio.Task[None] | None = attrs.field(default=None, init=False)
    _wake: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    _background: set[asyncio.Task[Any]] = attrs.field(factory=set, init=False)
    _lazy: asyncio.Task[None] | None = attrs.field(default=None, init=False)
    _taken_at: weakref.WeakKeyDictionary[AConn, float] = attrs.field(
        factory=weakref.WeakKeyDictionary, init=False)
    _closed: bool = attrs.field(default=False, init=False)

    # --- life cycle ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        primary_url: str | None = None,
        replica_urls: Sequence[str] | None = None,
        *,
        config: RouterConfig | None = None,
        settings: Settings | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
        initial_check: bool = True,
    ) -> AsyncRouter:
        """Pools for the primary and each replica; see :meth:`wxdata.replicas.Router.open`."""
        router = cls(**router_fields(primary_url, replica_urls, config, settings, min_size,
                                     max_size))
        add_write_listener(_on_write)
        router.primary.pool = await router._make_pool(router.primary)
        if initial_check:
            await router.check_all()
        if router.config.monitor and router.replicas:
            router._monitor = asyncio.create_task(router._monitor_loop(),
                                                  name="wxdata-async-replica-monitor")
        return router

    async def _make_pool(self, server: Server) -> AsyncPool:
        return await create_pool(
            server.url, min_size=self.pool_min, max_size=max(self.pool_max, 1),
            name=f"wxdata-async-{server.name}", query_log=self.config.query_log,
            config=self.settings, timeout=self.config.primary_timeout,
        )

    async def _monitor_loop(self) -> None:
        while not self._closed:
            try:
                await self.check_due()
            except Exception as exc:  # noqa: BLE001 - logged PHI-safely; the monitor must outlive a failed round
                log_error(log, "async replica monitor round failed", exc)
            now = time.monotonic()
            due = min([s.next_check for s in self.replicas] or [now + self.config.check_interval])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(
                    max(due - now, 0.01), self.config.check_interval))
            self._wake.clear()

    async def close(self) -> None:
        """Stop the monitor and close every pool and probe connection."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        async with self._check_lock:
            pass
        for task in tuple(self._background):
            with contextlib.suppress(Exception):
                await task
        for server in (self.primary, *self.replicas):
            pool, probe = retire(server)
            if pool is not None:
                await pool.close()
            if probe is not None:
                await probe.close()

    async def __aenter__(self) -> AsyncRouter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- health checks ------------------------------------------------------------------------

    async def check_all(self) -> RouterHealth:
        """Probe the primary and every replica now; return the metrics."""
        async with self._check_lock:
            if not self._closed:
                await self._check_primary()
                for server in self.replicas:
                    await self._check_replica(server)
        return self.health()

    def _check_lazily(self) -> None:
        """Without a monitor: when a replica's check is due, run one round in a background task
        (one at a time), as the sync router does; the read that found it due does not wait."""
        if self._monitor is not None or not self.replicas or self._closed:
            return
        if self._lazy is not None and not self._lazy.done():
            return
        now = time.monotonic()
        if all(s.next_check > now for s in self.replicas):
            return
        task = asyncio.create_task(self._lazy_round(), name="wxdata-async-replica-check")
        self._lazy = task
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _lazy_round(self) -> None:
        try:
            await self.check_due()
        except Exception as exc:  # noqa: BLE001 - logged PHI-safely; a failed round must not kill the caller's read
            log_error(log, "lazy async replica check failed", exc)

    async def check_due(self) -> None:
        """Probe the servers whose check is due (what the monitor runs each round)."""
        async with self._check_lock:
            if self._closed:
                return
            now = time.monotonic()
            if now - self.routing.primary_lsn_at >= self.config.check_interval:
                await self._check_primary()
            for server in self.replicas:
                if server.next_check <= time.monotonic():
                    await self._check_replica(server)

    async def _probe(self, server: Server) -> AConn:
        probe: AConn | None = server.probe
        if probe is None or probe.closed or probe.broken:
            if probe is not None:
                await probe.close()
            probe = await psycopg.AsyncConnection.connect(
                conninfo(server.url, self.settings, application_name="wxdata-health",
                         connect_timeout=self.config.connect_timeout),
                autocommit=True, **side_connect_kwargs(self.settings),
            )
            server.probe = probe
        return probe

    async def _status(self, server: Server, query: str) -> tuple[Any, ...] | None:
        """One status row from ``server``'s probe connection (None: no answer, probe dropped)."""
        try:
            cur = await (await self._probe(server)).execute(query)
            return await cur.fetchone()
        except psycopg.Error:
            probe, server.probe = server.probe, None
            if probe is not None:
                await probe.close()
            return None

    async def _check_primary(self) -> None:
        row = await self._status(self.primary, STATUS_PRIMARY)
        if row is None:
            if self.routing.primary_unreachable():
                log.error("primary unreachable")
            return
        self.routing.primary_status(row, time.monotonic())

    async def _check_replica(self, server: Server) -> None:
        if self.routing.primary_stale(time.monotonic()):
            await self._check_primary()
        row = await self._status(server, STATUS_REPLICA)
        if row is None:
            await self._mark_down(server, "unreachable")
            return
        verdict = self.routing.replica_status(server, row, time.monotonic())
        if verdict.down is not None:
            await self._mark_down(server, verdict.down)
            return
        if verdict.changed:
            log.log(logging.INFO if verdict.new == UP else logging.WARNING, "replica %s: %s -> %s%s",
                    server.name, verdict.old, verdict.new,
                    f" ({server.reason})" if server.reason else "")
        if verdict.open_pool:
            pool = await self._make_pool(server)
            if server.pool is None and not self._closed:
                server.pool = pool
            else:
                await pool.close()

    async def _mark_down(self, server: Server, reason: str) -> None:
        """Out of rotation now; its pool closed in the background; re-probed with backoff."""
        was, pool = self.routing.take_down(server, reason, time.monotonic())
        if was != DOWN:
            log.warning("replica %s down: %s; retry in %.2f s", server.name, reason, server.backoff)
        if pool is not None:
            server.retired.update(retire_counters(pool))
            task = asyncio.create_task(pool.close(timeout=5.0))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self._wake.set()

    # --- read-your-writes -----------------------------------------------------------------------

    async def _commit_position(self, conn: AConn) -> int:
        """The WAL insert position after our COMMIT: on the same connection, else any primary one."""
        if not (conn.closed or conn.broken) and (
            conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        ):
            with contextlib.suppress(psycopg.Error):
                row = await (await conn.execute(COMMIT_LSN)).fetchone()
                if row is not None:
                    return int(row[0])
        pool = self.primary.pool
        if pool is not None:
            with contextlib.suppress(psycopg.Error):
                async with pool.connection(timeout=self.config.replica_timeout) as other:
                    row = await (await other.execute(COMMIT_LSN)).fetchone()
                    if row is not None:
                        return int(row[0])
        return UNKNOWN

    async def note_commit(self, conn: AConn, ctx: ExecutionContext) -> None:
        """Record that ``ctx`` committed a write on the primary ``conn`` (any connection)."""
        self.routing.ledger.record(self._key(ctx), await self._commit_position(conn))

    def required_lsn(self, ctx: ExecutionContext) -> int | None:
        """The WAL position a replica must have replayed to serve ``ctx`` (None: must be primary)."""
        return self.routing.ledger.requirement(self._key(ctx))[0]

    # --- checkouts ----------------------------------------------------------------------------

    def _reusable(self, write: bool) -> _Checkout | None:
        for co in reversed(_ACTIVE.get()):
            if co.router is self and (co.write or not write):
                return co
        return None

    async def _take(self, server: Server, timeout: float) -> tuple[AConn, AsyncPool] | None:
        pool: AsyncPool | None = server.pool
        if pool is None:
            return None
        conn = await pool.getconn(timeout=timeout)
        Routing.taken(server)
        self._taken_at[conn] = time.monotonic()  # checkout time until given back
        return conn, pool

    async def _give_back(self, server: Server, conn: AConn, pool: AsyncPool) -> None:
        now = time.monotonic()
        Routing.given_back(server, now - self._taken_at.pop(conn, now), conn.closed or conn.broken)
        await pool.putconn(conn)

    async def _acquire_read(
        self, key: str, exclude: set[str]
    ) -> tuple[Server, AConn, AsyncPool, str | None]:
        """A replica connection caught up for ``key``, else the primary (with the fallback reason)."""
        self._check_lazily()
        eligible, required, reason = self.routing.candidates(key)
        for server in eligible:
            if server.name in exclude:
                continue
            try:
                taken = await self._take(server, self.config.replica_timeout)
            except PoolTimeout:
                Routing.skipped(server, timed_out=True)
                self._wake.set()
                continue
            except psycopg.Error:
                Routing.skipped(server, timed_out=False)
                continue
            if taken is None:
                continue
            conn, pool = taken
            if required and required > server.replay_lsn:
                try:
                    row = await (await conn.execute(REPLAY_LSN)).fetchone()
                    replayed = int(row[0]) if row else 0
                except psycopg.Error as exc:
                    await self._give_back(server, conn, pool)
                    await self._mark_down(server, f"failed ({type(exc).__name__})")
                    continue
                if not self.routing.caught_up(server, replayed, required):
                    await self._give_back(server, conn, pool)
                    reason = "read_your_writes"
                    continue
            # its disclosures go to the primary, on a lane the primary's pool keeps
            route_lane(cast(Any, conn), self.lane_target,
                       getattr(self.primary.pool, "lane", None))
            mark_replica(conn)
            return server, conn, pool, None
        primary = await self._take(self.primary, self.config.primary_timeout)
        if primary is None:
            raise psycopg.OperationalError("the primary pool is closed")
        return self.primary, primary[0], primary[1], reason

    async def read(
        self,
        ctx: ExecutionContext,
        fn: Callable[Concatenate[AConn, ExecutionContext, P], Awaitable[Result[T, DataError]]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Result[T, DataError]:
        """Run ``await fn(conn, ctx, *args)`` on a read connection; re-run elsewhere if a replica
        fails under it."""
        reuse = self._reusable(False)
        if reuse is not None:
            return await fn(reuse.conn, ctx, *args, **kwargs)
        key = self._key(ctx)
        exclude: set[str] = set()
        while True:
            try:
                server, conn, pool, reason = await self._acquire_read(key, exclude)
            except psycopg.Error:  # PoolTimeout on the primary included
                return self.routing.unavailable("no database server could serve the read")
            co = _Checkout(self, server, conn, key, False)

            def body(c: AConn = conn) -> Awaitable[Result[T, DataError]]:
                return fn(c, ctx, *args, **kwargs)

            try:
                with pushed(_ACTIVE, co):
                    if server is self.primary:
                        try:
                            result = await body()
                        except psycopg.Error as exc:
                            result = Failure(from_db_error(exc))
                    else:
                        result = await run_in_scope(conn, ctx, body, read_only=True)
            finally:
                broken = conn.closed or conn.broken
                await self._give_back(server, conn, pool)
            if not self.routing.settle_read(server, result, broken, exclude, reason):
                return result
            await self._mark_down(server, "failed under a read")

    @contextlib.asynccontextmanager
    async def connection(self, ctx: ExecutionContext, *, write: bool) -> AsyncIterator[AConn]:
        """A primary connection (``write``), or a read connection (a replica's in a read-only unit
        of work); the twin of :meth:`wxdata.replicas.Router.connection`.

        Raises ``psycopg_pool.PoolTimeout`` when no server can give a connection in time (use
        :meth:`read` / :meth:`write` for a Result instead).
        """
        reuse = self._reusable(write)
        if reuse is not None:
            yield reuse.conn
            return
        key = self._key(ctx)
        if write:
            taken = await self._take(self.primary, self.config.primary_timeout)
            if taken is None:
                raise psycopg.OperationalError("the primary pool is closed")
            conn, pool = taken
            co = _Checkout(self, self.primary, conn, key, True)
            self.primary.counters["writes"] += 1
            try:
                with pushed(_ACTIVE, co):
                    yield conn
            finally:
                try:
                    if co.dirty:
                        self.routing.ledger.end_write(key, await self._commit_position(conn))
                finally:
                    await self._give_back(self.primary, conn, pool)
            return
        server, conn, pool, reason = await self._acquire_read(key, set())
        self.routing.count_read(server, reason)
        co = _Checkout(self, server, conn, key, False)
        try:
            with pushed(_ACTIVE, co):
                if server is self.primary:
                    yield conn
                else:
                    async with unit_of_work(conn, ctx, read_only=True):
                        yield conn
        finally:
            lost = server.role == "replica" and (conn.closed or conn.broken)
            await self._give_back(server, conn, pool)
            if lost:
                await self._mark_down(server, "connection lost")

    async def write(
        self,
        ctx: ExecutionContext,
        fn: Callable[Concatenate[AConn, ExecutionContext, P], Awaitable[Result[T, DataError]]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Result[T, DataError]:
        """Run ``await fn(conn, ctx, *args)`` on a primary connection."""
        try:
            async with self.connection(ctx, write=True) as conn:
                return await fn(conn, ctx, *args, **kwargs)
        except psycopg.OperationalError:  # PoolTimeout / PoolClosed included
            return self.routing.unavailable("primary unreachable or pool exhausted")

    # --- metrics ------------------------------------------------------------------------------

    def health(self) -> RouterHealth:
        """Pool statistics, states, lag and routing counters (the sync router's shape)."""
        return self.routing.health(lane_health())
