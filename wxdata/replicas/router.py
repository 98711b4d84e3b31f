"""Read/write routing over one primary and N streaming replicas, with read-your-writes.

Routing
    ``router.connection(ctx, write=True)`` checks out a primary connection. ``write=False`` checks
    out a replica that is up, within the lag bound and (for this context) caught up, chosen
    round-robin or least-loaded, else the primary. On a replica the block runs in a read-only unit
    of work (BEGIN READ ONLY + the context's ``set_config``, see Audit below); on the primary the
    connection is handed out as is, so a read that falls back costs exactly what a direct read
    costs (a read connection is for reads: a write fails on a replica, and is not prevented on the
    primary). Checkouts nest: inside a write checkout every
    ``connection()``/``read()`` of the same router in the same thread returns that very connection
    (work inside a writing unit of work sees its own writes and never opens a second connection);
    inside a read checkout a nested read reuses it too. ``router.read(ctx, fn, *args)`` runs
    ``fn(conn, ctx, *args)`` on a read checkout and returns its Result; if the replica fails under
    it (connection lost, server shutting down) the call is re-run on the next server, so a replica
    going away costs latency, never a failed call.

Read-your-writes
    A context is keyed by ``ctx.session_id`` (falling back to ``ctx.user_id`` when the session id is
    absent) or, with ``Consistency.USER``, by ``ctx.user_id`` (every session of the user). When a
    write committed through a primary checkout (every CRUD write announces itself through
    :mod:`wxdata.tx.events` after COMMIT, inside a unit of work or not), the context is *pending*
    until the checkout ends; then the WAL insert position is read on that same connection and
    recorded. Until a replica's ``pg_last_wal_replay_lsn()`` reaches it, that context's reads go to
    the primary. ``pg_current_wal_insert_lsn()`` is used rather than ``pg_current_wal_lsn()``: with
    ``synchronous_commit = off`` the commit record may not be written yet when COMMIT returns, and
    the write position would then be *before* it; the insert position never is. Writes made on a
    connection the router did not hand out are covered by calling :meth:`Router.note_commit`.

Health (:mod:`wxdata.replicas.checks`)
    A monitor thread (or, without one, a background round started by the first read that finds a
    check due; or :meth:`Router.check_all`) probes every server on a dedicated connection:
    a replica that does not answer, is not in recovery, or lags beyond ``max_lag_bytes`` /
    ``max_lag_seconds`` stops taking reads (each skipped read is counted by reason); a replica found
    dead in the request path is marked down at once. A down replica's pool is closed, and it is
    re-probed with exponential backoff; when it answers again a fresh pool is opened and it takes
    reads as soon as it is within the bounds. A replica coming back never serves a context it has
    not caught up with: the router keeps a floor (the lowest replay position of the reachable
    replicas when tracked positions were pruned) that every read requires.

Audit
    A replica cannot take the INSERT of a read's disclosure record. Inside the read-only unit of
    work the CRUD functions write that record on audit lane 2, and every replica connection has its
    lane routed to the primary (:func:`wxdata.audit.lanes.route_lane`): the disclosure is committed
    on the primary before the read returns. When it cannot be (lane 2 unreachable or exhausted) the
    read answers ``Failure(Unavailable)`` with no data, and the replica is not marked down for it.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Concatenate, ParamSpec, TypeVar

import attrs
import psycopg
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout
from returns.result import Failure, Result

from wxdata.audit.lanes import lane_health, route_lane
from wxdata.config import Settings
from wxdata.context import ExecutionContext
from wxdata.db import create_pool
from wxdata.errors import DataError, from_db_error
from wxdata.pool_metrics import RouterHealth
from wxdata.replicas.checks import HealthChecker
from wxdata.replicas.config import Consistency, RouterConfig, Strategy, consistency_key
from wxdata.replicas.ledger import UNKNOWN
from wxdata.replicas.servers import (
    COMMIT_LSN,
    REPLAY_LSN,
    RouterState,
    Routing,
    Server,
    retire,
    router_fields,
)
from wxdata.tx.decorators import run_in_scope
from wxdata.tx.events import WriteEvent, add_write_listener
from wxdata.tx.scope import unit_of_work

__all__ = ["Consistency", "Router", "RouterConfig", "Strategy", "consistency_key", "is_replica"]

log = logging.getLogger("wxdata.replicas")

P = ParamSpec("P")
T = TypeVar("T")
C = TypeVar("C")
Conn = psycopg.Connection[Any]


@attrs.define(slots=True, eq=False)
class _Checkout:
    """A connection handed out by a router, for reuse by nested calls and commit tracking."""

    router: Router
    server: Server
    conn: Conn
    ctx: ExecutionContext
    key: str
    write: bool
    thread: int
    dirty: bool = False


_ACTIVE: ContextVar[tuple[_Checkout, ...]] = ContextVar("wxdata_router_checkouts", default=())
_REPLICA_CONNS: weakref.WeakSet[Any] = weakref.WeakSet()


def is_replica(conn: Conn | psycopg.AsyncConnection[Any]) -> bool:
    """Whether ``conn`` was opened by a router to a replica (e.g. to skip filling a cache from it)."""
    return conn in _REPLICA_CONNS


def mark_replica(conn: Conn | psycopg.AsyncConnection[Any]) -> None:
    """Remember that ``conn`` (sync or async) reaches a replica (see :func:`is_replica`)."""
    _REPLICA_CONNS.add(conn)


def _on_write(event: WriteEvent) -> None:
    """Write listener: a committed write marks the enclosing write checkouts' contexts pending."""
    me = threading.get_ident()
    for co in _ACTIVE.get():
        if co.write and not co.dirty and co.thread == me:
            co.router._mark_dirty(co)


@contextmanager
def pushed(active: ContextVar[tuple[C, ...]], co: C) -> Iterator[C]:
    """Make ``co`` the innermost checkout of ``active`` for the block (both routers: no await
    inside, so the async router uses it as is)."""
    token = active.set((*active.get(), co))
    try:
        yield co
    finally:
        active.reset(token)


def _call(body: Callable[[], Result[T, DataError]]) -> Result[T, DataError]:
    """Run a read on the primary as a direct call would (database errors become Failures)."""
    try:
        return body()
    except psycopg.Error as exc:
        return Failure(from_db_error(exc))


@attrs.define(slots=True, eq=False)
class Router(RouterState):
    """One primary and N replicas, each with its own pool; thread-safe. Build with :meth:`open`."""

    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    checks: HealthChecker = attrs.field(init=False, repr=False)
    _last_used: weakref.WeakKeyDictionary[Conn, float] = attrs.field(
        factory=weakref.WeakKeyDictionary, init=False)
    _closed: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.checks = HealthChecker(self.config, self.settings, self.routing, self._lock,
                                    self._make_pool)

    # --- life cycle ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        primary_url: str | None = None,
        replica_urls: Sequence[str] | None = None,
        *,
        config: RouterConfig | None = None,
        settings: Settings | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
        initial_check: bool = True,
    ) -> Router:
        """Pools for the primary (``DATABASE_URL``) and each replica (``DATABASE_REPLICA_URLS``).

        ``initial_check`` probes every server before returning (replica pools open only for
        replicas that answer); otherwise replicas take reads after the monitor's first round.
        """
        router = cls(**router_fields(primary_url, replica_urls, config, settings, min_size,
                                     max_size))
        add_write_listener(_on_write)
        router.primary.pool = router._make_pool(router.primary)
        if initial_check:
            router.check_all()
        if router.config.monitor and router.replicas:
            router.start_monitor()
        return router

    def _make_pool(self, server: Server) -> ConnectionPool[Conn]:
        replica = server.role == "replica"

        def configure(conn: Conn) -> None:
            self._last_used[conn] = time.monotonic()  # just connected: no check on first checkout
            if replica:  # its disclosures go to the primary, on a lane the primary's pool keeps
                route_lane(conn, self.lane_target, self._primary_lane())
                _REPLICA_CONNS.add(conn)

        return create_pool(
            server.url, min_size=self.pool_min, max_size=max(self.pool_max, 1),
            name=f"wxdata-{server.name}", check=self._check_if_idle, configure=configure,
            query_log=self.config.query_log, config=self.settings,
            timeout=self.config.primary_timeout,
        )

    def _primary_lane(self) -> Any:
        """The lane-2 owner of the primary's pool (None before it is made)."""
        return getattr(self.primary.pool, "lane", None)

    def _check_if_idle(self, conn: Conn) -> None:
        """Checkout check: a round trip only for connections idle longer than ``idle_check_after``."""
        last = self._last_used.get(conn)
        if last is None or time.monotonic() - last > self.config.idle_check_after:
            ConnectionPool.check_connection(conn)

    def start_monitor(self) -> None:
        """Start the background health monitor (idempotent)."""
        self.checks.start()

    def close(self) -> None:
        """Stop the monitor and close every pool and probe connection."""
        if self._closed:
            return
        self._closed = True
        self.checks.stop()
        for server in (self.primary, *self.replicas):
            with self._lock:
                pool, probe = retire(server)
            if pool is not None:
                pool.close()
            if probe is not None:
                probe.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- health checks (see :mod:`wxdata.replicas.checks`) ----------------------------------

    def check_all(self) -> RouterHealth:
        """Probe the primary and every replica now (synchronously); return the metrics."""
        self.checks.check_all()
        return self.health()

    def check_due(self) -> None:
        """Probe the servers whose check is due (what the monitor runs each round)."""
        self.checks.check_due()

    def _mark_down(self, server: Server, reason: str) -> None:
        self.checks.mark_down(server, reason)

    # --- read-your-writes bookkeeping ---------------------------------------------------------

    def _mark_dirty(self, co: _Checkout) -> None:
        with self._lock:
            co.dirty = True
            self.routing.ledger.begin_write(co.key)

    def _commit_position(self, conn: Conn) -> int:
        """The WAL insert position after our COMMIT: on the same connection, else any primary one."""
        if not (conn.closed or conn.broken) and (
            conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        ):
            try:
                row = conn.execute(COMMIT_LSN).fetchone()
                if row is not None:
                    return int(row[0])
            except psycopg.Error:
                pass
        pool = self.primary.pool
        if pool is not None:
            try:
                with pool.connection(timeout=self.config.replica_timeout) as other:
                    row = other.execute(COMMIT_LSN).fetchone()
                    if row is not None:
                        return int(row[0])
            except psycopg.Error:
                pass
        return UNKNOWN

    def note_commit(self, conn: Conn, ctx: ExecutionContext) -> None:
        """Record that ``ctx`` committed a write on the primary ``conn`` (any connection)."""
        lsn = self._commit_position(conn)
        with self._lock:
            self.routing.ledger.record(self._key(ctx), lsn)

    def _finish_write(self, co: _Checkout) -> None:
        lsn = self._commit_position(co.conn)
        with self._lock:
            self.routing.ledger.end_write(co.key, lsn)

    def required_lsn(self, ctx: ExecutionContext) -> int | None:
        """The WAL position a replica must have replayed to serve ``ctx`` (None: must be primary)."""
        key = self._key(ctx)
        with self._lock:
            return self.routing.ledger.requirement(key)[0]

    # --- checkouts ----------------------------------------------------------------------------

    def _reusable(self, write: bool) -> _Checkout | None:
        me = threading.get_ident()
        for co in reversed(_ACTIVE.get()):
            if co.router is self and co.thread == me and (co.write or not write):
                return co
        return None

    def _take(self, server: Server, timeout: float) -> tuple[Conn, ConnectionPool[Conn]] | None:
        pool = server.pool
        if pool is None:
            return None
        conn = pool.getconn(timeout=timeout)
        now = time.monotonic()
        with self._lock:
            Routing.taken(server)
        self._last_used[conn] = now  # checkout time until given back
        return conn, pool

    def _take_primary(self) -> tuple[Conn, ConnectionPool[Conn]]:
        """A primary connection; ``PoolClosed`` (a psycopg error) once the router is closed."""
        taken = self._take(self.primary, self.config.primary_timeout)
        if taken is None:
            raise PoolClosed("the primary's pool is closed")
        return taken

    def _give_back(self, server: Server, conn: Conn, pool: ConnectionPool[Conn]) -> None:
        now = time.monotonic()
        taken = self._last_used.get(conn, now)
        with self._lock:
            Routing.given_back(server, now - taken, conn.closed or conn.broken)
        self._last_used[conn] = now
        pool.putconn(conn)

    def _candidates(self, key: str) -> tuple[list[Server], int | None, str]:
        """Replicas to try in order, the LSN they must have replayed, and the fallback reason."""
        with self._lock:
            return self.routing.candidates(key)

    def _acquire_read(
        self, key: str, exclude: set[str]
    ) -> tuple[Server, Conn, ConnectionPool[Conn], str | None]:
        """A replica connection caught up for ``key``, else the primary (with the fallback reason)."""
        self.checks.check_lazily()
        eligible, required, reason = self._candidates(key)
        for server in eligible:
            if server.name in exclude:
                continue
            try:
                taken = self._take(server, self.config.replica_timeout)
            except PoolTimeout:
                with self._lock:
                    Routing.skipped(server, timed_out=True)
                self.checks.wake()
                continue
            except psycopg.Error:  # pool closed under us (marked down meanwhile)
                with self._lock:
                    Routing.skipped(server, timed_out=False)
                continue
            if taken is None:
                continue
            conn, pool = taken
            if required and required > server.replay_lsn:
                try:
                    row = conn.execute(REPLAY_LSN).fetchone()
                    replayed = int(row[0]) if row else 0
                except psycopg.Error as exc:
                    self._give_back(server, conn, pool)
                    self._mark_down(server, f"failed ({type(exc).__name__})")
                    continue
                with self._lock:
                    ready = self.routing.caught_up(server, replayed, required)
                if not ready:
                    self._give_back(server, conn, pool)
                    reason = "read_your_writes"
                    continue
            return server, conn, pool, None
        conn, pool = self._take_primary()
        return self.primary, conn, pool, reason

    @contextmanager
    def connection(self, ctx: ExecutionContext, *, write: bool) -> Iterator[Conn]:
        """A primary connection (``write``), or a read connection (a replica's in a read-only scope).

        Raises ``psycopg_pool.PoolTimeout`` when no server can give a connection in time (use
        :meth:`read` / :meth:`write` for a Result instead).
        """
        reuse = self._reusable(write)
        if reuse is not None:
            yield reuse.conn
            return
        key = self._key(ctx)
        if write:
            conn, pool = self._take_primary()
            co = _Checkout(self, self.primary, conn, ctx, key, True, threading.get_ident())
            with self._lock:
                self.primary.counters["writes"] += 1
            try:
                with pushed(_ACTIVE, co):
                    yield conn
            finally:
                try:
                    if co.dirty:
                        self._finish_write(co)
                finally:
                    self._give_back(self.primary, conn, pool)
            return
        server, conn, pool, reason = self._acquire_read(key, set())
        self._count_read(server, reason)
        co = _Checkout(self, server, conn, ctx, key, False, threading.get_ident())
        try:
            with pushed(_ACTIVE, co):
                if server is self.primary:
                    yield conn
                else:
                    with unit_of_work(conn, ctx, read_only=True):
                        yield conn
        finally:
            lost = server.role == "replica" and (conn.closed or conn.broken)
            self._give_back(server, conn, pool)
            if lost:
                self._mark_down(server, "connection lost")

    def _count_read(self, server: Server, reason: str | None) -> None:
        with self._lock:
            self.routing.count_read(server, reason)

    def read(
        self,
        ctx: ExecutionContext,
        fn: Callable[Concatenate[Conn, ExecutionContext, P], Result[T, DataError]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Result[T, DataError]:
        """Run ``fn(conn, ctx, *args)`` on a read connection; re-run elsewhere if a replica fails."""
        reuse = self._reusable(False)
        if reuse is not None:
            return fn(reuse.conn, ctx, *args, **kwargs)
        key = self._key(ctx)
        exclude: set[str] = set()
        while True:
            try:
                server, conn, pool, reason = self._acquire_read(key, exclude)
            except psycopg.Error:  # PoolTimeout on the primary included
                with self._lock:
                    return self.routing.unavailable("no database server could serve the read")
            co = _Checkout(self, server, conn, ctx, key, False, threading.get_ident())

            def body(c: Conn = conn) -> Result[T, DataError]:
                return fn(c, ctx, *args, **kwargs)

            try:
                with pushed(_ACTIVE, co):
                    if server is self.primary:
                        result = _call(body)
                    else:
                        result = run_in_scope(conn, ctx, body, read_only=True)
            finally:
                broken = conn.closed or conn.broken
                self._give_back(server, conn, pool)
            with self._lock:
                retry = self.routing.settle_read(server, result, broken, exclude, reason)
            if not retry:
                return result
            self._mark_down(server, "failed under a read")

    def write(
        self,
        ctx: ExecutionContext,
        fn: Callable[Concatenate[Conn, ExecutionContext, P], Result[T, DataError]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Result[T, DataError]:
        """Run ``fn(conn, ctx, *args)`` on a primary connection (its own transactions, if any)."""
        try:
            with self.connection(ctx, write=True) as conn:
                return fn(conn, ctx, *args, **kwargs)
        except psycopg.OperationalError:  # PoolTimeout / PoolClosed included
            with self._lock:
                return self.routing.unavailable("primary unreachable or pool exhausted")

    # --- metrics ------------------------------------------------------------------------------

    def health(self) -> RouterHealth:
        """Pool statistics (psycopg_pool ``get_stats()``), states, lag and routing counters."""
        lane = lane_health()
        with self._lock:
            return self.routing.health(lane)
