"""Connections: conninfo from settings, single connections and pools.

All connections wxdata hands out are in autocommit mode: a single statement commits on its own (a
write and its riding audit record in one round trip), and units of work issue BEGIN/COMMIT
explicitly. Per-request context is applied per transaction, never per session.

Direct to PostgreSQL (``DB_POOLER=none``) the statement and idle-in-transaction timeouts are
startup ``options`` and hot statements are server-side prepared. Behind a transaction pooler
(``DB_POOLER=transaction``, e.g. PgBouncer ``pool_mode=transaction``) a client connection's
transactions may run on different server connections, so nothing may live in the session: no
startup ``options`` (PgBouncer refuses them), no named prepared statements
(:func:`connect_kwargs` sets ``prepare_threshold=None`` on every connection), and the timeouts
ride each transaction's context statement (:func:`wxdata.tx.scope.context_statement`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from wxdata.config import Settings, settings
from wxdata.embedded import (  # the embedded server; these names stay importable from here
    EMBEDDED_APP_ROLE as EMBEDDED_APP_ROLE,
)
from wxdata.embedded import embedded_app_url as embedded_app_url
from wxdata.embedded import embedded_url as embedded_url
from wxdata.observability import QueryLog, TracedConnection, attach
from wxdata.safelog import guard_library_loggers
from wxdata.tx.scope import bypasses_row_security, check_connection

log = logging.getLogger("wxdata.db")
guard_library_loggers()  # psycopg's own warnings may quote an error's DETAIL: keep it out of logs

#: ``application_name`` of audit lane-2 connections (tells them apart in ``pg_stat_activity``).
LANE_APPLICATION_NAME = "wxdata-audit-lane2"


def connect_kwargs(config: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments (beyond the conninfo and ``autocommit=True``) of every connection wxdata
    opens: single connections, the main pool, the replica router's pools and probes, audit lane 2.

    Direct, or behind a pooler that keeps prepared statements (``DB_POOLER=transaction-prepared``):
    none (psycopg's defaults, prepared statements included). Behind a transaction pooler that does
    not (``DB_POOLER=transaction``): ``prepare_threshold=None``, which psycopg checks before any
    per-statement ``prepare=True``, so no statement is ever named (a name could be missing on the
    next server connection or, worse, be another client's statement there).
    """
    config = config or settings()
    kwargs: dict[str, Any] = {}
    if not config.prepare:
        kwargs["prepare_threshold"] = None
    return kwargs


def side_connect_kwargs(config: Settings | None = None) -> dict[str, Any]:
    """:func:`connect_kwargs` for wxdata's side connections (audit lane 2, the replica router's
    health probes): behind any transaction pooler they name no statement. They are few, their
    statements are short or of many shapes, and they are not the connections whose first use
    proves that a pooler keeps prepared statements (``DB_POOLER=transaction-prepared``).
    """
    config = config or settings()
    kwargs = connect_kwargs(config)
    if config.transaction_pooled:
        kwargs["prepare_threshold"] = None
    return kwargs


def conninfo(
    url: str | None = None, config: Settings | None = None, *, owner: bool = False,
    **overrides: Any,
) -> str:
    """The libpq conninfo for ``url`` plus options.

    Default: ``DATABASE_URL`` (the application role), or with ``owner=True`` the migration role
    (``WXDATA_MIGRATION_URL``, else ``DATABASE_URL``); with nothing configured, the embedded
    server (its application role, or its superuser for ``owner=True``).

    The timeouts become startup ``options`` only direct to PostgreSQL; behind a transaction
    pooler they are applied per transaction instead.
    """
    config = config or settings()
    if owner:
        base = url or config.owner_url or embedded_url()
    else:
        base = url or config.database_url or embedded_app_url()
    params: dict[str, Any] = {"application_name": config.application_name}
    options = []
    session = not config.transaction_pooled  # session settings survive only without a pooler
    if session and config.statement_timeout_ms:
        options.append(f"-c statement_timeout={config.statement_timeout_ms}")
    if session and config.idle_in_transaction_timeout_ms:
        options.append(
            f"-c idle_in_transaction_session_timeout={config.idle_in_transaction_timeout_ms}"
        )
    existing = conninfo_to_dict(base)
    if options and "options" not in existing:
        params["options"] = " ".join(options)
    if config.sslmode and "sslmode" not in existing:
        params["sslmode"] = config.sslmode
    if config.sslrootcert and "sslrootcert" not in existing:
        params["sslrootcert"] = config.sslrootcert
    params.update(overrides)
    return make_conninfo(base, **params)


def _query_log(config: Settings) -> QueryLog | None:
    """The query-log policy from ``DB_SLOW_QUERY_MS`` (None when unset: no tracing at all)."""
    if config.slow_query_ms is None:
        return None
    return QueryLog(slow_ms=float(config.slow_query_ms))


_UNSET: Any = object()


def connection_options(config: Settings, prepare_threshold: int | None = _UNSET) -> dict[str, Any]:
    """The keyword arguments of a single connection (sync or async): autocommit, those of
    :func:`connect_kwargs`, and ``prepare_threshold`` when given explicitly.

    Pure. Raises :class:`ValueError` for a ``prepare_threshold`` other than None behind a
    transaction pooler that does not keep prepared statements (it would name statements the pooler
    cannot keep).
    """
    kwargs: dict[str, Any] = {"autocommit": True, **connect_kwargs(config)}
    if prepare_threshold is not _UNSET:
        if prepare_threshold is not None and not config.prepare:
            raise ValueError(
                "prepare_threshold must be None behind a transaction pooler (DB_POOLER=transaction)"
            )
        kwargs["prepare_threshold"] = prepare_threshold
    return kwargs


def connect(
    url: str | None = None, *, owner: bool = False, config: Settings | None = None,
    prepare_threshold: int | None = _UNSET, **overrides: Any,
) -> psycopg.Connection[Any]:
    """Open one autocommit connection (use it as a context manager).

    The application role by default; ``owner=True`` for the migration role. An application
    connection whose role bypasses row-level security is logged at WARNING (and its non-SYSTEM
    contexts are refused unless ``WXDATA_ALLOW_PRIVILEGED_CONNECTION``). ``overrides`` are libpq
    parameters (``connect_timeout=5``...). ``prepare_threshold`` is psycopg's: given explicitly it
    replaces the mode's default, except that a transaction pooler admits only None (a
    :class:`ValueError`, not a silently prepared statement).
    """
    config = config or settings()
    kwargs = connection_options(config, prepare_threshold)
    policy = _query_log(config)
    info = conninfo(url, config, owner=owner, **overrides)
    conn: psycopg.Connection[Any]
    if policy is None:
        conn = psycopg.connect(info, **kwargs)
    else:
        conn = TracedConnection.connect(info, **kwargs)
        attach(conn, policy)
    if not owner:
        try:
            check_connection(conn, config)
        except BaseException:
            conn.close()
            raise
    return conn


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.autocommit = True


_RETURNED = "_wxdata_returned_at"  # kept on the connection: it lives and dies with it
IDLE_CHECK_AFTER = 1.0  # seconds a pooled connection may sit unused before a checkout pings it


def mark_returned(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    """Note when a connection went back to its pool (read by :func:`needs_ping`)."""
    conn.__dict__[_RETURNED] = time.monotonic()


def needs_ping(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether a checkout must ping ``conn``: it is new, or idle longer than ``IDLE_CHECK_AFTER``.

    A connection handed back a moment ago is known good; pinging it on every checkout would add
    a round trip to every pooled call. Both pools (sync and async) decide with this function.
    """
    returned = conn.__dict__.get(_RETURNED)
    return returned is None or time.monotonic() - returned > IDLE_CHECK_AFTER


def must_roll_back(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether a connection handed back to its pool is inside a transaction (no transaction may
    survive a checkout: both pools roll it back). Pure: reads the client's status, no I/O."""
    return conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE


def _reset(conn: psycopg.Connection[Any]) -> None:
    """On return to the pool: no transaction may survive a checkout."""
    if must_roll_back(conn):
        log.warning("connection returned to the pool inside a transaction: rolled back")
        conn.rollback()
        conn.autocommit = True
    mark_returned(conn)


def check_if_idle(conn: psycopg.Connection[Any]) -> None:
    """Checkout check that pings only the connections :func:`needs_ping` names."""
    if needs_ping(conn):
        ConnectionPool.check_connection(conn)


class ReturningPool(ConnectionPool[psycopg.Connection[Any]]):
    """A psycopg_pool pool whose returned connections are reset in the returning thread.

    psycopg_pool hands a returned connection to a background task when a ``reset`` callback is
    set, and a task that runs after :meth:`close` is dropped without closing its connection: a
    connection handed back just before ``close()`` stayed open on the server. Here ``on_return``
    runs in :meth:`putconn` itself and the connection goes back (or, the pool being closed, is
    closed) before ``putconn`` returns. A connection whose reset fails is closed and replaced.
    """

    def __init__(
        self, *args: Any,
        on_return: Callable[[psycopg.Connection[Any]], None] | None = None, **kwargs: Any,
    ) -> None:
        self._on_return = on_return
        super().__init__(*args, **kwargs)

    def putconn(self, conn: psycopg.Connection[Any]) -> None:
        """Reset ``conn`` here, then return it to the pool (closed if the pool is)."""
        if self._on_return is not None and not (conn.closed or conn.broken or self.closed):
            try:
                self._on_return(conn)
            except psycopg.Error:
                conn.close()  # psycopg_pool counts it as returned bad and opens a new one
        super().putconn(conn)


class Pool(ReturningPool):
    """A wxdata pool that also owns the audit lane-2 pools its connections write to.

    Closing it closes them (once no other open pool shares them): no lane connection outlives
    the pool whose work it recorded.
    """

    def __init__(self, *args: Any, lane: Any = None, **kwargs: Any) -> None:
        self.lane = lane  # the lane-2 owner (wxdata.audit.lanes.LaneOwner); set before opening
        super().__init__(*args, **kwargs)

    def close(self, timeout: float = 5.0) -> None:
        """Close the pool's connections, then the lane-2 pools only it was using."""
        try:
            super().close(timeout)
        finally:
            if self.lane is not None:
                self.lane.close()


def pool_options(
    url: str | None, config: Settings, min_size: int | None, max_size: int | None, name: str,
) -> dict[str, Any]:
    """The psycopg_pool arguments every wxdata pool (sync or async) is built with: the conninfo,
    the sizes (``DB_POOL_MIN``/``DB_POOL_MAX`` unless given), the name and the connections'
    keyword arguments (autocommit and :func:`connect_kwargs`). Pure."""
    return {
        "conninfo": conninfo(url, config),
        "min_size": config.pool_min if min_size is None else min_size,
        "max_size": config.pool_max if max_size is None else max_size,
        "name": name,
        "kwargs": {"autocommit": True, **connect_kwargs(config)},
    }


def create_pool(
    url: str | None = None, *, min_size: int | None = None, max_size: int | None = None,
    name: str = "wxdata", open: bool = True,
    check: Callable[[psycopg.Connection[Any]], None] | None = check_if_idle,
    configure: Callable[[psycopg.Connection[Any]], None] | None = None,
    query_log: QueryLog | None = None, config: Settings | None = None, **kwargs: Any,
) -> Pool:
    """A psycopg_pool pool of autocommit connections, checked on checkout, reset on return.

    ``check`` replaces the checkout check (None: none), ``configure`` runs on each new connection
    after wxdata's own set-up, ``query_log`` (default: from ``DB_SLOW_QUERY_MS``) traces every
    statement PHI-safely (:mod:`wxdata.observability`). Each connection's audit lane 2 is a
    bounded pool shared by the whole process (:mod:`wxdata.audit.lanes`), closed with this pool.
    """
    from wxdata.audit.lanes import LaneOwner, LaneTarget, set_route  # lanes build on db

    config = config or settings()
    policy = query_log if query_log is not None else _query_log(config)
    owner = LaneOwner()
    target = LaneTarget.of(conninfo(url, config, application_name=LANE_APPLICATION_NAME), config)

    def setup(conn: psycopg.Connection[Any]) -> None:
        _configure(conn)
        set_route(conn, target, owner)
        check_connection(conn, config)
        if policy is not None:
            attach(conn, policy)
        if configure is not None:
            configure(conn)

    if policy is not None:
        kwargs.setdefault("connection_class", TracedConnection)
    return Pool(
        configure=setup, on_return=_reset, check=check, open=open, lane=owner,
        **pool_options(url, config, min_size, max_size, name), **kwargs,
    )


def bypasses_row_security_role(conn: psycopg.Connection[Any]) -> bool:
    """Whether the session role bypasses row-level security (superuser, BYPASSRLS, table owner)."""
    return bypasses_row_security(conn)


def warn_if_privileged(conn: psycopg.Connection[Any]) -> bool:
    """Log a WARNING when connected as a role that bypasses row-level security; True if so."""
    return check_connection(conn)
