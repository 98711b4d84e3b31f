"""Redis backend (redis-py + hiredis): sealed values, tag sets, atomic guarded fills, a circuit breaker.

Layout under the namespace prefix (default ``white-cross``)::

    <prefix>:<entity>:...            entries (see :mod:`wxdata.cache.keys`), sealed by crypto.Envelope
    <prefix>:_:seq                   invalidation sequence (INCR per invalidation)
    <prefix>:_:ts:<tag id>           sequence at which a tag was last invalidated (2-day TTL)
    <prefix>:_:ts:any                ... for the pseudo-tag every fill checks (clear, recovery)
    <prefix>:_:tag:<tag id>          SET of entry keys carrying the tag (expires with them)
    <prefix>:_:stats                 HASH of counters published by every process

A hit is one round trip (``GET entry``); a miss then reads the sequence (its fill token) before
the caller reads PostgreSQL. A fill
is one Lua script: it stores the entry and adds it to its tag sets only if no tag's record is
newer than the token — so a value read from PostgreSQL before a writer's commit can never be stored
after that writer's invalidation. An invalidation is one Lua script: INCR the sequence, record it
on every tag, UNLINK the members of the tag sets. Nothing ever runs KEYS; clear and pattern
deletes use SCAN (in a cluster, on every primary).

In a Redis Cluster the same layout is split into shards, one hash slot each, so that every script
touches one slot (:mod:`wxdata.cache.backends.layout`); an invalidation then runs once per shard.
Behind Sentinel, and in a cluster whose primary has a replica, an invalidation also waits
(``WAIT``) until a replica has it: one a failover would lose is treated as undelivered.

Faults never fail a read: every Redis error or timeout (connect and socket timeouts are short),
including redis-py's cluster errors (:data:`~wxdata.cache.backends.clients.FAULTS`), is counted,
the breaker opens, and the caller falls back to PostgreSQL; after a cool-down one probe
is let through (half-open) and success closes it. If an *invalidation* could not be delivered the
backend owes a debt: before using Redis again — and in the background as soon as Redis answers —
it raises the fill floor and deletes every entry of the namespace (it cannot know which were
stale), then reports the recovery to its owner.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import redis
from returns.result import Success

from wxdata.cache.backends.base import ANY_TAG, MISS, Miss, SingleFlight
from wxdata.cache.backends.clients import FAULTS, LazyCluster, make_client, resolve, topology_of
from wxdata.cache.backends.layout import Layout, has_hash_tag
from wxdata.cache.crypto import Envelope
from wxdata.cache.keys import KeyBuilder
from wxdata.cache.serde import CorruptPayload, Unserialisable, dumps, is_frozen, loads_entry, thaw
from wxdata.cache.stats import COUNTERS, CacheStats, Counters, snapshot
from wxdata.safelog import log_error
from wxdata.schema.spec import registered

log = logging.getLogger("wxdata.cache")
T = TypeVar("T")

TAG_RECORD_TTL = 2 * 86_400
_CHUNK = 256
#: Tags per invalidation script call.
INVALIDATE_CHUNK = _CHUNK
REPLICA_WAIT_MS = 200
DEBT_RETRY = 0.1
#: Entries whose decoded form is kept per process (see :class:`OpenedEntries`).
OPENED_ENTRIES = 1024
#: Sealed entries larger than this are decoded on every hit (not kept).
OPENED_MAX_BYTES = 256 * 1024


_HIT = {"hits": 1, "hits_redis": 1}


def _nothing() -> None:
    """An operation that only lets a pending recovery run."""

__all__ = ["FAULTS", "INVALIDATE_CHUNK", "TAG_RECORD_TTL", "CircuitBreaker", "OpenedEntries",
           "RedisCache", "RedisUnavailable", "make_client"]


class Lua:
    """A script run by SHA (EVALSHA), loaded on the node that lacks it (EVAL) when needed."""

    __slots__ = ("sha", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()  # EVALSHA name

    def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run on the node owning the keys' slot (all keys must share it in a cluster)."""
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(self.text, len(keys), *keys, *args)

    async def acall(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The same through a ``redis.asyncio`` client."""
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return await client.eval(self.text, len(keys), *keys, *args)

_FILL = Lua("""
local token = tonumber(ARGV[1])
local n = tonumber(ARGV[4])
for i = 2, 2 + n do
  local s = redis.call('GET', KEYS[i])
  if s and tonumber(s) > token then return 0 end
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
local ttl = tonumber(ARGV[2])
for i = 3 + n, 2 + 2 * n do
  redis.call('SADD', KEYS[i], KEYS[1])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
""")

_INVALIDATE = Lua("""
local seq = redis.call('INCR', KEYS[1])
local n = tonumber(ARGV[1])
local removed = 0
for i = 2, 1 + n do redis.call('SET', KEYS[i], seq, 'EX', ARGV[2]) end
for i = 2 + n, 1 + 2 * n do
  local members = redis.call('SMEMBERS', KEYS[i])
  for j = 1, #members, 500 do
    removed = removed + redis.call('UNLINK', unpack(members, j, math.min(j + 499, #members)))
  end
  redis.call('UNLINK', KEYS[i])
end
return {seq, removed}
""")


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _labels(by_segment: dict[str, int]) -> dict[str, int]:
    """Re-key per-segment figures by entity name (``healthrecord`` -> ``HealthRecord``)."""
    names = {e.name.lower(): e.name for e in registered()}
    out: dict[str, int] = {}
    for seg, n in by_segment.items():
        label = names.get(seg, seg)
        out[label] = out.get(label, 0) + n
    return out


class OpenedEntries:
    """The decoded form of the last non-sensitive entries read, keyed by the exact sealed bytes.

    A hit whose ``GET`` returns byte for byte the entry this process already verified and decoded
    under the same key reuses that decoding instead of checking the MAC and parsing the JSON again:
    the bytes were authenticated for this key then, and decoding is deterministic. Redis stays the
    only source: nothing is served without the round trip, so an invalidated, expired or replaced
    entry (other bytes, or none) is never answered from here. Sensitive entries are never kept
    (their plaintext does not outlive the call). Bounded: :data:`OPENED_ENTRIES` keys, oldest
    dropped first; entries over :data:`OPENED_MAX_BYTES` are not kept.
    """

    __slots__ = ("_by_key", "_lock", "size")

    def __init__(self, size: int = OPENED_ENTRIES) -> None:
        self.size = size
        self._by_key: dict[str, tuple[bytes | str, Any, bool]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, blob: bytes | str) -> Any:
        """The decoded entry if ``blob`` is exactly the one decoded under ``key`` before, else MISS
        (a private copy of a mutable value: callers never share one)."""
        seen = self._by_key.get(key)
        if seen is None or seen[0] != blob:
            return MISS
        entry = seen[1]
        if seen[2]:
            return entry
        value, tags, expires = entry
        return (thaw(value), tags, expires)

    def put(self, key: str, blob: bytes | str, entry: Any) -> None:
        """Keep the decoded ``entry`` of ``blob`` under ``key`` (if small enough)."""
        if self.size <= 0 or len(blob) > OPENED_MAX_BYTES:
            return
        value = entry[0]
        frozen = is_frozen(value)
        kept = entry if frozen else (thaw(value), entry[1], entry[2])
        with self._lock:
            by_key = self._by_key
            by_key.pop(key, None)
            if len(by_key) >= self.size:
                del by_key[next(iter(by_key))]
            by_key[key] = (blob, kept, frozen)

    def clear(self) -> None:
        """Forget every kept entry."""
        with self._lock:
            self._by_key.clear()


class RedisUnavailable(Exception):
    """Internal: Redis could not be used for this operation (fault or open breaker)."""


class CircuitBreaker:
    """Closed -> open on a fault -> half-open after a cool-down (one probe) -> closed on success."""

    def __init__(self, cooldown: float = 0.5, max_cooldown: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base = cooldown
        self.max = max_cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until = 0.0
        self._cooldown = cooldown
        self._probing = False
        self.opened = 0

    @property
    def state(self) -> str:
        """closed, open or half-open."""
        if self._open_until == 0.0:
            return "closed"
        return "half-open" if self._probing else "open"

    def allow(self) -> bool:
        """Whether an operation may be attempted now."""
        if self._open_until == 0.0:
            return True
        with self._lock:
            if self._open_until == 0.0:
                return True
            if self._probing or self._clock() < self._open_until:
                return False
            self._probing = True
            return True

    def success(self) -> None:
        """An operation succeeded: close."""
        if self._open_until != 0.0:
            with self._lock:
                self._open_until = 0.0
                self._probing = False
                self._cooldown = self.base

    def failure(self) -> None:
        """An operation failed: open (longer each consecutive time)."""
        with self._lock:
            if self._open_until == 0.0:
                self.opened += 1
                self._cooldown = self.base
            else:
                self._cooldown = min(self.max, self._cooldown * 2)
            self._open_until = self._clock() + self._cooldown
            self._probing = False


class RedisCache:
    """Shared cache in Redis: sealed entries, guarded fills, tag sets, SCAN, breaker, debt recovery."""

    name = "redis"

    def __init__(
        self,
        client: Any,
        keys: KeyBuilder,
        envelope: Envelope,
        *,
        default_ttl: float = 900,
        breaker: CircuitBreaker | None = None,
        publish_stats_every: float | None = None,
    ) -> None:
        self._client = client
        #: the client itself when it needs no resolving (every topology but a lazy cluster)
        self._direct = None if isinstance(client, LazyCluster) else client
        self.topology = topology_of(client)
        self.keys = keys
        self.envelope = envelope
        self.default_ttl = float(default_ttl)
        self.breaker = breaker or CircuitBreaker()
        self.counters = Counters()
        self.flights = SingleFlight()
        self.opened = OpenedEntries()
        p = keys.prefix
        self.prefix = p
        self.layout = Layout(p, self.topology == "cluster" and not has_hash_tag(p))
        self.seq_key = self.layout.seq(0)
        self.any_key = self.layout.any(0)
        self.stats_key = f"{p}:_:stats"
        self.wait_replicas = 1 if self.topology == "sentinel" else 0
        self._debt = False
        self._debt_lock = threading.Lock()
        self._collector_lock = threading.Lock()
        self._collector: threading.Thread | None = None
        self.on_recovered: Callable[[], None] | None = None
        self.last_ok = 0.0
        self.first_failure = 0.0
        self._published: dict[str, dict[str, int]] = {}
        self.stats_source: Callable[[], dict[str, dict[str, int]]] = self.counters.raw
        self._stop = threading.Event()
        self._publisher: threading.Thread | None = None
        if publish_stats_every:
            self._publisher = threading.Thread(
                target=self._publish_loop, args=(publish_stats_every,),
                name="wxdata-cache-stats", daemon=True)
            self._publisher.start()

    @property
    def accepts_sensitive(self) -> bool:
        """PHI/FERPA values only when they are encrypted."""
        return self.envelope.encrypts

    @property
    def local(self) -> bool:
        """A hit is a round trip to Redis."""
        return False

    @property
    def client(self) -> Any:
        """The redis-py client (a cluster client is created on first use; may raise FAULTS)."""
        return resolve(self._client)

    @property
    def raw_client(self) -> Any:
        """The client as given (a cluster client possibly not yet created)."""
        return self._client

    @property
    def in_debt(self) -> bool:
        """True while an undelivered invalidation keeps this process off Redis."""
        return self._debt

    # --- plumbing -------------------------------------------------------------------------

    def tag_seq_key(self, tag_id: str, shard: int = 0) -> str:
        """Key recording a tag's last invalidation (in one shard)."""
        return self.layout.any(shard) if tag_id == ANY_TAG else self.layout.ts(shard, tag_id)

    def tag_set_key(self, tag_id: str, shard: int = 0) -> str:
        """Key of the SET of a shard's entries carrying a tag."""
        return self.layout.tagset(shard, tag_id)

    def entry_key(self, key: str) -> str:
        """The Redis key of an entry (with its shard's hash tag in a cluster)."""
        return self.layout.entry(key)

    def _run(self, entity: str, op: Callable[[], T]) -> T:
        """Run one Redis operation through the breaker; faults become RedisUnavailable (counted)."""
        self.admit(entity)
        try:
            if self._debt:
                self._recover()
            result = op()
        except FAULTS as exc:
            raise self.fault(entity, exc) from None
        self.succeeded()
        return result

    def _get(self, entity: str, rkey: str) -> Any:
        """``GET`` through the breaker: what :meth:`_run` does, without a closure (per hit)."""
        client = self._direct
        if client is None or self._debt or not self.breaker.allow():
            return self._run(entity, lambda: self.client.get(rkey))
        try:
            blob = client.get(rkey)
        except FAULTS as exc:
            raise self.fault(entity, exc) from None
        self.succeeded()
        return blob

    def admit(self, entity: str) -> None:
        """Raise RedisUnavailable (counted) while the breaker refuses operations."""
        if not self.breaker.allow():
            self.counters.add(entity, "unavailable")
            raise RedisUnavailable

    def fault(self, entity: str, exc: BaseException) -> RedisUnavailable:
        """Record a failed operation (breaker, counters, log); the exception to raise."""
        self.breaker.failure()
        self.counters.add(entity, "errors")
        if self.first_failure == 0.0:
            self.first_failure = time.monotonic()
        log.warning("cache: redis operation failed (%s); serving from the database",
                    type(exc).__name__)
        return RedisUnavailable()

    def succeeded(self) -> None:
        """Record a successful operation (closes the breaker)."""
        self.breaker.success()
        self.last_ok = time.monotonic()
        self.first_failure = 0.0

    def pay_debt(self) -> None:
        """Run a pending recovery now (raises RedisUnavailable if Redis still cannot be used)."""
        self._run("_", _nothing)

    def _recover(self) -> None:
        """Pay the debt: raise the fill floor, delete every entry, then tell the owner."""
        with self._debt_lock:
            if not self._debt:
                return
            self._raise_floor()
            self._delete_scan(f"{self.prefix}:*")
            self._debt = False
        log.warning("cache: redis reachable again; namespace flushed after a missed invalidation")
        if self.on_recovered is not None:
            self.on_recovered()

    def owe(self) -> None:
        """Record that an invalidation did not reach Redis.

        Recovery runs before this process's next use of Redis, and is retried in the background
        every :data:`DEBT_RETRY` seconds until paid: other processes may read the entries the lost
        invalidation should have removed only until Redis is reachable again from here.
        """
        self._debt = True
        with self._collector_lock:
            if self._collector is None and not self._stop.is_set():
                self._collector = threading.Thread(target=self._collect, name="wxdata-cache-debt",
                                                   daemon=True)
                self._collector.start()

    def _collect(self) -> None:
        while not self._stop.wait(DEBT_RETRY):
            with contextlib.suppress(RedisUnavailable):
                self._run("_", _nothing)  # recovery runs first (when the breaker allows)
            with self._collector_lock:
                if not self._debt:
                    self._collector = None
                    return

    def decode(self, key: str, blob: bytes | str, sensitive: bool, entity: str) -> Any:
        """Stored bytes to ``(value, tag ids, expires at)``, or MISS (counted; the caller drops it).

        Bytes this process already verified and decoded under ``key`` (non-sensitive entries
        only) are not verified and parsed again (:class:`OpenedEntries`)."""
        if not sensitive:
            entry = self.opened.get(key, blob)
            if entry is not MISS:
                return entry
        try:
            entry = loads_entry(self.envelope.open(key, _bytes(blob), sensitive))
        except CorruptPayload:
            self.counters.add(entity, "errors")
            log.warning("cache: unreadable entry dropped (entity %s)", entity)
            return MISS
        if not sensitive:
            self.opened.put(key, blob, entry)
        return entry

    def _open(self, key: str, blob: bytes, sensitive: bool, entity: str) -> Any:
        """Decode a stored entry to ``(value, tag ids, expires at)``, or MISS (counted, removed)."""
        entry = self.decode(key, blob, sensitive, entity)
        if entry is MISS:
            with contextlib.suppress(*FAULTS):
                self.client.unlink(self.layout.entry(key))
        return entry

    def token_key(self, key: str) -> str:
        """The invalidation sequence of an entry's shard (read on a miss: the fill token)."""
        return self.layout.seq(self.layout.shard(key))

    def hit(self, entry: Any, entity: str) -> bool:
        """Whether a decoded entry is a hit (counted)."""
        if entry is MISS or entry is None:
            return False
        self.counters.add_many(entity, _HIT)
        return True

    def missed(self, seq: Any, entity: str) -> Miss:
        """A miss (counted) carrying the sequence read after it, before any database read."""
        self.counters.add(entity, "misses")
        return Miss(int(seq or 0))

    # --- decorator face -------------------------------------------------------------------

    def lookup_entry(self, key: str, entity: str, sensitive: bool) -> Any:
        """``(value, tag ids, expires at)`` or a Miss carrying the sequence; faults raise RedisUnavailable."""
        rkey = self.layout.entry(key)
        blob = self._get(entity, rkey)
        if blob is not None:
            entry = self.decode(key, blob, sensitive, entity)
            if self.hit(entry, entity):
                return entry
            with contextlib.suppress(*FAULTS):
                self.client.unlink(rkey)
        # the fill token: read after the miss and before the caller reads PostgreSQL, so any
        # invalidation of a commit the caller's read cannot see has a later sequence
        seq_key = self.token_key(key)
        return self.missed(self._run(entity, lambda: self.client.get(seq_key)), entity)

    def lookup(self, key: str, entity: str, sensitive: bool) -> Any:
        """One round trip: ``Success(value)``, or a Miss with the sequence (``Miss(None)``: fault)."""
        try:
            entry = self.lookup_entry(key, entity, sensitive)
        except RedisUnavailable:
            self.counters.add(entity, "misses")
            return Miss(None)
        return entry if isinstance(entry, Miss) else Success(entry[0])

    def token(self, entity: str = "_", key: str = "") -> int:
        """The invalidation sequence of ``key``'s shard now (raises RedisUnavailable on a fault)."""
        seq_key = self.layout.seq(self.layout.shard(key))
        seq = self._run(entity, lambda: self.client.get(seq_key))
        return int(seq or 0)

    def encode(self, key: str, value: Any, sensitive: bool, entity: str,
               tag_ids: Collection[str] = (), ttl: float = 0.0) -> bytes | None:
        """Sealed bytes of ``(value, tag ids, expiry)``, or None (counted) if it cannot be stored."""
        if sensitive and not self.envelope.encrypts:
            self.counters.add(entity, "not_cacheable")
            return None
        try:
            payload = dumps((value, tuple(tag_ids), time.time() + ttl))
        except Unserialisable as exc:
            self.counters.add(entity, "not_cacheable")
            log_error(log, "cache: value not cacheable", exc, level=logging.WARNING)
            return None
        return self.envelope.seal(key, payload, sensitive)

    def fill(self, key: str, value: Any, *, ttl: float, tag_ids: Collection[str], token: Any,
             entity: str, sensitive: bool) -> bool:
        """Guarded store (one Lua call); False if refused, not cacheable or Redis failed."""
        return self.fill_status(key, value, ttl=ttl, tag_ids=tag_ids, token=token, entity=entity,
                                sensitive=sensitive) == "stored"

    def fill_status(self, key: str, value: Any, *, ttl: float, tag_ids: Collection[str],
                    token: Any, entity: str, sensitive: bool) -> str:
        """``stored``, ``stale`` (a tag was invalidated after the token) or ``skipped``."""
        blob = self.encode(key, value, sensitive, entity, tag_ids, ttl)
        if blob is None:
            return "skipped"
        return self.fill_blob(key, blob, ttl=ttl, tag_ids=tag_ids, token=token, entity=entity)

    def fill_blob(self, key: str, blob: bytes, *, ttl: float, tag_ids: Collection[str],
                  token: Any, entity: str) -> str:
        """Guarded store of already sealed bytes: ``stored``, ``stale`` or ``skipped``."""
        if token is None:
            return "skipped"
        keys, args = self.fill_args(key, blob, ttl, tag_ids, token)
        try:
            stored = self._run(entity, lambda: _FILL(self.client, keys, args))
        except RedisUnavailable:
            return "skipped"
        return self.fill_outcome(stored, entity)

    def fill_args(self, key: str, blob: bytes, ttl: float, tag_ids: Collection[str],
                  token: Any) -> tuple[list[str], list[bytes | int]]:
        """KEYS and ARGV of the guarded fill script (all in the entry's shard)."""
        tags = list(tag_ids)
        n = self.layout.shard(key)
        keys = [self.layout.entry(key), self.layout.any(n), *[self.tag_seq_key(t, n) for t in tags],
                *[self.tag_set_key(t, n) for t in tags]]
        args: list[bytes | int] = [int(token), max(1, int(ttl * 1000)), blob, len(tags)]
        return keys, args

    def fill_outcome(self, stored: Any, entity: str) -> str:
        """``stored`` or ``stale`` from the fill script's answer (counted)."""
        if stored:
            self.counters.add(entity, "sets")
            return "stored"
        self.counters.add(entity, "stale_fills_refused")
        return "stale"

    def invalidate(self, tag_ids: Collection[str]) -> int:
        """Invalidate tags in every shard (chunked Lua calls); on a fault, owe a flush first."""
        tags = list(dict.fromkeys(tag_ids))
        removed = 0
        for shard in range(self.layout.shards):
            for i in range(0, len(tags), _CHUNK):
                part = tags[i : i + _CHUNK]
                keys = self.invalidation_keys(shard, part)
                try:
                    removed += self._run("_", self._invalidator(keys, len(part)))
                except RedisUnavailable:
                    self.owe()
                    return removed
        if removed:
            self.counters.add("_", "deletes", removed)
        return removed

    def invalidation_keys(self, shard: int, tag_ids: Sequence[str]) -> list[str]:
        """KEYS of the invalidation script for some tags in one shard."""
        return [self.layout.seq(shard), *[self.tag_seq_key(t, shard) for t in tag_ids],
                *[self.tag_set_key(t, shard) for t in tag_ids]]

    @property
    def confirms_invalidations(self) -> bool:
        """Whether an invalidation waits for a replica (Sentinel, or a cluster: per slot)."""
        return bool(self.wait_replicas) or self.topology == "cluster"

    def _invalidator(self, keys: list[str], n: int) -> Callable[[], int]:
        def run() -> int:
            return self._invalidate_now(keys, n)

        return run

    def _invalidate_now(self, keys: list[str], n: int) -> int:
        """One invalidation script; confirmed by a replica (or owed) when the primary has one."""
        args = [n, TAG_RECORD_TTL]
        client = self.client
        if self.topology == "cluster":
            client = self._replicated_primary(client, keys[0])
        elif not self.wait_replicas:
            client = None
        if client is None:
            _, removed = _INVALIDATE(self.client, keys, args)
            return int(removed)
        pipe = client.pipeline(transaction=False)  # one connection: WAIT covers the script
        pipe.eval(_INVALIDATE.text, len(keys), *keys, *args)
        pipe.wait(1, REPLICA_WAIT_MS)
        try:
            (_, removed), acked = pipe.execute()
        except FAULTS:
            if self.topology == "cluster":  # the slot may have moved (failover): re-read the map
                with contextlib.suppress(*FAULTS):
                    self.client.nodes_manager.initialize()
            raise
        if int(acked) < 1:
            log.warning("cache: no replica confirmed an invalidation; the namespace will be flushed")
            self.owe()
        return int(removed)

    @staticmethod
    def _replicated_primary(cluster: Any, key: str) -> Any:
        """The plain client of the primary serving ``key``'s slot if it has a replica, else None.

        A cluster client routes each command by itself, so WAIT would not follow the script on
        its connection; the script and WAIT go together to the primary instead. A slot that moved
        meanwhile answers MOVED (a fault: the invalidation is owed and the slot map re-read).
        """
        slot = cluster.keyslot(key)
        nodes = cluster.nodes_manager.slots_cache.get(slot) or []
        if len(nodes) < 2:
            return None
        return cluster.get_redis_connection(nodes[0])

    def _raise_floor(self) -> None:
        """Invalidate the pseudo-tag every fill checks, in every shard (refuses older fills)."""
        for shard in range(self.layout.shards):
            keys = [self.layout.seq(shard), self.layout.any(shard),
                    self.tag_set_key(ANY_TAG, shard)]
            _INVALIDATE(self.client, keys, [1, TAG_RECORD_TTL])

    # --- manager face ---------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """The value under ``key`` or MISS (faults are a MISS)."""
        try:
            blob = self._run("_", lambda: self.client.get(self.layout.entry(key)))
        except RedisUnavailable:
            return MISS
        if blob is None:
            return MISS
        entry = self._open(key, _bytes(blob), False, "_")
        return MISS if entry is MISS else entry[0]

    def set(self, key: str, value: Any, ttl: float | None = None, *, tags: Iterable[str] = (),
            sensitive: bool = False, entity: str = "_") -> bool:
        """Store (unguarded: token = current sequence) with tag ids ``tags``."""
        try:
            token = self.token(entity, key)
        except RedisUnavailable:
            return False
        return self.fill(key, value, ttl=float(ttl if ttl is not None else self.default_ttl),
                         tag_ids=tuple(tags), token=token, entity=entity, sensitive=sensitive)

    def delete(self, key: str) -> bool:
        """Remove one entry."""
        try:
            n = self._run("_", lambda: self.client.unlink(self.layout.entry(key)))
        except RedisUnavailable:
            return False
        if n:
            self.counters.add("_", "deletes", int(n))
        return bool(n)

    def _scan(self, pattern: str, meta: bool = False) -> Iterator[bytes]:
        """Keys matching a glob (entries only unless ``meta``); a cluster client scans every primary."""
        internal = self.layout.meta.encode()
        for key in self.client.scan_iter(match=pattern, count=1000):
            if meta or not key.startswith(internal):
                yield key

    def _delete_scan(self, pattern: str, meta: bool = False) -> int:
        removed = 0
        batch: list[bytes] = []
        for key in self._scan(pattern, meta):
            batch.append(key)
            if len(batch) >= 500:
                removed += int(self.client.unlink(*batch))
                batch.clear()
        if batch:
            removed += int(self.client.unlink(*batch))
        return removed

    def _check_pattern(self, pattern: str) -> None:
        if not pattern.startswith(self.prefix + ":") or pattern.startswith(self.prefix + ":_:"):
            raise ValueError(f"pattern must start with {self.prefix}: (and not name internal keys)")

    def delete_pattern(self, pattern: str) -> int:
        """Remove entries matching a glob within the namespace, by SCAN (never KEYS)."""
        self._check_pattern(pattern)
        try:
            n = self._run("_", lambda: self._delete_scan(self.layout.pattern(pattern)))
        except RedisUnavailable:
            return 0
        self.counters.add("_", "deletes", n)
        return n

    def delete_tag(self, tag: str) -> int:
        """Invalidate a tag by its text."""
        return self.invalidate((self.keys.tag_id(tag),))

    def exists(self, key: str) -> bool:
        """Whether an entry exists."""
        try:
            return bool(self._run("_", lambda: self.client.exists(self.layout.entry(key))))
        except RedisUnavailable:
            return False

    def mget(self, keys: Sequence[str]) -> list[Any]:
        """Values or MISS, one round trip."""
        if not keys:
            return []
        rkeys = [self.layout.entry(k) for k in keys]

        def run() -> list[Any]:
            if self.topology == "cluster":
                return list(self.client.mget_nonatomic(rkeys))
            return list(self.client.mget(rkeys))

        try:
            blobs = self._run("_", run)
        except RedisUnavailable:
            return [MISS] * len(keys)
        out: list[Any] = []
        for k, b in zip(keys, blobs, strict=True):
            entry: Any = MISS if b is None else self._open(k, _bytes(b), False, "_")
            out.append(MISS if entry is MISS else entry[0])
        return out

    def mset(self, entries: Iterable[tuple[str, Any, float | None]]) -> None:
        """Store several entries in one pipeline (no tags)."""
        sealed = []
        for key, value, ttl in entries:
            life = ttl if ttl is not None else self.default_ttl
            blob = self.encode(key, value, False, "_", (), life)
            if blob is not None:
                sealed.append((self.layout.entry(key), blob, life))

        def run() -> None:
            pipe = self.client.pipeline(transaction=False)
            for key, blob, ttl in sealed:
                pipe.set(key, blob, px=max(1, int(ttl * 1000)))
            pipe.execute()

        try:
            self._run("_", run)
        except RedisUnavailable:
            return
        self.counters.add("_", "sets", len(sealed))

    def clear(self) -> None:
        """Raise the fill floor, then delete every entry and tag set of the namespace (SCAN)."""
        self.opened.clear()

        def run() -> int:
            self._raise_floor()
            return self._delete_scan(f"{self.prefix}:*") + self._delete_scan(
                self.layout.tagset_pattern(), meta=True)

        try:
            self._run("_", run)
        except RedisUnavailable:
            self.owe()

    # --- stats ----------------------------------------------------------------------------

    def facts(self) -> tuple[int, int, dict[str, int], dict[str, int]]:
        """(entries, bytes, entries per entity, bytes per entity) by SCAN + MEMORY USAGE."""
        keys: dict[str, int] = {}
        sizes: dict[str, int] = {}
        total_keys = 0
        total_bytes = 0
        plen = len(self.prefix) + 1
        batch: list[bytes] = []

        def flush() -> None:
            nonlocal total_bytes
            pipe = self.client.pipeline(transaction=False)
            for k in batch:
                pipe.memory_usage(k)
            for k, size in zip(batch, pipe.execute(), strict=True):
                seg = k[plen:].split(b":", 1)[0].decode(errors="replace")
                sizes[seg] = sizes.get(seg, 0) + int(size or 0)
                total_bytes += int(size or 0)
            batch.clear()

        for key in self._scan(f"{self.prefix}:*"):
            seg = key[plen:].split(b":", 1)[0].decode(errors="replace")
            keys[seg] = keys.get(seg, 0) + 1
            total_keys += 1
            batch.append(key)
            if len(batch) >= 500:
                flush()
        if batch:
            flush()
        return total_keys, total_bytes, keys, sizes

    def publish_stats(self) -> None:
        """Add this process's counter increments since the last call to the shared hash."""
        raw = self.stats_source()
        deltas: dict[str, int] = {}
        for entity, counts in raw.items():
            before = self._published.get(entity, {})
            for name, n in counts.items():
                d = n - before.get(name, 0)
                if d:
                    deltas[f"{entity}|{name}"] = d
        if not deltas:
            return
        pipe = self.client.pipeline(transaction=False)
        for field, d in deltas.items():
            pipe.hincrby(self.stats_key, field, d)
        pipe.execute()
        self._published = raw

    def shared_counters(self) -> dict[str, dict[str, int]]:
        """Counters published by every process (what ``wxdata cache stats`` shows)."""
        out: dict[str, dict[str, int]] = {}
        for field, value in self.client.hgetall(self.stats_key).items():
            entity, _, name = _bytes(field).decode().partition("|")
            if name in COUNTERS:
                out.setdefault(entity, dict.fromkeys(COUNTERS, 0))[name] = int(value)
        return out

    def _publish_loop(self, every: float) -> None:
        while not self._stop.wait(every):
            with contextlib.suppress(*FAULTS):
                self.publish_stats()

    def stats(self) -> CacheStats:
        """This process's counters, with the namespace's key count and memory (if reachable)."""
        details: dict[str, Any] = {"breaker": self.breaker.state, "in_debt": self._debt}
        try:
            count, total, keys, sizes = self._run("_", self.facts)
        except RedisUnavailable:
            count, total, keys, sizes = 0, 0, {}, {}
            details["reachable"] = False
        return snapshot(self.name, self.counters.raw(), keys=count, memory_bytes=total,
                        keys_by_entity=_labels(keys), bytes_by_entity=_labels(sizes),
                        details=details)

    def close(self) -> None:
        """Stop receiving write events and the stats publisher; close the connection pool."""
        from wxdata.cache.invalidation import unsubscribe

        unsubscribe(self)
        self._stop.set()
        collector = self._collector
        if collector is not None:
            collector.join(timeout=2)
        if self._publisher is not None:
            self._publisher.join(timeout=2)
            with contextlib.suppress(*FAULTS):
                self.publish_stats()
        self._client.close()
