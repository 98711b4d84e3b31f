"""Routing settings shared by the sync and the async router: strategy, consistency, lag bounds."""

from __future__ import annotations

import enum
from typing import Any

import attrs

from wxdata.config import Settings, settings
from wxdata.context import ExecutionContext
from wxdata.observability import QueryLog


class Strategy(enum.StrEnum):
    """How a replica is picked among the eligible ones."""

    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"


class Consistency(enum.StrEnum):
    """Whose writes a context must see: its session's (default) or every session of its user's."""

    SESSION = "session"
    USER = "user"


def consistency_key(ctx: ExecutionContext, consistency: Consistency = Consistency.SESSION) -> str:
    """The read-your-writes key of a context (session id, else user id; or always user id)."""
    if consistency is Consistency.SESSION and ctx.session_id:
        return "s:" + ctx.session_id
    return "u:" + ctx.user_id


@attrs.frozen(slots=True, kw_only=True)
class RouterConfig:
    """Routing, lag bounds, health-check cadence and timeouts."""

    strategy: Strategy = Strategy.ROUND_ROBIN
    consistency: Consistency = Consistency.SESSION
    max_lag_bytes: int | None = 16 * 1024 * 1024
    max_lag_seconds: float | None = 30.0
    check_interval: float = 1.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    replica_timeout: float = 0.5
    primary_timeout: float = 30.0
    connect_timeout: int = 3
    idle_check_after: float = 1.0
    max_tracked: int = 100_000
    monitor: bool = True
    query_log: QueryLog | None = None

    @classmethod
    def from_settings(cls, config: Settings | None = None, **overrides: Any) -> RouterConfig:
        """Strategy and lag bounds from ``DB_REPLICA_*`` settings, the rest default or overridden."""
        s = config or settings()
        values: dict[str, Any] = {
            "strategy": Strategy(s.replica_strategy),
            "max_lag_bytes": s.replica_max_lag_bytes,
            "max_lag_seconds": s.replica_max_lag_seconds,
        }
        values.update(overrides)
        return cls(**values)
