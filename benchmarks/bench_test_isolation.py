"""Per-test isolation cost of the ``wxdata.testing`` fixtures' candidates.

For one small test body (insert a district, read it back), the time of:

- ``shared``: the session database, rows unique per test, nothing undone (what ``wx_conn`` does);
- ``rollback``: the body inside a transaction rolled back after the test;
- ``clone``: a database cloned from the migrated template for the test (connect, body, drop): what
  ``wx_fresh_database`` does.

Repetitions are interleaved (each round runs every variant, in rotating order); the report gives
each variant's median with min-max, the ratio of medians to ``shared`` and the load average.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python -m benchmarks.bench_test_isolation --rounds 30
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from wxdata.testing import (
    clone_database,
    configured_server_url,
    create_migrated_database,
    drop_database,
    unique_name,
)


def _body(conn: psycopg.Connection[Any]) -> None:
    tag = uuid.uuid4().hex[:8]
    row = conn.execute("INSERT INTO districts (name, code) VALUES (%s, %s) RETURNING id",
                       (f"District {tag}", f"D-{tag}")).fetchone()
    assert row is not None
    conn.execute("SELECT name FROM districts WHERE id = %s", (row[0],)).fetchone()


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    server = configured_server_url()
    template = unique_name("wx_bench_tmpl")
    create_migrated_database(server, template, os.urandom(32))
    session_name = unique_name("wx_bench_session")
    session_url = clone_database(server, template, session_name)
    try:
        shared = psycopg.connect(session_url, autocommit=True)
        wrapped = psycopg.connect(session_url)

        def run_shared() -> None:
            _body(shared)

        def run_rollback() -> None:
            _body(wrapped)
            wrapped.rollback()

        def run_clone() -> None:
            name = unique_name("wx_bench_clone")
            url = clone_database(server, template, name)
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    _body(conn)
            finally:
                drop_database(server, name)

        variants: dict[str, Callable[[], None]] = {
            "shared": run_shared, "rollback": run_rollback, "clone": run_clone}
        for run in variants.values():  # warm-up
            run()
        times: dict[str, list[float]] = {name: [] for name in variants}
        load_before = os.getloadavg()
        names = list(variants)
        for i in range(args.rounds):
            for name in names[i % len(names):] + names[:i % len(names)]:
                started = time.perf_counter()
                variants[name]()
                times[name].append((time.perf_counter() - started) * 1000)
        load_after = os.getloadavg()
        shared.close()
        wrapped.close()
    finally:
        drop_database(server, session_name)
        drop_database(server, template)
    base = statistics.median(times["shared"])
    print(f"rounds={args.rounds} load(1m) before={load_before[0]:.2f} after={load_after[0]:.2f} "
          f"cpus={os.cpu_count()}")
    print(f"{'variant':10} {'median ms':>10} {'min-max ms':>18} {'x shared':>9}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:10} {median:10.2f} {min(values):8.2f}-{max(values):<9.2f} {median / base:9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
