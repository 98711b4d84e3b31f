"""Loopback ports for the private servers tests start (PostgreSQL, PgBouncer, Redis, rsyslog)."""

from __future__ import annotations

import socket


def free_port(cluster_bus: bool = False) -> int:
    """A loopback port nobody listens on now (and, for a Redis Cluster node, its bus port +10000).

    Free now is all it promises: the ephemeral range is shared with every outgoing connection, so
    whoever starts a server on it restarts on a fresh port when the server cannot bind it.
    """
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not cluster_bus:
            return port
        if port <= 55535:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
