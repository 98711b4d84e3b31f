"""Cross-process invalidation for memory tiers: Redis pub/sub with acknowledgements and leases.

Each process runs one subscriber thread. Invalidations are published on ``<prefix>:_:inval``;
every other process drops the keys from its memory tier and acknowledges on the publisher's own
channel. The publisher returns only when every receiver acknowledged — or when the *lease* of a
silent receiver has certainly run out:

- a process may serve its memory tier only while it holds a lease: the subscriber thread sends a
  PING on its subscription every ``ping_every`` seconds and each PONG renews the lease to
  ``ping sent + lease``. Redis answers commands on one connection in order, so a PONG for a PING
  that Redis handled after a PUBLISH arrives after that message — and the thread processes the
  message first. A process that has not processed an invalidation therefore holds no lease that
  outlives ``publish + lease``: waiting that long is enough.
- when the subscription is (re)established the memory tier is emptied and fills begun before are
  refused (messages may have been missed); while disconnected there is no lease, so the memory tier
  is bypassed — a process cut off from Redis never serves entries it cannot keep coherent.
- if the publish itself fails (Redis down for everyone), the publisher waits until a lease has
  passed since the outage began, after which no process can still be serving from memory.

In a Redis Cluster, PUBLISH reports only the receivers connected to the node that took it, so the
count of acknowledgements to wait for would be wrong (usually 0: nobody waited for). The bus
therefore uses *sharded* pub/sub there: both channels share one hash slot
(:meth:`~wxdata.cache.backends.layout.Layout`, ``{<prefix>:bus}``), every process subscribes with
SSUBSCRIBE on the one primary owning that slot, and SPUBLISH — delivered by that primary — reports
exactly the processes subscribed, which are exactly the processes that may hold a lease.

The residual window (documented in the README, "Caching"): a writer that is cut off from Redis
while other processes are not cannot reach them; their memory tiers stay coherent only up to the
lease expiry of the writer's *own* tier, not theirs — a partial partition is the one case where
staleness is bounded by the entry TTL rather than by the commit.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import redis

from wxdata.cache.backends.clients import FAULTS, resolve, topology_of

log = logging.getLogger("wxdata.cache")

_BUS_FAULTS: tuple[type[BaseException], ...] = (*FAULTS, ValueError)
Handler = Callable[[Mapping[str, Any]], None]


class InvalidationBus:
    """The subscriber thread, the lease of this process's memory tier, and acknowledged broadcasts."""

    def __init__(
        self,
        client: Any,
        prefix: str,
        *,
        on_message: Handler,
        on_reset: Callable[[], None],
        lease: float = 1.0,
        ping_every: float = 0.2,
        peer_id: str | None = None,
        base: str | None = None,
    ) -> None:
        if not 0 < ping_every < lease:
            raise ValueError("ping_every must be positive and shorter than the lease")
        self._client = client
        self.sharded = topology_of(client) == "cluster"
        self.peer = peer_id or uuid.uuid4().hex
        self._base = base or f"{prefix}:_"
        self.channel = f"{self._base}:inval"
        self.ack_channel = f"{self._base}:ack:{self.peer}"
        self.lease = lease
        self.ping_every = ping_every
        self._on_message = on_message
        self._on_reset = on_reset
        self._lease_until = 0.0
        self._subscribed = False
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._acks: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._down_since = 0.0
        self.reconnects = 0
        self.timeouts = 0
        self._thread = threading.Thread(target=self._loop, name="wxdata-cache-bus", daemon=True)

    @property
    def client(self) -> Any:
        """The redis-py client publishing (a cluster client is created on first use)."""
        return resolve(self._client)

    def _publish(self, channel: str, message: str) -> int:
        """PUBLISH, or SPUBLISH in a cluster: the number of processes subscribed."""
        if self.sharded:
            return int(self.client.spublish(channel, message))
        return int(self.client.publish(channel, message))

    def _pubsub(self) -> Any:
        """A pub/sub connection: in a cluster, to the primary owning the bus channels' slot."""
        if not self.sharded:
            return self.client.pubsub()
        cluster = self.client
        if self.reconnects:  # the slot map may name a dead primary: ask the cluster again
            cluster.nodes_manager.initialize()
        node = cluster.get_node_from_key(self.channel)
        return cluster.get_redis_connection(node).pubsub()

    def start(self) -> InvalidationBus:
        """Start the subscriber thread."""
        self._thread.start()
        return self

    def lease_valid(self) -> bool:
        """Whether this process may serve and fill its memory tier now."""
        return time.monotonic() < self._lease_until

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Block until the first lease is held (tests, start-up)."""
        deadline = time.monotonic() + timeout
        while not self.lease_valid():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    # --- subscriber thread ----------------------------------------------------------------

    def _loop(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self._pubsub()
                if self.sharded:
                    pubsub.ssubscribe(self.channel, self.ack_channel)
                else:
                    pubsub.subscribe(self.channel, self.ack_channel)
                confirmed = 0
                deadline = time.monotonic() + 2.0
                while confirmed < 2:
                    msg = pubsub.get_message(timeout=0.1)
                    if msg is not None and msg["type"] in ("subscribe", "ssubscribe"):
                        confirmed += 1
                    elif time.monotonic() > deadline:
                        raise redis.ConnectionError("subscription not confirmed")
                self._subscribed = True
                self._on_reset()  # anything published before now may have been missed
                backoff = 0.05
                self._serve(pubsub)
            except _BUS_FAULTS as exc:
                if not self._stop.is_set():
                    log.warning("cache bus: subscription lost (%s); memory tier bypassed",
                                type(exc).__name__)
            finally:
                self._subscribed = False
                self._lease_until = 0.0
                if pubsub is not None:
                    with contextlib.suppress(*FAULTS):
                        pubsub.close()
            if self._stop.wait(backoff):
                break
            self.reconnects += 1
            backoff = min(1.0, backoff * 2)

    def _serve(self, pubsub: Any) -> None:
        next_ping = 0.0
        last_pong = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_ping:
                pubsub.ping(repr(now))
                next_ping = now + self.ping_every
            if now - last_pong > 3 * self.lease:
                raise redis.ConnectionError("no PONG on the subscription")
            msg = pubsub.get_message(timeout=max(0.001, next_ping - time.monotonic()))
            if msg is None:
                continue
            kind = msg["type"]
            if kind == "pong":
                sent = float(msg["data"])
                last_pong = time.monotonic()
                self._down_since = 0.0
                if sent + self.lease > self._lease_until:
                    self._lease_until = sent + self.lease
            elif kind == "sunsubscribe":  # the slot moved (resharding, failover): resubscribe
                raise redis.ConnectionError("bus slot moved")
            elif kind in ("message", "smessage"):
                channel = msg["channel"].decode()
                if channel == self.ack_channel:
                    with self._cond:
                        mid = msg["data"].decode()
                        if mid in self._acks:
                            self._acks[mid] += 1
                            self._cond.notify_all()
                elif channel == self.channel:
                    self._handle(msg["data"])

    def _handle(self, data: bytes) -> None:
        try:
            body = json.loads(data)
            origin, mid = str(body["o"]), str(body["i"])
        except (ValueError, KeyError, TypeError):
            log.warning("cache bus: malformed message ignored")
            return
        if origin == self.peer:
            return
        self._on_message(body)
        with contextlib.suppress(*FAULTS):  # else the publisher waits our lease out
            self._publish(f"{self._base}:ack:{origin}", mid)

    # --- publisher side -------------------------------------------------------------------

    def broadcast(self, body: Mapping[str, Any]) -> bool:
        """Publish an invalidation; return once every other process applied it or lost its lease."""
        mid = f"{self.peer}:{next(self._ids)}"
        message = json.dumps({**body, "o": self.peer, "i": mid}, separators=(",", ":"))
        with self._cond:
            self._acks[mid] = 0
        try:
            receivers = self._publish(self.channel, message)
        except FAULTS:
            with self._cond:
                self._acks.pop(mid, None)
            self._wait_out_leases()
            return False
        sent = time.monotonic()
        expected = receivers - (1 if self._subscribed else 0)
        deadline = sent + self.lease
        with self._cond:
            while self._acks.get(mid, 0) < expected:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.timeouts += 1
                    log.warning("cache bus: %d process(es) did not acknowledge an invalidation; "
                                "their leases have expired", expected - self._acks.get(mid, 0))
                    break
                self._cond.wait(remaining)
            self._acks.pop(mid, None)
        return True

    def _wait_out_leases(self) -> None:
        """Redis unreachable: wait until every lease granted before the outage has expired."""
        now = time.monotonic()
        if self._down_since == 0.0:
            self._down_since = now
        remaining = self._down_since + self.lease - now
        if remaining > 0:
            time.sleep(remaining)

    def close(self) -> None:
        """Stop the subscriber thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2 * self.lease + 1)
        self._lease_until = 0.0
