"""Health checks of the sync router: probe connections, the monitor thread, taking replicas down.

A monitor thread (or, without one, a background round started by the first read that finds a
check due; or :meth:`HealthChecker.check_all`) probes every server on a dedicated connection; what
an answer means is :class:`~wxdata.replicas.servers.Routing`'s. A replica found unreachable, not a
standby, or failed in the request path is taken down at once: its pool is closed in the background
and it is re-probed with exponential backoff; when it answers again a fresh pool is opened.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import psycopg
from psycopg_pool import ConnectionPool

from wxdata.config import Settings
from wxdata.db import conninfo, side_connect_kwargs
from wxdata.pool_metrics import retire_counters
from wxdata.replicas.config import RouterConfig
from wxdata.replicas.servers import DOWN, STATUS_PRIMARY, STATUS_REPLICA, UP, Routing, Server
from wxdata.safelog import log_error

log = logging.getLogger("wxdata.replicas")

Conn = psycopg.Connection[Any]

__all__ = ["HealthChecker"]


@attrs.define(slots=True, eq=False)
class HealthChecker:
    """Probes a router's servers and applies the answers to its routing state (under its lock)."""

    config: RouterConfig
    settings: Settings = attrs.field(repr=False)
    routing: Routing
    lock: threading.Lock
    make_pool: Callable[[Server], ConnectionPool[Conn]]
    closed: bool = False
    _check_lock: threading.RLock = attrs.field(factory=threading.RLock, init=False)
    _stop: threading.Event = attrs.field(factory=threading.Event, init=False)
    _wake: threading.Event = attrs.field(factory=threading.Event, init=False)
    _monitor: threading.Thread | None = attrs.field(default=None, init=False)
    _lazy: bool = attrs.field(default=False, init=False)

    # --- running the checks -------------------------------------------------------------------

    def start(self) -> None:
        """Start the background monitor thread (idempotent)."""
        if self._monitor is not None and self._monitor.is_alive():
            return
        self._stop.clear()
        self._monitor = threading.Thread(target=self._loop, name="wxdata-replica-monitor",
                                         daemon=True)
        self._monitor.start()

    def wake(self) -> None:
        """Let the monitor look now (a replica looked busy or dead in the request path)."""
        self._wake.set()

    def check_lazily(self) -> None:
        """Without a monitor: when a replica's check is due, run one round in the background."""
        replicas = self.routing.replicas
        if self._monitor is not None or not replicas:
            return
        now = time.monotonic()
        with self.lock:
            if self._lazy or self.closed or all(s.next_check > now for s in replicas):
                return
            self._lazy = True

        def round_() -> None:
            try:
                self.check_due()
            except Exception as exc:  # noqa: BLE001 - logged PHI-safely; a failed round must not kill the caller's read
                log_error(log, "lazy replica check failed", exc)
            finally:
                with self.lock:
                    self._lazy = False

        threading.Thread(target=round_, name="wxdata-replica-check", daemon=True).start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_due()
            except Exception as exc:  # noqa: BLE001 - logged PHI-safely; the monitor must outlive any one failed round
                log_error(log, "replica monitor round failed", exc)
            now = time.monotonic()
            with self.lock:
                due = min([s.next_check for s in self.routing.replicas]
                          or [now + self.config.check_interval])
            self._wake.wait(timeout=min(max(due - now, 0.01), self.config.check_interval))
            self._wake.clear()

    def stop(self) -> None:
        """Stop the monitor and wait for a check in progress (the probes are the router's to close)."""
        self.closed = True
        self._stop.set()
        self._wake.set()
        if self._monitor is not None:
            self._monitor.join(timeout=10)
        with self._check_lock:  # no check left running on a probe about to be closed
            pass

    def check_all(self) -> None:
        """Probe the primary and every replica now (synchronously)."""
        with self._check_lock:
            if not self.closed:
                self._check_primary()
                for server in self.routing.replicas:
                    self._check_replica(server, force=True)

    def check_due(self) -> None:
        """Probe the servers whose check is due (what the monitor runs each round)."""
        with self._check_lock:
            if self.closed:
                return
            if time.monotonic() - self.routing.primary_lsn_at >= self.config.check_interval:
                self._check_primary()
            for server in self.routing.replicas:
                self._check_replica(server)

    # --- one server ---------------------------------------------------------------------------

    def _probe(self, server: Server) -> Conn:
        probe: Conn | None = server.probe
        if probe is None or probe.closed or probe.broken:
            if probe is not None:
                probe.close()
            probe = psycopg.connect(
                conninfo(server.url, self.settings, application_name="wxdata-health",
                         connect_timeout=self.config.connect_timeout),
                autocommit=True, **side_connect_kwargs(self.settings),
            )
            server.probe = probe
        return probe

    def _drop_probe(self, server: Server) -> None:
        probe, server.probe = server.probe, None
        if probe is not None:
            probe.close()

    def _check_primary(self) -> None:
        server = self.routing.primary
        try:
            row = self._probe(server).execute(STATUS_PRIMARY).fetchone()
        except psycopg.Error as exc:
            self._drop_probe(server)
            with self.lock:
                if self.routing.primary_unreachable():
                    log.error("primary unreachable (%s, sqlstate %s)", type(exc).__name__,
                              exc.sqlstate or "-")
            return
        if row is None:  # a status query always returns a row; none: treat as no answer
            return
        with self.lock:
            self.routing.primary_status(row, time.monotonic())

    def _check_replica(self, server: Server, *, force: bool = False) -> None:
        """Probe one replica if due (checks run one at a time, under the check lock)."""
        with self._check_lock:
            if self.closed or (not force and server.next_check > time.monotonic()):
                return
            self._do_check_replica(server)

    def _do_check_replica(self, server: Server) -> None:
        if self.routing.primary_stale(time.monotonic()):
            self._check_primary()
        try:
            row = self._probe(server).execute(STATUS_REPLICA).fetchone()
        except psycopg.Error as exc:
            self._drop_probe(server)
            self.mark_down(server, f"unreachable ({type(exc).__name__})")
            return
        if row is None:
            self.mark_down(server, "no status")
            return
        with self.lock:
            verdict = self.routing.replica_status(server, row, time.monotonic())
        if verdict.down is not None:
            self.mark_down(server, verdict.down)
            return
        if verdict.changed:
            log.log(logging.INFO if verdict.new == UP else logging.WARNING, "replica %s: %s -> %s%s",
                    server.name, verdict.old, verdict.new,
                    f" ({server.reason})" if server.reason else "")
        if verdict.open_pool:
            pool: ConnectionPool[Conn] | None = self.make_pool(server)
            with self.lock:
                if server.pool is None and not self.closed:
                    server.pool, pool = pool, None
            if pool is not None:
                pool.close()

    def mark_down(self, server: Server, reason: str) -> None:
        """Take a replica out of rotation now; close its pool; schedule a re-probe with backoff."""
        with self.lock:
            was, pool = self.routing.take_down(server, reason, time.monotonic())
            if pool is not None:
                server.retired.update(retire_counters(pool))
        if was != DOWN:
            log.warning("replica %s down: %s; retry in %.2f s", server.name, reason, server.backoff)
        if pool is not None:  # closing joins the pool's workers: not in the caller's request
            threading.Thread(target=pool.close, kwargs={"timeout": 5.0}, daemon=True,
                             name=f"wxdata-close-{server.name}").start()
        self._wake.set()
