"""Connection sizing: what the configured processes may open against what the server admits.

Every wxdata process opens at most ``DB_POOL_MAX`` connections in its main pool plus
``AUDIT_LANE_POOL_MAX`` on audit lane 2. With ``WXDATA_PROCESSES`` processes, and
``DB_RESERVED_CONNECTIONS`` kept free for migrations, health probes, monitoring and an operator's
``psql``, the server must admit::

    WXDATA_PROCESSES x (DB_POOL_MAX + AUDIT_LANE_POOL_MAX) + DB_RESERVED_CONNECTIONS
        <= max_connections - superuser_reserved_connections [- reserved_connections (PG 16+)]

Past that, threads of one process still queue in its pool (the pool never opens more than its
maximum), but pools of several processes growing at once meet ``too many clients already`` from
the server. Behind a transaction pooler (``DB_POOLER=transaction``) wxdata's connections end at the
pooler: the server's connections are the pooler's (PgBouncer: ``default_pool_size`` per database
and user, plus ``reserve_pool_size``) and wxdata's totals are to be compared with its
``max_client_conn`` instead.
"""

from __future__ import annotations

from typing import Any

import attrs
import psycopg

from wxdata.config import Settings, settings


@attrs.frozen(slots=True, kw_only=True)
class ConnectionBudget:
    """The configured demand and the server's capacity, in connections."""

    processes: int = attrs.field(validator=attrs.validators.ge(1))
    pool_max: int = attrs.field(validator=attrs.validators.ge(0))
    lane_pool_max: int = attrs.field(validator=attrs.validators.ge(0))
    reserve: int = attrs.field(validator=attrs.validators.ge(0))
    max_connections: int = attrs.field(validator=attrs.validators.ge(0))
    server_reserved: int = attrs.field(validator=attrs.validators.ge(0))
    pooled: bool = False

    @property
    def demand(self) -> int:
        """Connections the configured processes may hold at once, plus the reserve."""
        return self.processes * (self.pool_max + self.lane_pool_max) + self.reserve

    @property
    def capacity(self) -> int:
        """Connection slots the server gives ordinary roles."""
        return max(self.max_connections - self.server_reserved, 0)

    @property
    def fits(self) -> bool:
        """Whether the demand fits (always True behind a transaction pooler: not comparable)."""
        return self.pooled or self.demand <= self.capacity

    def warning(self) -> str | None:
        """A sentence naming the settings and totals when the demand does not fit, else None."""
        if self.fits:
            return None
        return (
            f"connection budget exceeded: WXDATA_PROCESSES {self.processes} x (DB_POOL_MAX "
            f"{self.pool_max} + AUDIT_LANE_POOL_MAX {self.lane_pool_max}) + "
            f"DB_RESERVED_CONNECTIONS {self.reserve} = {self.demand} > {self.capacity} server "
            f"slots (max_connections {self.max_connections} - reserved {self.server_reserved}); "
            "pools growing together will be refused connections"
        )

    def summary(self) -> str:
        """One line for ``wxdata health``."""
        if self.pooled:
            return (f"connections: behind a transaction pooler, wxdata may open {self.demand} "
                    "client connections (compare with the pooler's max_client_conn)")
        state = "ok" if self.fits else "OVER"
        return (f"connections: {state} demand={self.demand} ({self.processes} x "
                f"({self.pool_max} + {self.lane_pool_max}) + {self.reserve}) "
                f"capacity={self.capacity} ({self.max_connections} - {self.server_reserved})")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        body: dict[str, Any] = attrs.asdict(self)
        body.update(demand=self.demand, capacity=self.capacity, fits=self.fits)
        return body


_SERVER_SLOTS = (
    "SELECT current_setting('max_connections')::int, "
    "current_setting('superuser_reserved_connections')::int, "
    "coalesce(current_setting('reserved_connections', true), '0')::int"
)


def connection_budget(conn: psycopg.Connection[Any], config: Settings | None = None) -> ConnectionBudget:
    """The budget of ``config`` (default: settings) against the server ``conn`` reaches."""
    config = config or settings()
    row = conn.execute(_SERVER_SLOTS, prepare=False).fetchone()
    max_connections, superuser, reserved = row if row is not None else (0, 0, 0)
    return ConnectionBudget(
        processes=config.processes, pool_max=config.pool_max,
        lane_pool_max=config.audit_lane_pool_max, reserve=config.reserved_connections,
        max_connections=int(max_connections), server_reserved=int(superuser) + int(reserved),
        pooled=config.transaction_pooled,
    )
