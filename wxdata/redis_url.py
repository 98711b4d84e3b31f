"""``REDIS_URL`` syntax: one server, a Redis Cluster, or a primary found through Sentinel.

- ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS) and ``unix:///path`` — one server
  (redis-py's own URL syntax, passed through unchanged);
- ``redis+cluster://[user:password@]host:port[,host:port...]`` — a Redis Cluster: the listed nodes
  are only where discovery starts (any reachable one is enough); ``rediss+cluster://`` uses TLS;
- ``redis+sentinel://[user:password@]host:port[,host:port...]/service_name[/db]`` — the primary
  of ``service_name`` as the listed Sentinels report it, followed across failovers;
  ``rediss+sentinel://`` uses TLS to the data nodes. Credentials are those of the data nodes.

:func:`parse_redis_url` checks the syntax only (no connection); its errors name the rule, never
the URL (it may hold a password).
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import unquote

import attrs

TopologyKind = Literal["single", "cluster", "sentinel"]
_SINGLE = ("redis://", "rediss://", "unix://")
_SCHEMES = {
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
}
_HOST = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+)):(?P<port>[0-9]{1,5})$")
_SERVICE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class RedisUrlError(ValueError):
    """A Redis URL breaks a syntax rule (the message names the rule, not the URL)."""


@attrs.frozen(slots=True, kw_only=True)
class RedisTarget:
    """A parsed ``REDIS_URL``: the topology and what is needed to connect to it."""

    kind: TopologyKind
    url: str = attrs.field(repr=False)
    nodes: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    db: int = 0
    tls: bool = False
    username: str | None = attrs.field(default=None, repr=False)
    password: str | None = attrs.field(default=None, repr=False)


def _node(text: str) -> tuple[str, int]:
    m = _HOST.match(text)
    if m is None:
        raise RedisUrlError("must list nodes as host:port separated by commas")
    port = int(m["port"])
    if not 1 <= port <= 65535:
        raise RedisUrlError("must use ports between 1 and 65535")
    return (m["v6"] or m["name"], port)


def parse_redis_url(url: str) -> RedisTarget:
    """Parse a Redis URL of any supported topology; raises :class:`RedisUrlError`."""
    if url.startswith(_SINGLE):
        return RedisTarget(kind="single", url=url)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _SCHEMES:
        raise RedisUrlError(
            "must start with redis://, rediss://, unix://, redis+cluster://, rediss+cluster://, "
            "redis+sentinel:// or rediss+sentinel://")
    kind, tls = _SCHEMES[scheme]
    if "?" in rest or "#" in rest:
        raise RedisUrlError("must not carry a query or fragment")
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        auth, _, netloc = netloc.rpartition("@")
        user, colon, secret = auth.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    if not netloc:
        raise RedisUrlError("must name at least one host:port")
    nodes = tuple(_node(part) for part in netloc.split(","))
    parts = [p for p in path.split("/")] if path else []
    if parts and parts[-1] == "":
        parts.pop()
    if kind == "cluster":
        if parts:
            raise RedisUrlError("of a cluster must not name a database (a cluster has only db 0)")
        return RedisTarget(kind="cluster", url=url, nodes=nodes, tls=tls, username=username,
                           password=password)
    if not parts or len(parts) > 2 or not _SERVICE.match(parts[0]):
        raise RedisUrlError("of a sentinel must be .../service_name[/db]")
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit() or int(parts[1]) > 1_000_000:
            raise RedisUrlError("must give the database as a number")
        db = int(parts[1])
    return RedisTarget(kind="sentinel", url=url, nodes=nodes, service=parts[0], db=db, tls=tls,
                       username=username, password=password)
