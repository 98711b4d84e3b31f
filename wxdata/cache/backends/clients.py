"""redis-py clients for each ``REDIS_URL`` topology, and what counts as a Redis fault.

- one server: ``redis.Redis`` with short timeouts and no retries (the breaker decides);
- Sentinel: ``Sentinel(...).master_for(service)`` — a client whose connections ask the Sentinels
  where the primary is, so after a failover new connections reach the promoted replica; a command
  that hits a dropped or demoted primary is retried twice with a short backoff;
- Cluster: ``RedisCluster`` built on first use (:class:`LazyCluster`): its constructor contacts
  the cluster, and a cache must be buildable — and reads must keep working from PostgreSQL —
  while Redis is down.

:data:`FAULTS` lists every exception a Redis operation may raise for reasons outside the cache's
control (redis-py's cluster errors do not all derive from ``RedisError``); backends catch exactly
these and count them as faults.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel

from wxdata.redis_url import RedisTarget, TopologyKind, parse_redis_url

FAULTS: tuple[type[BaseException], ...] = (redis.RedisError, RedisClusterException, OSError)
CLIENT_NAME = "wxdata-cache"


class LazyCluster:
    """A ``RedisCluster`` created on first use and kept; creation faults propagate (as FAULTS)."""

    kind: TopologyKind = "cluster"

    def __init__(self, factory: Callable[[], RedisCluster]) -> None:
        self._factory = factory
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    def resolve(self) -> RedisCluster:
        """The cluster client (discovering the cluster now if not yet done)."""
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                self._client = self._factory()
            return self._client

    def close(self) -> None:
        """Close the client if it was ever created."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def topology_of(client: Any) -> TopologyKind:
    """``single``, ``sentinel`` or ``cluster`` for a client made by :func:`make_client` (or a test's)."""
    if isinstance(client, LazyCluster | RedisCluster):
        return "cluster"
    pool = getattr(client, "connection_pool", None)
    if pool is not None and type(pool).__name__ == "SentinelConnectionPool":
        return "sentinel"
    return "single"


def resolve(client: Any) -> Any:
    """The usable client behind ``client`` (a LazyCluster is built here; may raise FAULTS)."""
    return client.resolve() if isinstance(client, LazyCluster) else client


def _cluster(target: RedisTarget, connect_timeout: float, socket_timeout: float,
             max_connections: int | None) -> LazyCluster:
    def build() -> RedisCluster:
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port)  # type: ignore[no-untyped-call]
                           for host, port in target.nodes],
            username=target.username, password=target.password, ssl=target.tls,
            socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout,
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), 2),
            require_full_coverage=False, client_name=CLIENT_NAME,
            max_connections=max_connections or 2**31,
        )

    return LazyCluster(build)


def _sentinel(target: RedisTarget, connect_timeout: float, socket_timeout: float,
              max_connections: int | None) -> redis.Redis:
    timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": connect_timeout}
    # Called through Any: redis-py's annotations of Sentinel differ between releases (untyped in
    # some, strictly typed keyword by keyword in others); the keywords below are valid in all.
    sentinel_class: Any = Sentinel
    sentinel = sentinel_class(list(target.nodes), sentinel_kwargs=dict(timeouts),
                              socket_timeout=socket_timeout, socket_connect_timeout=connect_timeout)
    client: redis.Redis = sentinel.master_for(
        target.service or "", db=target.db, username=target.username, password=target.password,
        ssl=target.tls, retry=Retry(ExponentialBackoff(cap=0.1, base=0.02), 2),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        health_check_interval=0, client_name=CLIENT_NAME, max_connections=max_connections,
        socket_timeout=socket_timeout, socket_connect_timeout=connect_timeout,
    )
    return client


def make_client(url: str, *, connect_timeout: float = 0.25, socket_timeout: float = 0.25,
                max_connections: int | None = 64) -> Any:
    """A client for any ``REDIS_URL`` (see :mod:`wxdata.redis_url`): short timeouts, few retries."""
    target = parse_redis_url(url)
    if target.kind == "cluster":
        return _cluster(target, connect_timeout, socket_timeout, max_connections)
    if target.kind == "sentinel":
        return _sentinel(target, connect_timeout, socket_timeout, max_connections)
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
        client_name=CLIENT_NAME,
        max_connections=max_connections,
    )


def make_async_client(url: str, *, connect_timeout: float = 0.25, socket_timeout: float = 0.25,
                      max_connections: int | None = 64) -> Any:
    """A ``redis.asyncio`` client for any ``REDIS_URL``, configured as :func:`make_client`'s.

    A cluster client discovers the cluster on its first command (its constructor does not
    connect), so a cache stays buildable while Redis is down; Sentinel clients ask the Sentinels
    where the primary is on each new connection.
    """
    import redis.asyncio as aredis
    from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.asyncio.sentinel import Sentinel as AsyncSentinel

    target = parse_redis_url(url)
    if target.kind == "cluster":
        return AsyncRedisCluster(
            startup_nodes=[AsyncClusterNode(host, port) for host, port in target.nodes],
            username=target.username, password=target.password, ssl=target.tls,
            socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout,
            retry=AsyncRetry(ExponentialBackoff(cap=0.1, base=0.01), 2),
            require_full_coverage=False, client_name=CLIENT_NAME,
            max_connections=max_connections or 2**31,
        )
    if target.kind == "sentinel":
        timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": connect_timeout}
        sentinel_class: Any = AsyncSentinel  # annotations differ between releases (see above)
        sentinel = sentinel_class(list(target.nodes), sentinel_kwargs=dict(timeouts), **timeouts)
        return sentinel.master_for(
            target.service or "", db=target.db, username=target.username,
            password=target.password, ssl=target.tls,
            retry=AsyncRetry(ExponentialBackoff(cap=0.1, base=0.02), 2),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
            health_check_interval=0, client_name=CLIENT_NAME, max_connections=max_connections,
            **timeouts,
        )
    return aredis.Redis.from_url(
        url, socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout,
        retry=AsyncRetry(NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0,
        client_name=CLIENT_NAME, max_connections=max_connections,
    )
