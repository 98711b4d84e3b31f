"""Redis cache operations per topology: one server, a 3-primary Cluster, Sentinel.

``python -m benchmarks.bench_redis_topologies --start [--n 2000] [--reps 5]`` starts private
servers (tests/redis_topologies.py: loopback, temp folders, killed at the end);
``--url REDIS_URL`` (repeatable) measures existing deployments instead, on a namespace of its
own that is deleted afterwards.

For each topology: a Redis hit (``lookup``: one MGET), a guarded fill with 3 tags (one script), an
invalidation of 3 tags (one script per shard: 1 flat, 8 in a cluster; behind Sentinel followed
by WAIT for a replica) and a tiered invalidation with a second process acknowledging it. Figures:
median over repetitions of the mean µs per operation (min-max of those means).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _time(op: Callable[[int], Any], n: int, reps: int) -> tuple[float, float, float]:
    means = []
    for _ in range(reps):
        start = time.perf_counter()
        for i in range(n):
            op(i)
        means.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(means), min(means), max(means)


def measure(name: str, url: str, n: int, reps: int) -> list[tuple[str, str, tuple[float, ...]]]:
    """Timings of the cache's Redis operations on one topology."""
    from wxdata.cache.backends.clients import make_client, resolve
    from wxdata.cache.backends.memory import MemoryCache
    from wxdata.cache.backends.redis import RedisCache
    from wxdata.cache.backends.tiered import TieredCache
    from wxdata.cache.crypto import Envelope, key_hash_key
    from wxdata.cache.keys import KeyBuilder

    secret = os.urandom(32)
    ns = f"wxbench-{uuid.uuid4().hex[:10]}"
    keys = KeyBuilder(key_hash_key(secret), ns)

    def backend() -> RedisCache:
        return RedisCache(make_client(url, socket_timeout=2.0, connect_timeout=2.0), keys,
                          Envelope(secret))

    cache = backend()
    tags = [keys.tag_id(f"row:School:{i}") for i in range(3)]
    entry = [f"{ns}:school:{i}:{'a' * 64}" for i in range(n)]
    for k in entry:
        cache.set(k, {"name": "x" * 100}, ttl=600, tags=tags, entity="School")
    out = []
    out.append((name, "redis hit (lookup)",
                _time(lambda i: cache.lookup(entry[i], "School", False), n, reps)))
    out.append((name, "guarded fill, 3 tags",
                _time(lambda i: cache.fill(entry[i], {"v": i}, ttl=600, tag_ids=tags,
                                           token=cache.token("School", entry[i]),
                                           entity="School", sensitive=False), n, reps)))
    small = max(50, n // 10)
    out.append((name, "invalidate 3 tags",
                _time(lambda i: cache.invalidate(tags), small, reps)))
    a = TieredCache(MemoryCache(keys, max_size=10_000), backend(), ping_every=0.05)
    b = TieredCache(MemoryCache(keys, max_size=10_000), backend(), ping_every=0.05)
    a.bus.wait_ready(5)
    b.bus.wait_ready(5)
    out.append((name, "tiered invalidate, 1 peer acks",
                _time(lambda i: a.invalidate(tags), small, reps)))
    errors = cache.stats().total.errors + a.stats().total.errors
    for c in (a, b, cache):
        c.close()
    client = resolve(make_client(url, socket_timeout=5.0, connect_timeout=5.0))
    for key in client.scan_iter(match=f"{ns}:*", count=1000):
        client.unlink(key)
    client.close()
    if errors:
        raise RuntimeError(f"{name}: {errors} cache faults during the run")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print a table."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_redis_topologies",
                                description=__doc__)
    p.add_argument("--url", action="append", default=[], help="a REDIS_URL to measure")
    p.add_argument("--start", action="store_true", help="start private single/cluster/sentinel")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args(argv)
    targets = [(u.split("://", 1)[0], u) for u in args.url]
    started: list[Any] = []
    try:
        if args.start:
            from tests.redis_topologies import Cluster, Node, SentinelSet

            folder = Path(tempfile.mkdtemp(prefix="wxbench-redis-"))
            single = Node(folder, ["--save", "", "--appendonly", "no"]).start()
            cluster = Cluster(folder / "cluster").start()
            sentinel = SentinelSet(folder / "sentinel").start()
            started += [single, cluster, sentinel]
            targets += [("single", f"redis://127.0.0.1:{single.port}/0"),
                        ("cluster (3 primaries)", cluster.url),
                        ("sentinel (1 replica)", sentinel.url)]
        rows = [r for name, url in targets for r in measure(name, url, args.n, args.reps)]
    finally:
        for s in started:
            s.stop() if hasattr(s, "stop") else s.kill()
    print(f"{'topology':<24}{'operation':<34}{'median µs':>12}{'min-max':>20}")
    for name, op, (med, lo, hi) in rows:
        print(f"{name:<24}{op:<34}{med:>12.1f}{f'{lo:.1f}-{hi:.1f}':>20}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
