"""Read throughput with N threads: primary only vs primary + one streaming replica.

``python -m benchmarks.bench_replicas [--threads 8] [--seconds 2] [--rounds 2] [--students 2000]``

Self-contained: builds a throw-away primary and streaming replica on this machine
(:class:`tests.local_cluster.LocalCluster`), migrates and seeds the primary, and runs each read
workload through three set-ups, interleaved round by round (forward, then reverse order) so drift
hits them alike:

- ``direct``: a pool on the primary without a checkout check, CRUD functions called on it (a PHI
  read's audit record rides in the same statement: one round trip);
- ``router/primary``: the :class:`~wxdata.replicas.Router` with no replica (reads on the primary,
  exactly as a direct call);
- ``router/replica``: the router with the replica (each read in a read-only unit of work on the
  replica: BEGIN + context, the statement, COMMIT; a PHI read's disclosure inserted on the primary
  through audit lane 2).

Figures are completed reads per second with ``--threads`` threads over each timed window (mean of
the rounds), and the mean latency of one read with a single thread. On a machine
with few cores the primary, the replica and the client share them, so the gain is bounded by CPU,
not by the database: read the numbers with ``os.cpu_count()`` (printed) in mind. Also printed: the
cost of :mod:`wxdata.observability` tracing on a primary-key fetch (off vs attached, nothing logged).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import psycopg
from returns.result import Result

from tests.local_cluster import LocalCluster
from wxdata import ExecutionContext, Purpose, Role, system_context
from wxdata.db import create_pool
from wxdata.domains import students
from wxdata.errors import DataError
from wxdata.migrate import migrate
from wxdata.observability import QueryLog, attach
from wxdata.replicas import Router, RouterConfig

Conn = psycopg.Connection[Any]
Read = Callable[[Conn, ExecutionContext, random.Random], Result[Any, DataError]]


def seed(cluster: LocalCluster, n: int) -> list[uuid.UUID]:
    """Migrate the primary, load ``n`` students (COPY), wait for the replica; return their ids."""
    with psycopg.connect(cluster.url("primary"), autocommit=True) as conn:
        migrate(conn)
        row = conn.execute("INSERT INTO districts (name, code) VALUES ('Bench', 'B-1') RETURNING id"
                           ).fetchone()
        assert row is not None
        district = row[0]
        row = conn.execute("INSERT INTO schools (name, code, district_id) VALUES "
                           "('Bench', 'S-1', %s) RETURNING id", (district,)).fetchone()
        assert row is not None
        school = row[0]
        rows = [{
            "student_number": f"B-{i:06d}", "first_name": f"First{i}", "last_name": f"Last{i % 97}",
            "date_of_birth": date(2010 + i % 6, 1 + i % 12, 1 + i % 28), "grade": str(1 + i % 8),
            "gender": "FEMALE" if i % 2 else "MALE", "enrollment_date": date(2020, 9, 1),
            "school_id": school, "district_id": district,
        } for i in range(n)]
        ids = students.bulk_create(conn, system_context("bench"), rows).unwrap()
        conn.execute("ANALYZE")
    cluster.wait_replayed("replica-1")
    return list(ids)


def workloads(ids: list[uuid.UUID]) -> dict[str, Read]:
    """The read workloads: PHI by primary key, PHI page + total, and a non-PHI count."""
    def by_id(conn: Conn, ctx: ExecutionContext, rnd: random.Random) -> Result[Any, DataError]:
        return students.find_by_id(conn, ctx, rnd.choice(ids))

    def page(conn: Conn, ctx: ExecutionContext, rnd: random.Random) -> Result[Any, DataError]:
        return students.find_many(conn, ctx, {"grade": str(rnd.randint(1, 8))},
                                  order_by=[("last_name", "asc")], limit=20)

    def count(conn: Conn, ctx: ExecutionContext, rnd: random.Random) -> Result[Any, DataError]:
        return students.count(conn, ctx, {"grade": str(rnd.randint(1, 8))})

    return {"pk fetch (PHI, audited)": by_id, "page 20 + total (PHI, audited)": page,
            "count (no PHI)": count}


def _ctx(i: int) -> ExecutionContext:
    return ExecutionContext(user_id=f"bench-{i}", role=Role.NURSE, purpose=Purpose.TREATMENT,
                            session_id=f"bench-s-{i}")


def via_router(router: Router, read: Read) -> Callable[[int, random.Random], None]:
    """One read through ``router`` (on a replica when it can)."""
    def call(i: int, rnd: random.Random) -> None:
        router.read(_ctx(i), lambda conn, ctx: read(conn, ctx, rnd)).unwrap()
    return call


def run_threads(threads: int, seconds: float, op: Callable[[int, random.Random], None]) -> float:
    """Run ``op`` in ``threads`` threads for ``seconds``; return completed operations per second."""
    start, stop = threading.Barrier(threads + 1), threading.Event()
    done = [0] * threads

    def worker(i: int) -> None:
        rnd = random.Random(i)
        op(i, rnd)  # warm: connection, prepared statements
        start.wait()
        n = 0
        while not stop.is_set():
            op(i, rnd)
            n += 1
        done[i] = n

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    return sum(done) / (time.perf_counter() - t0)


def main() -> None:
    """Build the cluster, run every workload in every set-up, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--students", type=int, default=2000)
    args = parser.parse_args()
    print(f"cpus={os.cpu_count()} threads={args.threads} window={args.seconds}s "
          f"rounds={args.rounds} students={args.students}")
    with LocalCluster.create(replicas=1) as cluster:
        ids = seed(cluster, args.students)
        config = RouterConfig(monitor=True, check_interval=1.0)
        n = args.threads
        direct = create_pool(cluster.url("primary"), min_size=n, max_size=n, name="bench-direct",
                             check=None)
        alone = Router.open(cluster.url("primary"), [], config=config, min_size=n, max_size=n)
        both = Router.open(cluster.url("primary"), [cluster.url("replica-1")], config=config,
                           min_size=n, max_size=n)
        direct.wait()
        try:
            results: dict[tuple[str, str], list[float]] = {}
            latency: dict[tuple[str, str], list[float]] = {}
            for name, read in workloads(ids).items():
                def on_direct(i: int, rnd: random.Random, read: Read = read) -> None:
                    with direct.connection() as conn:
                        read(conn, _ctx(i), rnd).unwrap()

                setups = [("direct", on_direct), ("router/primary", via_router(alone, read)),
                          ("router/replica", via_router(both, read))]
                for rnd_i in range(args.rounds):
                    order = setups if rnd_i % 2 == 0 else list(reversed(setups))
                    for label, op in order:
                        rate = run_threads(n, args.seconds, op)
                        results.setdefault((name, label), []).append(rate)
                        one = run_threads(1, args.seconds / 2, op)
                        latency.setdefault((name, label), []).append(1e6 / one)
            split = both.health()
            overhead = tracing_overhead(cluster, ids)
        finally:
            both.close()
            alone.close()
            direct.close()

    labels = ("direct", "router/primary", "router/replica")
    for title, table, unit in ((f"reads per second, {n} threads", results, "/s"),
                               ("latency of one read, 1 thread (us)", latency, "us")):
        print(f"\n{title}")
        print(f"{'workload':<32}{labels[0]:>12}{labels[1]:>16}{labels[2]:>16}"
              f"{'replica / primary':>20}")
        for name in workloads(ids):
            row = {label: statistics.mean(table[(name, label)]) for label in labels}
            print(f"{name:<32}{row[labels[0]]:>10.0f}{unit}{row[labels[1]]:>14.0f}{unit}"
                  f"{row[labels[2]]:>14.0f}{unit}{row[labels[2]] / row[labels[1]]:>19.2f}x")
    reads = {s.pool.name: s.reads for s in split.servers}
    print(f"\nreads served in the replica set-up: {reads} (fallbacks {dict(split.fallbacks)})")
    off, on = overhead
    print(f"observability on a pk fetch (1 thread): off {off:.1f} us, attached {on:.1f} us "
          f"(+{on - off:.1f} us, nothing logged)")


def tracing_overhead(cluster: LocalCluster, ids: list[uuid.UUID], n: int = 2000) -> tuple[float, float]:
    """Mean microseconds of a PHI primary-key fetch without and with tracing attached (best of 3)."""
    ctx = _ctx(0)
    rnd = random.Random(7)
    out: dict[bool, list[float]] = {False: [], True: []}
    for traced in (False, True) * 3:
        with psycopg.connect(cluster.url("primary"), autocommit=True) as conn:
            if traced:
                attach(conn, QueryLog(slow_ms=1e9))  # attached, below threshold: nothing logged
            for _ in range(200):
                students.find_by_id(conn, ctx, rnd.choice(ids)).unwrap()
            t0 = time.perf_counter()
            for _ in range(n):
                students.find_by_id(conn, ctx, rnd.choice(ids)).unwrap()
            out[traced].append((time.perf_counter() - t0) / n * 1e6)
    return min(out[False]), min(out[True])


if __name__ == "__main__":
    main()
