"""Redis beyond one server: Cluster (hash-tagged shards, sharded pub/sub) and Sentinel (failover).

Against private servers started by the fixtures in ``tests/conftest.py`` (``redis_cluster``,
``redis_sentinel``) or by the test itself (failover tests kill a primary). Waits for a failover
are bounded polls, never timing assertions.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
import redis
import redis.sentinel
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot
from returns.result import Success

from tests.cache_support import SECRET, keys, poll, prefix, reader, redis_backend, tiered, wipe
from tests.redis_topologies import Cluster, SentinelSet, free_port, wait_for
from wxdata import ExecutionContext
from wxdata.cache.backends.base import Miss
from wxdata.cache.backends.layout import Layout
from wxdata.cache.backends.redis import CircuitBreaker, RedisCache, make_client
from wxdata.cache.cli import shared_stats
from wxdata.cache.crypto import Envelope
from wxdata.cache.factory import build_cache
from wxdata.cache.invalidation import subscribe, unsubscribe
from wxdata.cache.keys import KeyBuilder
from wxdata.config import ConfigError, Settings, load_settings
from wxdata.domains import students
from wxdata.redis_url import parse_redis_url

Conn = psycopg.Connection[Any]


@pytest.fixture(autouse=True)
def every_hit_served() -> Iterator[None]:
    """These tests are about what Redis serves across topologies and failovers, so every hit is
    served: with the weighing of recorded hits on (``CACHE_WEIGH_RECORDED_HITS``, tested in
    ``test_cache_shells.py``), a Redis hit with its record measured dearer than the read would
    send some calls to PostgreSQL instead, depending on timing."""
    from wxdata import config

    previous = config.configure(attrs.evolve(config.settings(), cache_weigh_recorded_hits=False))
    try:
        yield
    finally:
        config.configure(previous)


@pytest.fixture
def local_ctx(ctx: ExecutionContext, school: dict[str, Any]) -> ExecutionContext:
    """The nurse, scoped to the test's school (works with or without row-level security)."""
    return attrs.evolve(ctx, school_ids={school["school_id"]})


def primary_keys(cluster: Cluster, pattern: str) -> dict[int, int]:
    """How many keys match on each primary, scanning each node on its own."""
    out: dict[int, int] = {}
    for node in cluster.primaries():
        client = redis.Redis(port=node.port)
        try:
            out[node.port] = sum(1 for _ in client.scan_iter(match=pattern, count=1000))
        finally:
            client.close()
    return out


def replica_synced(port: int) -> bool:
    client = redis.Redis(port=port)
    try:
        return client.info("replication").get("master_link_status") == "up"
    finally:
        client.close()


def slot_of(cluster: Cluster, key: bytes | str) -> int:
    client = redis.Redis(port=cluster.nodes[0].port)
    try:
        return int(client.execute_command("CLUSTER", "KEYSLOT", key))
    finally:
        client.close()


# --- URLs ---------------------------------------------------------------------------------------

_host = st.from_regex(r"[a-z][a-z0-9-]{0,12}(\.[a-z0-9]{1,6}){0,2}", fullmatch=True)
_nodes = st.lists(st.tuples(_host, st.integers(1, 65535)), min_size=1, max_size=4)
_secret = st.text(st.characters(min_codepoint=48, max_codepoint=122).filter(str.isalnum),
                  min_size=8, max_size=20).map(lambda s: f"pw!{s}")  # never a host name


@given(nodes=_nodes, tls=st.booleans(), password=_secret)
def test_cluster_urls_parse_to_their_nodes(nodes: list[tuple[str, int]], tls: bool,
                                           password: str) -> None:
    hosts = ",".join(f"{h}:{p}" for h, p in nodes)
    scheme = "rediss+cluster" if tls else "redis+cluster"
    target = parse_redis_url(f"{scheme}://app:{password}@{hosts}")
    assert (target.kind, target.nodes, target.tls) == ("cluster", tuple(nodes), tls)
    assert (target.username, target.password) == ("app", password)
    assert password not in repr(target)
    load_settings({"REDIS_URL": f"{scheme}://{hosts}", "CACHE_BACKEND": "redis"})


@given(nodes=_nodes, service=st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True),
       db=st.none() | st.integers(0, 15))
def test_sentinel_urls_parse_to_service_and_db(nodes: list[tuple[str, int]], service: str,
                                               db: int | None) -> None:
    hosts = ",".join(f"{h}:{p}" for h, p in nodes)
    tail = "" if db is None else f"/{db}"
    target = parse_redis_url(f"redis+sentinel://{hosts}/{service}{tail}")
    assert (target.kind, target.nodes, target.service, target.db) == (
        "sentinel", tuple(nodes), service, db or 0)


_BAD = [
    "redis+cluster://",  # no node
    "redis+cluster://h1:6379,h2",  # a node without port
    "redis+cluster://h1:6379/0",  # a cluster has no databases
    "redis+cluster://h1:99999",  # port out of range
    "redis+cluster://h1:6379?x=1",  # query
    "redis+sentinel://h1:26379",  # no service
    "redis+sentinel://h1:26379/svc/x",  # db not a number
    "redis+sentinel://h1:26379/svc/1/2",  # too many segments
    "redis+sentinal://h1:26379/svc",  # unknown scheme
    "http://h1:6379",
]


@given(bad=st.sampled_from(_BAD), password=_secret)
def test_bad_redis_urls_name_the_variable_never_the_secret(bad: str, password: str) -> None:
    scheme, _, rest = bad.partition("://")
    url = f"{scheme}://u:{password}@{rest}" if rest else bad
    with pytest.raises(ConfigError) as err:
        load_settings({"REDIS_URL": url, "CACHE_BACKEND": "redis"})
    message = str(err.value)
    assert message.startswith("REDIS_URL ") and password not in message


@given(tag=st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True),
       around=st.from_regex(r"[A-Za-z0-9._-]{0,10}", fullmatch=True))
def test_prefix_may_carry_one_hash_tag(tag: str, around: str) -> None:
    assert KeyBuilder(SECRET, f"{around}{{{tag}}}").prefix == f"{around}{{{tag}}}"
    for bad in (f"{{{tag}", f"{tag}}}", f"{{{tag}}}{{{tag}}}", f"{around}{{}}", f"{{{tag}:x}}"):
        with pytest.raises(ValueError, match="hash tag"):
            KeyBuilder(SECRET, bad)


_prefixes = st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True)
_digest = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)


@given(ns=_prefixes, seg=st.sampled_from(["student", "school", "healthrecord", "fn"]),
       ident=st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True), digest=_digest,
       tags=st.lists(_digest, max_size=4))
def test_every_key_of_a_script_shares_the_entry_slot(ns: str, seg: str, ident: str, digest: str,
                                                    tags: list[str]) -> None:
    """In the sharded layout the fill script's keys (entry, records, tag sets) hash to one slot,
    and the invalidation script of that shard touches the same slot."""
    layout = Layout(ns, sharded=True)
    key = f"{ns}:{seg}:{ident}:{digest}"
    n = layout.shard(key)
    fill_keys = [layout.entry(key), layout.any(n), *[layout.ts(n, t) for t in tags],
                 *[layout.tagset(n, t) for t in tags]]
    invalidation_keys = [layout.seq(n), *[layout.ts(n, t) for t in tags],
                         *[layout.tagset(n, t) for t in tags]]
    assert len({key_slot(k.encode()) for k in fill_keys + invalidation_keys}) == 1
    assert fnmatch.fnmatchcase(layout.entry(key), layout.pattern(f"{ns}:{seg}:*"))
    assert not layout.entry(key).startswith(layout.meta)  # entries never look internal
    bus = {key_slot(f"{layout.bus_base}:{c}".encode()) for c in ("inval", "ack:a", "ack:b")}
    assert len(bus) == 1  # one connection carries messages, acknowledgements and PINGs


# --- Cluster --------------------------------------------------------------------------------------


@pytest.fixture
def cluster_ns(redis_cluster: Cluster) -> Iterator[str]:
    ns = prefix()
    yield ns
    wipe(redis_cluster.url, ns)


def test_cluster_scripts_touch_one_slot_and_hit(redis_cluster: Cluster, conn: Conn,
                                                local_ctx: ExecutionContext,
                                                make_student: Any) -> None:
    """Fills, lookups and invalidations run (no CROSSSLOT fallback), and reads are served from Redis."""
    ns = "wxt-slots"  # fixed: its 8 shard slots are known to spread over the 3 primaries
    wipe(redis_cluster.url, ns)
    cache = redis_backend(redis_cluster.url, ns)
    subscribe(cache)
    try:
        people = [make_student(grade="5") for _ in range(12)]
        get, calls = reader(cache)
        for p in people:
            assert get(conn, local_ctx, p.id) == Success(p)
            assert get(conn, local_ctx, p.id) == Success(p)
        assert calls[0] == 12
        stats = cache.stats()
        assert stats.total.hits == 12 and stats.total.hits_redis == 12 and stats.total.errors == 0
        assert stats.keys == 12  # every entry, on every primary
        per_node = primary_keys(redis_cluster, f"{ns}:*")
        assert sum(1 for n in per_node.values() if n) >= 2  # the namespace is spread out
        for shard in range(cache.layout.shards):  # each shard's keys share one slot
            shard_keys = [k for k in _all(redis_cluster, f"*{{{ns}:{shard}}}*")]
            assert len({slot_of(redis_cluster, k) for k in shard_keys}) <= 1
        assert students.update(conn, local_ctx, people[0].id, {"grade": "6"}).unwrap().grade == "6"
        assert get(conn, local_ctx, people[0].id).unwrap().grade == "6"
        assert cache.stats().total.errors == 0 and not cache.in_debt
    finally:
        unsubscribe(cache)
        cache.close()
        wipe(redis_cluster.url, ns)


def _all(cluster: Cluster, pattern: str) -> list[bytes]:
    found: list[bytes] = []
    for node in cluster.primaries():
        client = redis.Redis(port=node.port)
        try:
            found += list(client.scan_iter(match=pattern, count=1000))
        finally:
            client.close()
    return found


def test_cluster_clear_and_stats_see_every_node(redis_cluster: Cluster, cluster_ns: str) -> None:
    cache = redis_backend(redis_cluster.url, cluster_ns)
    try:
        tag = cache.keys.tag_id("entity:School")
        for i in range(40):
            assert cache.set(f"{cluster_ns}:school:{i}:{'a' * 64}", {"i": i}, ttl=60, tags=[tag],
                             entity="School")
        per_node = primary_keys(redis_cluster, f"{cluster_ns}:school:*")
        assert sum(per_node.values()) == 40 and sum(1 for n in per_node.values() if n) >= 2
        assert cache.stats().keys == 40
        config = Settings(cache_backend="redis", redis_url=redis_cluster.url, cache_key=SECRET)
        assert shared_stats(config, cluster_ns).keys == 40  # the CLI sees every primary too
        assert cache.delete_pattern(f"{cluster_ns}:school:1*") == 11
        cache.clear()
        assert sum(primary_keys(redis_cluster, f"{cluster_ns}:school:*").values()) == 0
        assert _all(redis_cluster, f"{cluster_ns}:_:*:tag:*") == []  # tag sets gone too
        assert cache.stats().keys == 0 and cache.stats().total.errors == 0
    finally:
        cache.close()


def test_cluster_invalidation_is_acknowledged_by_every_process(
        redis_cluster: Cluster, cluster_ns: str, db_url: str, conn: Conn,
        local_ctx: ExecutionContext, make_student: Any) -> None:
    """PUBLISH in a cluster reports 0 receivers; the bus must still wait for the other process."""
    a = tiered(redis_cluster.url, cluster_ns)
    b = tiered(redis_cluster.url, cluster_ns)
    subscribe(a)  # only A sees its write events; B learns through the bus
    try:
        assert a.bus.sharded and b.bus.sharded
        s = make_student(grade="5")
        read_a, _ = reader(a)
        read_b, calls_b = reader(b)
        with psycopg.connect(db_url, autocommit=True) as conn_b:
            for grade in ("6", "7", "8", "9"):
                assert read_b(conn_b, local_ctx, s.id).unwrap().grade != grade
                assert read_b(conn_b, local_ctx, s.id).unwrap().grade != grade  # memory hit
                assert students.update(conn, local_ctx, s.id, {"grade": grade}).unwrap().grade == grade
                assert read_b(conn_b, local_ctx, s.id).unwrap().grade == grade  # at once
                assert read_a(conn, local_ctx, s.id).unwrap().grade == grade
        assert a.bus.timeouts == 0 and b.bus.timeouts == 0
        total = b.stats().total
        assert total.hits_memory >= 4 and total.errors == 0 and calls_b[0] <= 5
    finally:
        unsubscribe(a)
        a.close()
        b.close()


def test_cluster_unreachable_never_fails_a_read(conn: Conn, local_ctx: ExecutionContext,
                                                make_student: Any) -> None:
    """Creating a cluster client raises RedisClusterException when no node answers: a fault."""
    url = f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    config = Settings(cache_backend="tiered", redis_url=url, cache_key=SECRET,
                      cache_encrypt_phi=True)
    built = build_cache(config, subscribe_writes=False, publish_stats_every=None)
    assert built is not None
    built.close()
    cache = redis_backend(url, prefix(), breaker=CircuitBreaker(cooldown=0.01, max_cooldown=0.02))
    subscribe(cache)
    try:
        s = make_student(grade="5")
        get, calls = reader(cache)
        for _ in range(5):
            assert get(conn, local_ctx, s.id) == Success(s)
            time.sleep(0.03)  # past the breaker's cool-down: every read tries the cluster
        assert calls[0] == 5
        assert students.update(conn, local_ctx, s.id, {"grade": "6"}).unwrap().grade == "6"
        assert get(conn, local_ctx, s.id).unwrap().grade == "6"
        total = cache.stats().total
        assert total.errors >= 5 and total.hits == 0 and cache.in_debt
        assert isinstance(cache.lookup(f"{cache.prefix}:x:1:{'a' * 64}", "X", False), Miss)
    finally:
        unsubscribe(cache)
        cache.close()


def test_hash_tagged_prefix_keeps_one_slot(redis_cluster: Cluster, conn: Conn,
                                           local_ctx: ExecutionContext, make_student: Any) -> None:
    ns = f"{{{prefix()}}}"
    cache = RedisCache(make_client(redis_cluster.url), keys(ns), Envelope(SECRET))
    subscribe(cache)
    try:
        assert not cache.layout.sharded
        people = [make_student() for _ in range(6)]
        get, calls = reader(cache)
        for p in people:
            get(conn, local_ctx, p.id)
            assert get(conn, local_ctx, p.id) == Success(p)
        assert calls[0] == 6 and cache.stats().total.errors == 0
        found = _all(redis_cluster, f"{ns.replace('{', '[{]').replace('}', '[}]')}:*")
        assert len(found) >= 6 and len({slot_of(redis_cluster, k) for k in found}) == 1
    finally:
        unsubscribe(cache)
        cache.close()
        wipe(redis_cluster.url, ns.replace("{", "[{]").replace("}", "[}]"))


# --- Failover -------------------------------------------------------------------------------------


def _failover_workload(url: str, namespace: str, db_url: str, ctx: ExecutionContext,
                       make_student: Any, kill: Callable[[], None],
                       failed_over: Callable[[], bool]) -> RedisCache:
    """Reads in a thread while the primary is killed; then a commit; nothing lost, nothing stale."""
    cache = redis_backend(url, namespace, timeout=0.25,
                          breaker=CircuitBreaker(cooldown=0.05, max_cooldown=0.2))
    subscribe(cache)
    people = [make_student(grade="5") for _ in range(4)]
    get, _ = reader(cache)
    committed = {p.id: "5" for p in people}
    lock = threading.Lock()
    failures: list[str] = []
    stop = threading.Event()
    reads = [0]

    def worker() -> None:
        with psycopg.connect(db_url, autocommit=True) as c:
            while not stop.is_set():
                for p in people:
                    with lock:  # a read never overlaps a write: the committed value is known
                        result = get(c, ctx, p.id)
                        expected = committed[p.id]
                    grade = result.map(lambda row: row.grade).value_or(None)
                    if grade is None:
                        failures.append("read failed")
                    elif grade != expected:
                        failures.append("stale read")
                    reads[0] += 1

    thread = threading.Thread(target=worker)
    with psycopg.connect(db_url, autocommit=True) as writer:
        try:
            thread.start()
            assert poll(lambda: cache.stats().total.hits_redis >= 8)
            kill()
            assert poll(failed_over, attempts=1200)
            for grade in ("6", "7"):  # commits after the failover
                with lock:
                    students.update(writer, ctx, people[0].id, {"grade": grade}).unwrap()
                    committed[people[0].id] = grade
                before = cache.stats().total.hits_redis
                assert poll(lambda b=before: cache.stats().total.hits_redis > b + 8, attempts=1200)
        finally:
            stop.set()
            thread.join()
            unsubscribe(cache)
    assert failures == [] and reads[0] > 0
    return cache


def test_sentinel_failover_loses_no_read_and_serves_nothing_stale(
        tmp_path: Path, db_url: str, local_ctx: ExecutionContext, make_student: Any) -> None:
    sentinels = SentinelSet(tmp_path).start()
    try:
        old = sentinels.master_port()
        cache = _failover_workload(
            sentinels.url, prefix(), db_url, local_ctx, make_student,
            kill=sentinels.primary.kill, failed_over=lambda: sentinels.master_port() != old)
        assert cache.stats().total.errors >= 1  # the dead primary was noticed...

        def master() -> int | None:  # the Sentinels may still be settling the failover
            try:
                return int(cache.client.connection_pool.get_master_address()[1])
            except redis.sentinel.MasterNotFoundError:
                return None

        assert poll(lambda: master() == sentinels.replica.port, attempts=400)  # ...and followed
        cache.close()
    finally:
        sentinels.stop()


def test_cluster_primary_failover_loses_no_read_and_serves_nothing_stale(
        tmp_path: Path, db_url: str, local_ctx: ExecutionContext, make_student: Any) -> None:
    """The killed primary is the one holding the bus: memory tiers must get their lease back and
    acknowledged invalidations must work through the promoted replica."""
    cluster = Cluster(tmp_path, primaries=3, replicas=1).start()
    try:
        ns = "wxt-failover"
        bus_slot = slot_of(cluster, f"{ns}:_:{{{ns}:bus}}:inval")
        victim = next(n for n in cluster.primaries() if bus_slot in _slots(n.port))
        process = tiered(cluster.url, ns, timeout=0.25,
                         breaker=CircuitBreaker(cooldown=0.05, max_cooldown=0.2))
        tag = process.keys.tag_id("entity:Nurse")
        process.invalidate([tag])  # every shard's record is on its replica when this returns
        assert not process.redis.in_debt
        replicas = [n for n in cluster.nodes if n not in cluster.primaries()]
        assert len(replicas) == 3
        assert sum(len(list(redis.Redis(port=n.port).scan_iter(match=f"*:ts:{tag}")))
                   for n in replicas) == process.redis.layout.shards
        cache = _failover_workload(
            cluster.url, ns, db_url, local_ctx, make_student, kill=victim.kill,
            failed_over=lambda: len(cluster.primaries()) == 3 and all(
                Cluster._ok(n.port) for n in cluster.primaries()))
        cache.close()
        assert poll(process.bus.lease_valid, attempts=1200)  # resubscribed on the new primary
        other = tiered(cluster.url, ns)
        try:
            tag = other.keys.tag_id("entity:School")
            key = f"{ns}:school:1:{'a' * 64}"
            assert other.memory.fill(key, 1, ttl=60, tag_ids=[tag], token=other.memory.token(),
                                     entity="School", sensitive=False)
            process.invalidate([tag])
            assert not other.memory.exists(key)  # acknowledged before invalidate() returned
            assert process.bus.timeouts == 0 and not process.redis.in_debt
        finally:
            other.close()
            process.close()
    finally:
        cluster.stop()


def _slots(port: int) -> set[int]:
    """The hash slots a primary serves, as it reports them."""
    client = redis.Redis(port=port)
    try:
        own = client.execute_command("CLUSTER", "MYID").decode()
        slots: set[int] = set()
        for start, end, *nodes in client.execute_command("CLUSTER", "SLOTS"):
            if nodes[0][2].decode() == own:
                slots.update(range(int(start), int(end) + 1))
        return slots
    finally:
        client.close()


def test_sentinel_invalidations_are_confirmed_by_a_replica(
        redis_sentinel: SentinelSet, caplog: pytest.LogCaptureFixture) -> None:
    """An invalidation no replica confirmed is owed, and the debt is paid in the background (the
    namespace flushed) without waiting for this process to use the cache again."""
    # the socket timeout well above WAIT's own (REPLICA_WAIT_MS): WAIT answers, not the socket
    cache = redis_backend(redis_sentinel.url, prefix(), timeout=2.0)
    try:
        assert cache.wait_replicas == 1
        k = f"{cache.prefix}:school:1:{'a' * 64}"
        tag = cache.keys.tag_id("entity:School")
        assert cache.set(k, 1, tags=[tag], entity="School")
        assert cache.invalidate([tag]) == 1 and not cache.in_debt
        replica = redis.Redis(port=redis_sentinel.replica.port)
        try:  # the replica has the invalidation record before invalidate() returned
            assert replica.get(cache.tag_seq_key(tag)) is not None and not replica.exists(k)
        finally:
            replica.close()
        untagged = f"{cache.prefix}:school:2:{'b' * 64}"
        assert cache.set(untagged, 2, entity="School")
        redis_sentinel.replica.kill()  # no replica can confirm: the invalidation is owed
        primary = redis.Redis(port=redis_sentinel.master_port())
        try:
            cache.invalidate([tag])
            assert "no replica confirmed an invalidation" in caplog.text
            assert poll(lambda: not primary.exists(untagged) and not cache.in_debt)
        finally:
            primary.close()
            redis_sentinel.replica.start()
            wait_for(lambda: replica_synced(redis_sentinel.replica.port), "replica resync")
    finally:
        wipe(redis_sentinel.url, cache.prefix)
        cache.close()
