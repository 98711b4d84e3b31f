"""The second audit lane: records that must survive a rollback, on their own autocommit connection.

Lane 1 is the caller's connection and transaction (a change and its record commit or vanish
together). Lane 2 is for what must be kept whatever happens to that transaction: failed and denied
operations, and disclosures (reads) made inside a unit of work that later rolls back. It uses one
autocommit connection per thread and server, opened with the caller connection's parameters.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from wxdata.audit.ownership import note_detached
from wxdata.audit.record import AuditRecord, insert_sql, params
from wxdata.context import ExecutionContext

log = logging.getLogger("wxdata.audit")

_local = threading.local()
_stats_lock = threading.Lock()
lane2_failures = [0]


_CONNINFO: weakref.WeakKeyDictionary[psycopg.Connection[Any], str] = weakref.WeakKeyDictionary()


def lane_conninfo(conn: psycopg.Connection[Any]) -> str:
    """Conninfo reaching the same server and database as ``conn`` (password included)."""
    known = _CONNINFO.get(conn)
    if known is not None:
        return known
    info = conn.info
    parameters = {k: v for k, v in info.get_parameters().items() if v}
    if info.password:
        parameters["password"] = info.password
    parameters["application_name"] = "wxdata-audit-lane2"
    known = make_conninfo("", **parameters)
    _CONNINFO[conn] = known
    return known


def route_lane(conn: psycopg.Connection[Any], conninfo: str) -> None:
    """Send lane-2 records of ``conn`` to ``conninfo`` (a replica's primary; a standby takes no INSERT)."""
    _CONNINFO[conn] = conninfo


def _lane(conninfo: str) -> psycopg.Connection[Any]:
    lanes: dict[str, psycopg.Connection[Any]] = getattr(_local, "lanes", None) or {}
    _local.lanes = lanes
    conn = lanes.get(conninfo)
    if conn is None or conn.closed or conn.broken:
        conn = psycopg.connect(conninfo, autocommit=True)
        lanes[conninfo] = conn
    return conn


def write_detached(
    origin: psycopg.Connection[Any], ctx: ExecutionContext, record: AuditRecord
) -> bool:
    """Insert ``record`` on lane 2 (committed at once); False, logged and counted, if impossible.

    Usable from any state of ``origin`` (aborted, rolled back, closed): only its parameters are read.
    """
    try:
        conninfo = lane_conninfo(origin)
    except (psycopg.Error, ValueError):
        conninfo = ""
    for attempt in (1, 2):
        if not conninfo:
            break
        try:
            _lane(conninfo).execute(insert_sql(), params(ctx, record), prepare=True)
            note_detached()
            return True
        except psycopg.OperationalError:
            if attempt == 2:
                break
            lanes = getattr(_local, "lanes", {})
            stale = lanes.pop(conninfo, None)
            if stale is not None:
                stale.close()
        except psycopg.Error as exc:
            log.error("audit lane 2 insert failed (sqlstate %s)", exc.sqlstate)
            break
    with _stats_lock:
        lane2_failures[0] += 1
    log.error("audit lane 2 record lost for action %s on %s", record.action, record.entity_type)
    return False


def close_lanes() -> None:
    """Close this thread's lane-2 connections."""
    for conn in getattr(_local, "lanes", {}).values():
        conn.close()
    _local.lanes = {}
