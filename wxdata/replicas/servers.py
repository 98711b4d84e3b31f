"""One server as a router sees it, the status queries, and the pure rules over them.

Shared by the sync and the async router: the state record (:class:`Server`), what a status row
means (:func:`assess_replica`, :func:`assess_primary`), taking a replica out of rotation with
exponential backoff (:func:`take_down`), the order replicas are tried in (:func:`eligible`) and
the health snapshot (:func:`server_health`, :meth:`Routing.health`), the checkout accounting
(:meth:`Routing.taken`, :meth:`Routing.given_back`, :meth:`Routing.skipped`), what a read's outcome
means (:meth:`Routing.settle_read`), and the fields both routers are made of (:class:`RouterState`,
:func:`router_fields`). Nothing here does I/O or locks: the routers hold their lock around every
call and run the queries themselves.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
from returns.result import Failure, Result

from wxdata.config import Settings
from wxdata.context import ExecutionContext
from wxdata.errors import DataError, Unavailable
from wxdata.pool_metrics import (
    LaneHealth,
    RouterHealth,
    ServerHealth,
    pool_stats,
    retire_counters,
)
from wxdata.replicas.config import RouterConfig, Strategy, consistency_key
from wxdata.replicas.ledger import Ledger
from wxdata.tx.decorators import UNRECORDED

UP, LAGGING, DOWN = "up", "lagging", "down"

STATUS_PRIMARY = (
    "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN NULL "
    "ELSE (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint END"
)
STATUS_REPLICA = (
    "SELECT pg_is_in_recovery(), "
    "COALESCE((pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint, 0), "
    "COALESCE((pg_last_wal_receive_lsn() - '0/0'::pg_lsn)::bigint, 0), "
    "CASE WHEN pg_last_wal_receive_lsn() IS NULL "
    "OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0 "
    "ELSE COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0) "
    "END::float8"
)
COMMIT_LSN = "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint"
REPLAY_LSN = "SELECT COALESCE((pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint, 0)"


@attrs.define(slots=True, eq=False)
class Server:
    """One server: its pool and probe connection (sync or async), health state and counters."""

    name: str
    role: str
    url: str = attrs.field(repr=False)
    pool: Any = None
    probe: Any = None
    state: str = DOWN
    reason: str = "not checked yet"
    failures: int = 0
    next_check: float = 0.0
    backoff: float = 0.0
    replay_lsn: int = 0
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    in_flight: int = 0
    counters: Counter[str] = attrs.field(factory=Counter)
    retired: Counter[str] = attrs.field(factory=Counter)


def servers(primary_url: str, replica_urls: Sequence[str]) -> tuple[Server, tuple[Server, ...]]:
    """The primary (up until a check says otherwise) and the replicas (down until checked)."""
    return (Server("primary", "primary", primary_url, state=UP, reason=""),
            tuple(Server(f"replica-{i}", "replica", u) for i, u in enumerate(replica_urls, 1)))


@attrs.frozen(slots=True, kw_only=True)
class Assessment:
    """What a replica's status means: take it down (why), a state change to log, a pool to open."""

    down: str | None = None
    old: str = ""
    new: str = ""
    open_pool: bool = False

    @property
    def changed(self) -> bool:
        """Whether the replica's state changed."""
        return self.old != self.new


@attrs.frozen(slots=True, kw_only=True)
class Targets:
    """Where a router connects and how large its pools are (arguments, else settings)."""

    settings: Settings
    primary_url: str = attrs.field(repr=False)
    replica_urls: tuple[str, ...] = attrs.field(repr=False)
    pool_min: int
    pool_max: int
    lane_target: str = attrs.field(repr=False)


def targets(primary_url: str | None, replica_urls: Sequence[str] | None,
            config: Settings | None, min_size: int | None, max_size: int | None) -> Targets:
    """The primary (``DATABASE_URL``, else the embedded server), replicas, pool sizes, lane 2."""
    from wxdata.config import settings as current
    from wxdata.db import conninfo

    s = config or current()
    url = primary_url or s.database_url
    if url is None:
        from wxdata.db import embedded_app_url

        url = embedded_app_url()
    return Targets(
        settings=s, primary_url=url,
        replica_urls=tuple(s.replica_urls if replica_urls is None else replica_urls),
        pool_min=s.pool_min if min_size is None else min_size,
        pool_max=s.pool_max if max_size is None else max_size,
        lane_target=conninfo(url, s, application_name="wxdata-audit-lane2"),
    )


@attrs.define(slots=True, eq=False)
class RouterState:
    """What both routers (sync and async) are made of: the configuration, the servers, the pool
    sizes, audit lane 2's target and the routing state. Build with :func:`router_fields`."""

    config: RouterConfig
    primary: Server
    replicas: tuple[Server, ...]
    settings: Settings = attrs.field(repr=False)
    pool_min: int = 1
    pool_max: int = 10
    lane_target: str = attrs.field(default="", repr=False)
    routing: Routing = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self.routing = Routing.of(self.config, self.primary, self.replicas)

    def _key(self, ctx: ExecutionContext) -> str:
        """The read-your-writes key of ``ctx`` under this router's consistency."""
        return consistency_key(ctx, self.config.consistency)


def router_fields(primary_url: str | None, replica_urls: Sequence[str] | None,
                  config: RouterConfig | None, settings: Settings | None,
                  min_size: int | None, max_size: int | None) -> dict[str, Any]:
    """The fields a router (sync or async) is built with: its configuration (``config``, else
    from settings), its servers (:func:`targets`, :func:`servers`), pool sizes and lane 2."""
    t = targets(primary_url, replica_urls, settings, min_size, max_size)
    primary, replicas = servers(t.primary_url, t.replica_urls)
    return {"config": config or RouterConfig.from_settings(t.settings), "primary": primary,
            "replicas": replicas, "settings": t.settings, "pool_min": t.pool_min,
            "pool_max": t.pool_max, "lane_target": t.lane_target}


@attrs.define(slots=True, eq=False)
class Routing:
    """The routing state of one router: the ledger, the rotation and the fallback counters."""

    config: RouterConfig
    primary: Server
    replicas: tuple[Server, ...]
    ledger: Ledger
    primary_lsn: int | None = None
    primary_lsn_at: float = 0.0
    fallbacks: Counter[str] = attrs.field(factory=Counter)
    _rr: Iterator[int] = attrs.field(factory=itertools.count)

    @classmethod
    def of(cls, config: RouterConfig, primary: Server, replicas: tuple[Server, ...]) -> Routing:
        """A fresh routing state over these servers."""
        return cls(config, primary, replicas, Ledger(config.max_tracked))

    def candidates(self, key: str) -> tuple[list[Server], int | None, str]:
        """Replicas to try in order, the LSN they must have replayed, and the fallback reason."""
        required, why = self.ledger.requirement(key)
        if required is None:
            return [], None, why
        found = []
        for s in self.replicas:
            if s.state == UP and s.pool is not None:
                found.append(s)
            elif s.state == LAGGING:
                s.counters["skip_lagging"] += 1
            else:
                s.counters["skip_unreachable"] += 1
        if len(found) > 1:
            start = next(self._rr)
            n = len(found)
            if self.config.strategy is Strategy.LEAST_LOADED:
                order = sorted(range(n), key=lambda i: (found[i].in_flight, (i - start) % n))
                found = [found[i] for i in order]
            else:
                found = found[start % n:] + found[:start % n]
        return found, required, "no_replica"

    def primary_status(self, row: Sequence[Any], now: float) -> None:
        """Apply the primary's :data:`STATUS_PRIMARY` row (an answer: failures reset)."""
        server = self.primary
        server.failures = 0
        if bool(row[0]):
            server.state, server.reason = LAGGING, "primary is in recovery"
            return
        server.state, server.reason = UP, ""
        self.primary_lsn, self.primary_lsn_at = int(row[1]), now
        self.ledger.resolve(int(row[1]))

    def primary_unreachable(self) -> bool:
        """The primary did not answer its probe; True when it was not already known down."""
        server = self.primary
        server.failures += 1
        server.counters["errors"] += 1
        was_down = server.state == DOWN
        server.state, server.reason = DOWN, "unreachable"
        return not was_down

    def primary_stale(self, now: float) -> bool:
        """Whether the primary's position is too old to measure a replica's lag against."""
        return self.primary_lsn is None or now - self.primary_lsn_at > 2 * max(
            self.config.check_interval, 0.05)

    def replica_status(self, server: Server, row: Sequence[Any], now: float) -> Assessment:
        """Apply a replica's :data:`STATUS_REPLICA` row; what the router must do about it."""
        in_recovery, replay, receive, lag_seconds = bool(row[0]), int(row[1]), int(row[2]), row[3]
        if not in_recovery:
            return Assessment(down="not a standby (promoted or misconfigured)")
        lag_bytes = max((self.primary_lsn if self.primary_lsn is not None else receive) - replay, 0)
        server.replay_lsn = max(server.replay_lsn, replay) if server.state != DOWN else replay
        server.lag_bytes, server.lag_seconds = lag_bytes, float(lag_seconds)
        server.failures, server.backoff = 0, 0.0
        server.next_check = now + self.config.check_interval
        bound = self.config
        if bound.max_lag_bytes is not None and lag_bytes > bound.max_lag_bytes:
            state, reason = LAGGING, "lag over max_lag_bytes"
        elif bound.max_lag_seconds is not None and lag_seconds > bound.max_lag_seconds:
            state, reason = LAGGING, "lag over max_lag_seconds"
        else:
            state, reason = UP, ""
        old = server.state
        server.state, server.reason = state, reason
        self.prune()
        return Assessment(old=old, new=state, open_pool=server.pool is None)

    def take_down(self, server: Server, reason: str, now: float) -> tuple[str, Any]:
        """Out of rotation now, re-probe after an exponential backoff; (old state, pool to close)."""
        was = server.state
        server.failures += 1
        server.counters["errors"] += 1
        server.backoff = min(
            self.config.backoff_max,
            self.config.backoff_initial if server.backoff <= 0 else server.backoff * 2,
        )
        server.next_check = now + server.backoff
        server.state, server.reason = DOWN, reason
        pool, server.pool = server.pool, None
        return was, pool

    def prune(self) -> None:
        """Drop tracked positions every reachable replica has replayed."""
        self.ledger.prune(s.replay_lsn for s in self.replicas if s.state != DOWN)

    def caught_up(self, server: Server, replayed: int, required: int) -> bool:
        """A replica's replay position read at checkout: whether it may serve ``required``."""
        server.replay_lsn = max(server.replay_lsn, replayed)
        if replayed < required:
            server.counters["skip_behind"] += 1
            return False
        return True

    @staticmethod
    def failed_under(server: Server, result: Result[Any, DataError], broken: bool) -> bool:
        """Whether a read's outcome means the replica failed under it (re-run elsewhere).

        A read refused because its disclosure record could not be committed (audit lane 2 down)
        is not the replica's fault: it is answered as is and the replica stays in use.
        """
        if server.role != "replica":
            return False
        match result:
            case Failure(error) if error == UNRECORDED:
                return False
            case Failure(Unavailable()):
                return True
        return broken

    def failed_over(self, server: Server) -> None:
        """Count a read re-run elsewhere because ``server`` failed under it."""
        server.counters["skip_failed"] += 1
        self.fallbacks["replica_failed"] += 1

    def settle_read(self, server: Server, result: Result[Any, DataError], broken: bool,
                    exclude: set[str], reason: str | None) -> bool:
        """Count a read's outcome on ``server``; True: the replica failed under it (it joins
        ``exclude``; the caller marks it down and re-runs the read elsewhere). ``reason``: why the
        read fell back to the primary (counted once: not again on a re-run)."""
        if self.failed_under(server, result, broken):
            self.failed_over(server)
            exclude.add(server.name)
            return True
        self.count_read(server, None if exclude else reason)
        return False

    def count_read(self, server: Server, reason: str | None) -> None:
        """A read served by ``server``; ``reason``: why it fell back to the primary."""
        server.counters["reads"] += 1
        if reason is not None:
            self.fallbacks[reason] += 1

    @staticmethod
    def taken(server: Server) -> None:
        """A connection of ``server`` was checked out."""
        server.in_flight += 1

    @staticmethod
    def given_back(server: Server, seconds: float, broken: bool) -> None:
        """A connection of ``server`` came back after ``seconds`` out (``broken``: closed or
        broken meanwhile, counted as an error). The router counts the usage: checkouts are
        getconn/putconn, so psycopg_pool's own ``usage_ms`` stays 0."""
        server.in_flight -= 1
        server.counters["usage_us"] += int(seconds * 1_000_000)
        if broken:
            server.counters["errors"] += 1

    @staticmethod
    def skipped(server: Server, *, timed_out: bool) -> None:
        """A replica passed over at checkout: its pool timed out (busy or dead: checked at once)
        or was closed under the read (marked down meanwhile)."""
        if timed_out:
            server.counters["skip_timeout"] += 1
            server.next_check = 0.0
        else:
            server.counters["skip_unreachable"] += 1

    def unavailable(self, reason: str) -> Failure[DataError]:
        """The answer when not even the primary could serve: counted as a primary error."""
        self.primary.counters["errors"] += 1
        return Failure(Unavailable(reason=reason))

    def health(self, audit_lane: LaneHealth) -> RouterHealth:
        """The router's health snapshot (``audit_lane``: :func:`wxdata.audit.lanes.lane_health`)."""
        ledger = self.ledger
        return RouterHealth(
            servers=tuple(server_health(s) for s in (self.primary, *self.replicas)),
            fallbacks=tuple(sorted(self.fallbacks.items())),
            tracked_contexts=len(ledger.positions), pending_contexts=len(ledger.pending),
            floor_lsn=ledger.floor, audit_lane=audit_lane)


def retire(server: Server) -> tuple[Any, Any]:
    """Detach ``server``'s pool and probe (returned for the caller to close), keeping the pool's
    counters in ``server.retired`` so the health snapshot still counts its work."""
    pool, server.pool = server.pool, None
    probe, server.probe = server.probe, None
    if pool is not None:
        server.retired.update(retire_counters(pool))
    return pool, probe


def server_health(s: Server) -> ServerHealth:
    """The health entry of ``s`` (call under the router's lock; sync and async pools alike)."""
    counters = dict(s.counters)
    retired = dict(s.retired)  # getconn/putconn: psycopg_pool's usage_ms stays 0
    retired["usage_ms"] = retired.get("usage_ms", 0) + counters.get("usage_us", 0) // 1000
    replica = s.role == "replica"
    return ServerHealth(
        pool=pool_stats(s.pool, s.name, s.role, retired),
        state=s.state, reason=s.reason, consecutive_failures=s.failures,
        lag_bytes=s.lag_bytes if replica else None,
        lag_seconds=s.lag_seconds if replica else None,
        replay_lsn=s.replay_lsn if replica else None,
        reads=counters.get("reads", 0), writes=counters.get("writes", 0),
        errors=counters.get("errors", 0),
        skips=tuple(sorted((k[5:], v) for k, v in counters.items() if k.startswith("skip_"))),
    )
