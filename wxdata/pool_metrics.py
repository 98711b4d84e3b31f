"""Pool health and replica metrics: values, a dict view, Prometheus text, and ``wxdata health``.

Pool figures come from psycopg_pool's own ``get_stats()`` (measures: ``pool_min``, ``pool_max``,
``pool_size``, ``pool_available``, ``requests_waiting``; counters: ``requests_num``,
``requests_queued``, ``requests_wait_ms``, ``requests_errors``, ``usage_ms``, ``connections_num``,
``connections_errors``, ``connections_lost``, ``returns_bad``), so "in use" is
``pool_size - pool_available`` as the pool itself counts it; the original read fields that do not
exist and always reported 0 (study §7 item 22). Counters that psycopg_pool has not incremented yet
are absent from ``get_stats()`` and read as 0 here. Counters of a pool the router retired (a
replica that went down) are carried over, so every ``*_total`` series only ever grows.

Nothing here names a student or a value: servers are identified by their pool name
(``primary``, ``replica-1``...), never by URL (which may hold a password).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from psycopg_pool import ConnectionPool

from wxdata.sizing import ConnectionBudget, connection_budget

if TYPE_CHECKING:
    from wxdata._cli import CliError

_COUNTER_KEYS = (
    "requests_num", "requests_queued", "requests_wait_ms", "requests_errors", "usage_ms",
    "connections_num", "connections_ms", "connections_errors", "connections_lost", "returns_bad",
)


@attrs.frozen(slots=True, kw_only=True)
class PoolStats:
    """One pool's measures (now) and counters (since it was created)."""

    name: str
    role: str
    min_size: int = 0
    max_size: int = 0
    size: int = 0
    in_use: int = 0
    idle: int = 0
    waiting: int = 0
    requests: int = 0
    requests_queued: int = 0
    wait_ms: int = 0
    request_errors: int = 0
    usage_ms: int = 0
    connections: int = 0
    connect_ms: int = 0
    connection_errors: int = 0
    connections_lost: int = 0
    returns_bad: int = 0

    @property
    def utilization(self) -> float:
        """Connections in use over the maximum size (0..1)."""
        return self.in_use / self.max_size if self.max_size else 0.0

    @property
    def avg_wait_ms(self) -> float:
        """Mean wait of the requests that had to queue."""
        return self.wait_ms / self.requests_queued if self.requests_queued else 0.0


def pool_stats(
    pool: ConnectionPool[Any] | None, name: str, role: str,
    retired: Mapping[str, int] | None = None,
) -> PoolStats:
    """Read a psycopg_pool pool's real ``get_stats()`` (plus counters of retired pools)."""
    raw: dict[str, int] = dict(pool.get_stats()) if pool is not None else {}
    counters = {k: raw.get(k, 0) + (retired or {}).get(k, 0) for k in _COUNTER_KEYS}
    size = raw.get("pool_size", 0)
    idle = raw.get("pool_available", 0)
    return PoolStats(
        name=name, role=role,
        min_size=raw.get("pool_min", 0), max_size=raw.get("pool_max", 0),
        size=size, in_use=max(size - idle, 0), idle=idle, waiting=raw.get("requests_waiting", 0),
        requests=counters["requests_num"], requests_queued=counters["requests_queued"],
        wait_ms=counters["requests_wait_ms"], request_errors=counters["requests_errors"],
        usage_ms=counters["usage_ms"], connections=counters["connections_num"],
        connect_ms=counters["connections_ms"], connection_errors=counters["connections_errors"],
        connections_lost=counters["connections_lost"], returns_bad=counters["returns_bad"],
    )


def retire_counters(pool: ConnectionPool[Any]) -> dict[str, int]:
    """The counters of a pool about to be closed (to carry them into the next one)."""
    raw = pool.get_stats()
    return {k: raw.get(k, 0) for k in _COUNTER_KEYS}


@attrs.frozen(slots=True, kw_only=True)
class ServerHealth:
    """One server as the router sees it: its pool, state, lag and routing counters."""

    pool: PoolStats
    state: str  # "up" | "lagging" | "down"
    reason: str = ""
    consecutive_failures: int = 0
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    replay_lsn: int | None = None
    reads: int = 0
    writes: int = 0
    errors: int = 0
    skips: tuple[tuple[str, int], ...] = ()

    @property
    def up(self) -> bool:
        """Reachable (a lagging replica is up, but not serving reads)."""
        return self.state != "down"


@attrs.frozen(slots=True, kw_only=True)
class LaneHealth:
    """Audit lane 2 (:mod:`wxdata.audit.lanes`): records written and lost, and its pools.

    ``lost`` = ``disclosures_refused`` (a read answered ``Failure(Unavailable)`` instead of its
    data) + ``failure_records_lost`` (a failed or denied operation returned its own Failure but
    its record could not be kept). Counted since the process started.
    """

    written: int = 0
    lost: int = 0
    disclosures_refused: int = 0
    failure_records_lost: int = 0
    pools: tuple[PoolStats, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "written": self.written, "lost": self.lost,
            "disclosures_refused": self.disclosures_refused,
            "failure_records_lost": self.failure_records_lost,
            "pools": {p.name: attrs.asdict(p) for p in self.pools},
        }


@attrs.frozen(slots=True, kw_only=True)
class RouterHealth:
    """Every server of a router, plus its fallback and read-your-writes bookkeeping."""

    servers: tuple[ServerHealth, ...]
    fallbacks: tuple[tuple[str, int], ...] = ()
    tracked_contexts: int = 0
    pending_contexts: int = 0
    floor_lsn: int = 0
    audit_lane: LaneHealth = attrs.field(factory=LaneHealth)

    @property
    def primary(self) -> ServerHealth:
        """The primary's entry."""
        return next(s for s in self.servers if s.pool.role == "primary")

    @property
    def primary_up(self) -> bool:
        """Whether the primary answered its last check."""
        return self.primary.up

    def server(self, name: str) -> ServerHealth:
        """The entry of the server named ``name`` (``primary``, ``replica-1``...)."""
        return next(s for s in self.servers if s.pool.name == name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        servers: dict[str, Any] = {}
        for s in self.servers:
            body = attrs.asdict(s.pool)
            body.update(
                utilization=round(s.pool.utilization, 4), avg_wait_ms=round(s.pool.avg_wait_ms, 3),
                up=s.up, state=s.state, reason=s.reason,
                consecutive_failures=s.consecutive_failures, lag_bytes=s.lag_bytes,
                lag_seconds=s.lag_seconds, replay_lsn=s.replay_lsn, reads=s.reads,
                writes=s.writes, errors=s.errors, skips=dict(s.skips),
            )
            servers[s.pool.name] = body
        return {
            "primary_up": self.primary_up,
            "servers": servers,
            "fallbacks": dict(self.fallbacks),
            "tracked_contexts": self.tracked_contexts,
            "pending_contexts": self.pending_contexts,
            "floor_lsn": self.floor_lsn,
            "audit_lane": self.audit_lane.to_dict(),
        }


# --- Prometheus text exposition format (version 0.0.4) ----------------------------------------

_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("wxdata_pool_min_size", "Minimum connections the pool keeps.", "min_size"),
    ("wxdata_pool_max_size", "Maximum connections the pool may open.", "max_size"),
    ("wxdata_pool_size", "Connections managed by the pool (in use, idle or opening).", "size"),
    ("wxdata_pool_in_use", "Connections checked out of the pool.", "in_use"),
    ("wxdata_pool_idle", "Connections idle in the pool.", "idle"),
    ("wxdata_pool_waiting", "Requests waiting for a connection.", "waiting"),
)
_COUNTERS: tuple[tuple[str, str, str, float], ...] = (
    ("wxdata_pool_requests_total", "Connection requests.", "requests", 1.0),
    ("wxdata_pool_requests_queued_total", "Requests that had to wait.", "requests_queued", 1.0),
    ("wxdata_pool_wait_seconds_total", "Time requests spent waiting.", "wait_ms", 0.001),
    ("wxdata_pool_request_errors_total", "Requests that failed (timeout, closed pool).",
     "request_errors", 1.0),
    ("wxdata_pool_usage_seconds_total", "Time connections were checked out.", "usage_ms", 0.001),
    ("wxdata_pool_connections_total", "Connections opened.", "connections", 1.0),
    ("wxdata_pool_connection_errors_total", "Failed connection attempts.", "connection_errors",
     1.0),
    ("wxdata_pool_connections_lost_total", "Connections found broken.", "connections_lost", 1.0),
    ("wxdata_pool_returns_bad_total", "Connections returned broken.", "returns_bad", 1.0),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in pairs) + "}"


def _num(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def to_prometheus(health: RouterHealth) -> str:
    """The metrics in the Prometheus text exposition format (one HELP/TYPE block per metric)."""
    lines: list[str] = []

    def block(name: str, help_text: str, kind: str, samples: Iterable[tuple[str, float]]) -> None:
        rows = list(samples)
        if not rows:
            return
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {_num(v)}" for labels, v in rows)

    def base(s: ServerHealth) -> list[tuple[str, str]]:
        return [("pool", s.pool.name), ("role", s.pool.role)]

    for name, help_text, field in _GAUGES:
        block(name, help_text, "gauge",
              ((_labels(base(s)), getattr(s.pool, field)) for s in health.servers))
    block("wxdata_pool_utilization_ratio", "Connections in use over the maximum size.", "gauge",
          ((_labels(base(s)), s.pool.utilization) for s in health.servers))
    for name, help_text, field, scale in _COUNTERS:
        block(name, help_text, "counter",
              ((_labels(base(s)), getattr(s.pool, field) * scale if scale != 1.0
                else getattr(s.pool, field)) for s in health.servers))
    block("wxdata_server_up", "1 when the server answered its last check.", "gauge",
          ((_labels(base(s)), 1 if s.up else 0) for s in health.servers))
    block("wxdata_server_serving", "1 when the server takes reads (up and within the lag bound).",
          "gauge", ((_labels(base(s)), 1 if s.state == "up" else 0) for s in health.servers))
    block("wxdata_server_consecutive_failures", "Failed checks in a row.", "gauge",
          ((_labels(base(s)), s.consecutive_failures) for s in health.servers))
    block("wxdata_replica_lag_bytes", "WAL the replica has not replayed yet.", "gauge",
          ((_labels(base(s)), s.lag_bytes) for s in health.servers if s.lag_bytes is not None))
    block("wxdata_replica_lag_seconds", "Age of the last replayed transaction while behind.",
          "gauge", ((_labels(base(s)), s.lag_seconds) for s in health.servers
                    if s.lag_seconds is not None))
    block("wxdata_router_reads_total", "Reads served.", "counter",
          ((_labels(base(s)), s.reads) for s in health.servers))
    block("wxdata_router_writes_total", "Write checkouts.", "counter",
          ((_labels(base(s)), s.writes) for s in health.servers if s.pool.role == "primary"))
    block("wxdata_router_errors_total", "Failures seen on the server's connections.", "counter",
          ((_labels(base(s)), s.errors) for s in health.servers))
    block("wxdata_replica_skips_total", "Times a replica was passed over, by reason.", "counter",
          ((_labels([*base(s), ("reason", r)]), n) for s in health.servers for r, n in s.skips))
    block("wxdata_router_fallbacks_total", "Reads served by the primary, by reason.", "counter",
          ((_labels([("reason", r)]), n) for r, n in health.fallbacks))
    block("wxdata_router_tracked_contexts", "Contexts with a write not yet replayed everywhere.",
          "gauge", [("", health.tracked_contexts)])
    lane = health.audit_lane
    block("wxdata_audit_lane_records_total", "Audit lane-2 records, by outcome.", "counter",
          [(_labels([("outcome", "written")]), lane.written),
           (_labels([("outcome", "disclosure_refused")]), lane.disclosures_refused),
           (_labels([("outcome", "failure_record_lost")]), lane.failure_records_lost)])
    for name, help_text, field in _GAUGES:
        block(name.replace("wxdata_pool_", "wxdata_audit_lane_pool_"), help_text, "gauge",
              ((_labels([("pool", p.name)]), getattr(p, field)) for p in lane.pools))
    return "\n".join(lines) + "\n"


def to_text(health: RouterHealth) -> str:
    """A short human-readable table."""
    out = []
    for s in health.servers:
        p = s.pool
        lag = ""
        if s.pool.role == "replica":
            lag_b = "-" if s.lag_bytes is None else f"{s.lag_bytes} B"
            lag_s = "-" if s.lag_seconds is None else f"{s.lag_seconds:.3f} s"
            lag = f" lag={lag_b}/{lag_s}"
        skips = "".join(f" skip_{r}={n}" for r, n in s.skips)
        reason = f" ({s.reason})" if s.reason and s.state != "up" else ""
        out.append(
            f"{p.name:<10} {p.role:<8} {s.state:<7}{reason} size={p.size}/{p.max_size} "
            f"in_use={p.in_use} idle={p.idle} waiting={p.waiting} requests={p.requests} "
            f"queued={p.requests_queued} wait_ms={p.wait_ms} errors={p.request_errors} "
            f"conn_errors={p.connection_errors} lost={p.connections_lost} reads={s.reads}"
            f"{lag}{skips}"
        )
    if health.fallbacks:
        out.append("fallbacks: " + ", ".join(f"{r}={n}" for r, n in health.fallbacks))
    lane = health.audit_lane
    out.append(
        f"audit lane 2: written={lane.written} lost={lane.lost} "
        f"disclosures_refused={lane.disclosures_refused} "
        f"failure_records_lost={lane.failure_records_lost}"
    )
    for p in lane.pools:
        out.append(
            f"  {p.name} size={p.size}/{p.max_size} in_use={p.in_use} idle={p.idle} "
            f"waiting={p.waiting} requests={p.requests} errors={p.request_errors} "
            f"conn_errors={p.connection_errors}"
        )
    return "\n".join(out) + "\n"


# --- CLI --------------------------------------------------------------------------------------


def to_table(health: RouterHealth) -> str:
    """The servers as a table, then audit lane 2 (the ``wxdata health`` text output)."""
    from wxdata._cli import table

    rows = []
    for s in health.servers:
        p = s.pool
        lag = "" if p.role != "replica" else (
            f"{'-' if s.lag_bytes is None else s.lag_bytes} B / "
            f"{'-' if s.lag_seconds is None else f'{s.lag_seconds:.3f}'} s")
        rows.append([p.name, p.role, s.state + (f" ({s.reason})" if s.reason and s.state != "up"
                                                else ""),
                     f"{p.size}/{p.max_size}", p.in_use, p.idle, p.waiting, p.requests,
                     p.request_errors + p.connection_errors, s.reads, lag])
    out = [table(["server", "role", "state", "size", "in_use", "idle", "waiting", "requests",
                  "errors", "reads", "lag"], rows, boxed=False)]
    if health.fallbacks:
        out.append("fallbacks: " + ", ".join(f"{r}={n}" for r, n in health.fallbacks))
    lane = health.audit_lane
    out.append(f"audit lane 2: written={lane.written} lost={lane.lost} "
               f"(disclosures_refused={lane.disclosures_refused}, "
               f"failure_records_lost={lane.failure_records_lost})")
    return "\n".join(out) + "\n"


def _why_down(url: str, timeout: int) -> CliError:
    """The one-line reason the primary cannot be reached (from a direct connection attempt)."""
    import psycopg

    from wxdata._cli import CliError, Exit, postgres_error
    from wxdata.db import connect

    try:
        with connect(url, connect_timeout=timeout):
            pass
    except psycopg.Error as exc:
        return postgres_error(exc, url)
    return CliError(Exit.UNAVAILABLE, "the primary did not answer its health check",
                    "check the server's load and DATABASE_URL")


def _cmd_health(args: argparse.Namespace) -> int:
    from wxdata._cli import CliError, Exit
    from wxdata.config import load_settings
    from wxdata.replicas import Router, RouterConfig

    config = load_settings()
    primary_url = args.database_url or config.database_url
    if primary_url is None:
        raise CliError(Exit.USAGE, "no database configured",
                       "set DATABASE_URL (or DB_HOST), or pass --database-url")
    if args.require_replicas and not config.replica_urls:
        raise CliError(Exit.USAGE, "--require-replicas but no replica is configured",
                       "set DATABASE_REPLICA_URLS, or drop --require-replicas")
    if args.json:
        args.format = "json"
    router = Router.open(
        primary_url, config.replica_urls, settings=config, min_size=0, max_size=1,
        config=RouterConfig.from_settings(config, connect_timeout=args.timeout, monitor=False),
        initial_check=False,
    )
    router_log = logging.getLogger("wxdata.replicas")
    level = router_log.level
    if not getattr(args, "verbose", False):  # the outcome is reported below, in one line
        router_log.setLevel(logging.CRITICAL)
    try:
        router.check_all()
        health = router.health()
    finally:
        router.close()
        router_log.setLevel(level)
    budget, refused = (_budget(config, args.timeout, primary_url) if health.primary_up
                       else (None, None))
    if args.format == "json":
        body = health.to_dict()
        body["connections"] = budget.to_dict() if budget is not None else None
        print(json.dumps(body, indent=2, sort_keys=True))
    elif args.format == "prometheus":
        sys.stdout.write(to_prometheus(health))
        if budget is not None:
            sys.stdout.write(budget_prometheus(budget))
    else:
        sys.stdout.write(to_table(health))
        if budget is not None:
            print(budget.summary())
    if not health.primary_up:
        down = _why_down(primary_url, args.timeout)
        raise CliError(down.code, f"primary unreachable: {down.message}", down.hint)
    if refused is not None:  # up, but every call on wxdata's connections would be refused
        raise CliError(Exit.USAGE, f"the primary answers, but wxdata's connections are refused: "
                       f"{refused}", "see DB_POOLER in docs/deploying.md")
    warning = budget.warning() if budget is not None else None
    if warning is not None:
        print(f"health: warning: {warning}", file=sys.stderr)
    if args.require_replicas:
        bad = [s.pool.name for s in health.servers if s.pool.role == "replica" and s.state != "up"]
        if bad:
            raise CliError(Exit.CHECK_FAILED, f"replica down or lagging: {', '.join(bad)}",
                           "see the state column above (DATABASE_REPLICA_URLS)")
    return Exit.OK


def _budget(
    config: Any, timeout: int, url: str | None = None,
) -> tuple[ConnectionBudget | None, str | None]:
    """The connection budget against the primary (None if it cannot be read), and why a
    connection opened as wxdata opens them is refused (None when it is not): a health check of
    the server alone would call "up" a primary on which every call fails (a pooler that does not
    keep prepared statements under ``DB_POOLER=transaction-prepared``)."""
    import psycopg

    from wxdata.db import connect
    from wxdata.errors import ContextRefused

    try:
        with connect(url or config.database_url, config=config, connect_timeout=timeout) as conn:
            return connection_budget(conn, config), None
    except ContextRefused as refused:
        return None, getattr(refused.error, "reason", refused.error.code)
    except psycopg.Error:
        return None, None


def budget_prometheus(budget: ConnectionBudget) -> str:
    """The connection budget as Prometheus gauges."""
    rows = (
        ("wxdata_connections_demand", "Connections the configured processes may open, plus the "
         "reserve.", budget.demand),
        ("wxdata_connections_capacity", "Server connection slots for ordinary roles.",
         budget.capacity),
        ("wxdata_connections_budget_ok", "1 when the demand fits the capacity.",
         1 if budget.fits else 0),
    )
    return "".join(f"# HELP {n} {h}\n# TYPE {n} gauge\n{n} {v}\n" for n, h, v in rows)


def register(subparsers: Any) -> None:
    """Add ``wxdata health`` to the CLI."""
    cmd = subparsers.add_parser(
        "health", help="check the primary and replicas; print pool and lag metrics",
        description="Probe DATABASE_URL and DATABASE_REPLICA_URLS; exit 3 if the primary is "
                    "unreachable, 1 with --require-replicas if a replica is down or lagging, "
                    "2 with --require-replicas and no replica configured. "
                    "Warns when WXDATA_PROCESSES x (DB_POOL_MAX + AUDIT_LANE_POOL_MAX) + "
                    "DB_RESERVED_CONNECTIONS exceeds the server's connection slots.",
    )
    cmd.add_argument("--format", choices=("text", "json", "prometheus"), default="text")
    cmd.add_argument("--json", action="store_true", help="same as --format json")
    cmd.add_argument("--database-url", default=None, help="the primary (default: DATABASE_URL)")
    cmd.add_argument("--timeout", type=int, default=5, help="connect timeout in seconds")
    cmd.add_argument("--require-replicas", action="store_true",
                     help="also fail when a replica is down or lagging")
    cmd.set_defaults(handler=_cmd_health)
