"""The second audit lane: records that must survive a rollback, on a bounded shared pool.

Lane 1 is the caller's connection and transaction (a change and its record commit or vanish
together). Lane 2 is for what must be kept whatever happens to that transaction: failed and denied
operations, disclosures made in a read-only unit of work (which cannot INSERT), and disclosures
made inside a unit of work that later rolls back.

Lane 2 is one psycopg_pool pool per target server and connection options, shared by every thread
of the process: at most ``AUDIT_LANE_POOL_MAX`` connections, a checkout waits at most
``AUDIT_LANE_TIMEOUT`` seconds. Its connections are built like the main pool's
(:func:`wxdata.db.conninfo` with ``application_name=wxdata-audit-lane2``, the keyword arguments of
:func:`wxdata.db.side_connect_kwargs`: no named statement behind any pooler), autocommit, so each
record commits on its own. A pool made by
:func:`wxdata.db.create_pool` owns the lane pools its connections use and closes them when it is
closed (a lane pool shared by several open pools stays until the last one closes);
:func:`close_lanes` closes every lane pool. The lane target of a connection is kept on the
connection; :func:`route_lane` points it elsewhere (a replica's records go to its primary).

:func:`write_detached` answers whether the record was committed. Callers that disclose data treat
False as "no record, no data" (``Failure(Unavailable)``); callers recording a failure or a denial
return their own Failure regardless. Every record not written is counted (:func:`lane_health`) and
logged with its action and entity type only.
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any

import attrs
import psycopg
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from wxdata.audit.ownership import note_detached
from wxdata.audit.record import AuditRecord
from wxdata.audit.sql import record_insert
from wxdata.config import Settings, settings
from wxdata.context import ExecutionContext
from wxdata.db import (
    LANE_APPLICATION_NAME,
    ReturningPool,
    check_if_idle,
    mark_returned,
    side_connect_kwargs,
)
from wxdata.pool_metrics import LaneHealth, pool_stats
from wxdata.safelog import describe

log = logging.getLogger("wxdata.audit")

Conn = psycopg.Connection[Any]
_ROUTE = "_wxdata_lane_route"  # the connection's lane target, kept on the connection itself


@attrs.frozen(slots=True)
class LaneTarget:
    """Where and how lane-2 connections are opened: one lane pool per distinct target."""

    conninfo: str = attrs.field(repr=False)  # may hold a password
    max_size: int = attrs.field(validator=attrs.validators.ge(1))
    timeout: float = attrs.field(validator=attrs.validators.gt(0.0))
    kwargs: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, conninfo: str, config: Settings | None = None) -> LaneTarget:
        """A target reaching ``conninfo``, sized and timed by ``config`` (default: settings)."""
        config = config or settings()
        return cls(conninfo, config.audit_lane_pool_max, config.audit_lane_timeout,
                   tuple(sorted(side_connect_kwargs(config).items())))


@attrs.define(slots=True, eq=False)
class LaneOwner:
    """The lane pools a main pool's connections used; :meth:`close` releases them."""

    targets: set[LaneTarget] = attrs.field(factory=set)
    closed: bool = False

    def close(self) -> None:
        """Release this owner's lane pools; close those no other open owner still uses."""
        doomed: list[ConnectionPool[Conn]] = []
        with _lock:
            self.closed = True
            for target in self.targets:
                lane = _LANES.get(target)
                if lane is None:
                    continue
                lane.owners.discard(self)
                if not lane.owners and not lane.unowned:
                    del _LANES[target]
                    doomed.append(lane.pool)
            self.targets.clear()
        for pool in doomed:
            pool.close()


@attrs.frozen(slots=True)
class _Route:
    target: LaneTarget
    owner: LaneOwner | None


@attrs.define(slots=True, eq=False)
class _Lane:
    pool: ConnectionPool[Conn]
    owners: set[LaneOwner] = attrs.field(factory=set)
    unowned: bool = False  # used by a connection no pool owns: only close_lanes() closes it


@attrs.define(slots=True)
class _Counters:
    written: int = 0
    lost: int = 0
    disclosures_refused: int = 0
    failure_records_lost: int = 0


_lock = threading.Lock()
_LANES: dict[LaneTarget, _Lane] = {}
_counters = _Counters()
_names = itertools.count(1)


def set_route(conn: Conn, target: LaneTarget, owner: LaneOwner | None) -> None:
    """Send ``conn``'s lane-2 records to ``target``, in lane pools released by ``owner``."""
    conn.__dict__[_ROUTE] = _Route(target, owner)


def route_lane(conn: Conn, conninfo: str, owner: LaneOwner | None = None) -> None:
    """Send lane-2 records of ``conn`` to ``conninfo`` (a replica's primary; a standby takes no INSERT).

    Sizing, timeout and connection options stay those of the connection's route. ``owner`` (the
    primary pool's): the lane pool is kept while it is open, whatever becomes of ``conn``'s own
    pool, so a read still in flight on a replica taken out of rotation records its disclosure;
    without it the connection's own pool owns the lane.
    """
    current = _route(conn)
    if current is None:
        set_route(conn, LaneTarget.of(conninfo), owner)
        return
    set_route(conn, attrs.evolve(current.target, conninfo=conninfo),
              owner if owner is not None else current.owner)


def lane_conninfo(conn: Conn) -> str:
    """Conninfo reaching the same server and database as ``conn`` (password included)."""
    info = conn.info
    parameters = {k: v for k, v in info.get_parameters().items() if v}
    if info.password:
        parameters["password"] = info.password
    parameters["application_name"] = LANE_APPLICATION_NAME
    return make_conninfo("", **parameters)


def _route(conn: Conn) -> _Route | None:
    known = conn.__dict__.get(_ROUTE)
    if isinstance(known, _Route):
        return known
    try:  # a connection wxdata did not open: the lane reaches its server, owned by no pool
        route = _Route(LaneTarget.of(lane_conninfo(conn)), None)
    except (psycopg.Error, ValueError):
        return None
    conn.__dict__[_ROUTE] = route
    return route


def _open(target: LaneTarget) -> ConnectionPool[Conn]:
    return ReturningPool(
        target.conninfo,
        min_size=0,
        max_size=target.max_size,
        timeout=target.timeout,
        name=f"wxdata-audit-lane2-{next(_names)}",
        kwargs={"autocommit": True, **dict(target.kwargs)},
        check=check_if_idle,
        on_return=mark_returned,
        num_workers=1,  # records are short INSERTs: one thread opens connections for the pool
        max_idle=60.0,
        open=True,
    )


def _pool(route: _Route) -> ConnectionPool[Conn] | None:
    """The shared lane pool of ``route`` (opened on first use).

    Once the route's owner closed, a connection still out of its pool (a read in flight on a
    replica taken out of rotation) may use the lane pool while another open pool keeps it; None
    when none does (a closed owner never opens or keeps a lane pool).
    """
    with _lock:
        owner = route.owner
        if owner is not None and owner.closed:
            kept = _LANES.get(route.target)
            return kept.pool if kept is not None else None
        lane = _LANES.get(route.target)
        if lane is None:
            lane = _Lane(_open(route.target))
            _LANES[route.target] = lane
        if owner is None:
            lane.unowned = True
        elif owner not in lane.owners:
            lane.owners.add(owner)
            owner.targets.add(route.target)
        return lane.pool


def _lost(record: AuditRecord, reason: str) -> bool:
    with _lock:
        _counters.lost += 1
        if record.success:
            _counters.disclosures_refused += 1
        else:
            _counters.failure_records_lost += 1
    log.error("audit lane 2 record not written (action %s, entity %s): %s",
              record.action.value, record.entity_type, reason)
    return False


def write_detached(origin: Conn, ctx: ExecutionContext, record: AuditRecord) -> bool:
    """Insert ``record`` on lane 2 (committed at once); False, logged and counted, if impossible.

    Usable from any state of ``origin`` (aborted, rolled back, closed): only its lane route is
    read. A lost connection is retried once on a fresh one; a pool timeout is not retried.
    """
    route = _route(origin)
    if route is None:
        return _lost(record, "no lane target")
    pool = _pool(route)
    if pool is None:
        return _lost(record, "pool closed")
    for attempt in (1, 2):
        try:
            with pool.connection(timeout=route.target.timeout) as lane:
                lane.execute(*record_insert(ctx, record))
        except (PoolTimeout, PoolClosed) as exc:
            return _lost(record, describe(exc))
        except psycopg.OperationalError as exc:
            if attempt == 2:
                return _lost(record, describe(exc))
            continue  # the pool discarded the broken connection: once more on a fresh one
        except psycopg.Error as exc:
            return _lost(record, describe(exc))
        with _lock:
            _counters.written += 1
        note_detached()
        return True
    return _lost(record, "unreachable")  # pragma: no cover - the loop always returns


def close_lanes() -> None:
    """Close every lane-2 pool of the process (the next record opens a fresh one)."""
    with _lock:
        lanes = list(_LANES.values())
        _LANES.clear()
        for lane in lanes:
            for owner in lane.owners:
                owner.targets.clear()
    for lane in lanes:
        lane.pool.close()


def lane_health() -> LaneHealth:
    """Lane-2 counters since start-up and the figures of every open lane pool."""
    with _lock:
        pools = [lane.pool for lane in _LANES.values()]
        counters = attrs.evolve(_counters)
    return LaneHealth(
        written=counters.written,
        lost=counters.lost,
        disclosures_refused=counters.disclosures_refused,
        failure_records_lost=counters.failure_records_lost,
        pools=tuple(pool_stats(p, p.name, "audit-lane2") for p in pools),
    )
