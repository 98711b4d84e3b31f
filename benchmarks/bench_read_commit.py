"""``AUDIT_READ_COMMIT=async``: what it saves per audited read, and the window it opens.

For the PHI read of a health record by id (the record riding in the read's statement), on a
freshly migrated and seeded database, TCP loopback, durable server settings:

- time per read, ``durable`` vs ``async``, interleaved repetitions (median of the per-repetition
  means, min-max), with the bare prepared fetch as the reference;
- WAL writes per read (``pg_stat_wal.wal_write`` delta / reads): a durable commit writes (and
  flushes) the WAL itself, a relaxed one leaves it to the WAL writer;
- the **risk window**: for reads spaced ``--gap-ms`` apart, how long after ``find_by_id`` returned
  the WAL was still not flushed up to the position it had reached when the read returned (an upper
  bound of how long that read's record could be lost to a server crash). Polled from a second
  connection with ``pg_current_wal_flush_lsn()``; median, p95 and max.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python -m benchmarks.bench_read_commit --reps 7 --ops 300 --windows 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import psycopg

from benchmarks.common import Env, Options, owner_runs, publish
from benchmarks.seed import bench_database
from tests.wal_stats import wal_writes

FETCH = "SELECT * FROM health_records WHERE id = %s AND deleted_at IS NULL"


@contextmanager
def _mode(mode: str) -> Iterator[None]:
    from wxdata.config import configure, settings

    previous = settings()
    configure(attrs.evolve(previous, audit_enabled=True, audit_phi_access=True,
                           audit_read_commit=mode))
    try:
        yield
    finally:
        configure(previous)


def _pct(xs: list[float], p: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def run(args: argparse.Namespace) -> str:
    """Seed, measure, the Markdown report."""
    from wxdata.domains import health_records

    server = args.database_url or os.environ["DATABASE_URL"]
    options = Options(database_url=server, reps=args.reps)
    out: list[str] = []
    with bench_database(server, options, args.students, 3, log=lambda _: None) as (url, data):
        env = Env("A", url, options, data)
        try:
            owner_runs(url)
            ctx, wx, raw = env.ctx, env.wx, env.raw
            probe = psycopg.connect(url, autocommit=True)
            settings_rows = raw.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('synchronous_commit', 'fsync', 'wal_writer_delay', 'wal_sync_method') "
                "ORDER BY name").fetchall()
            ids = [data.record_ids[i % len(data.record_ids)] for i in range(args.ops)]
            cur = raw.cursor()

            def bare(rid: Any) -> Any:
                cur.execute(FETCH, (rid,), prepare=True)
                return cur.fetchone()

            def read(rid: Any) -> Any:
                return health_records.find_by_id(wx, ctx, rid).unwrap()

            variants: dict[str, tuple[Callable[[Any], Any], str | None]] = {
                "bare prepared fetch (raw psycopg)": (bare, None),
                "wxdata audited read, durable (default)": (read, "durable"),
                "wxdata audited read, AUDIT_READ_COMMIT=async": (read, "async"),
            }
            times: dict[str, list[float]] = {name: [] for name in variants}
            writes: dict[str, list[float]] = {name: [] for name in variants}
            names = list(variants)
            for rep in range(-1, args.reps):  # rep -1 warms up (statements prepared)
                order = names[rep % len(names):] + names[:rep % len(names)] if rep >= 0 else names
                for name in order:
                    op, mode = variants[name]
                    with _mode(mode or "durable"):
                        w0 = wal_writes(wx if mode else raw, probe)
                        t0 = time.perf_counter_ns()
                        for rid in ids:
                            op(rid)
                        elapsed = (time.perf_counter_ns() - t0) / 1000 / len(ids)
                        w1 = wal_writes(wx if mode else raw, probe)
                    if rep >= 0:
                        times[name].append(elapsed)
                        writes[name].append((w1 - w0) / len(ids))

            base = times[names[0]]
            out += [f"- load average (1 min) after the timed runs: {os.getloadavg()[0]:.2f}",
                    "- server: " + ", ".join(f"{n}={s}" for n, s in settings_rows), "",
                    "## Time per read and WAL writes per read", "",
                    "| variant | µs/read median (min-max) | ratio to bare fetch | WAL writes/read |",
                    "|---|---|---|---|"]
            for name in names:
                xs = times[name]
                ratios = [x / b for x, b in zip(xs, base, strict=True)]
                out.append(f"| {name} | {statistics.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})"
                           f" | {statistics.median(ratios):.2f}x | "
                           f"{statistics.median(writes[name]):.2f} |")

            out += ["", "## Risk window: time after a read returned until the WAL was flushed "
                    "past it", "",
                    f"{args.windows} reads per mode, {args.gap_ms} ms apart; polled from a second "
                    "connection.", "",
                    "| mode | median | p95 | max | reads already flushed on return |",
                    "|---|---|---|---|---|"]
            for mode in ("durable", "async"):
                spans: list[float] = []
                flushed = 0
                with _mode(mode):
                    for rid in ids[:args.windows]:
                        read(rid)
                        returned = time.perf_counter()
                        row = probe.execute("SELECT pg_current_wal_insert_lsn(), "
                                            "pg_current_wal_flush_lsn()").fetchone()
                        assert row is not None
                        target, done = row
                        if done >= target:
                            flushed += 1
                            spans.append(0.0)
                        else:
                            while True:
                                row = probe.execute("SELECT pg_current_wal_flush_lsn()").fetchone()
                                if row is not None and row[0] >= target:
                                    break
                            spans.append((time.perf_counter() - returned) * 1000)
                        time.sleep(args.gap_ms / 1000)
                out.append(f"| {mode} | {statistics.median(spans):.2f} ms | "
                           f"{_pct(spans, 0.95):.2f} ms | {max(spans):.2f} ms | "
                           f"{flushed} of {len(spans)} |")
            out.append("")
            probe.close()
        finally:
            env.close()
    return "\n".join(out)


def main() -> None:
    """Command line: print the report (and write it with ``--output``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=7.0)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report = (f"# AUDIT_READ_COMMIT: durable vs async read records\n\n- run: {started}; "
              f"students {args.students}, reps {args.reps}, ops {args.ops}\n" + run(args))
    publish(report, args.output)


if __name__ == "__main__":
    main()
