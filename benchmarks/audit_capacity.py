"""What the audit log sustains: records per second with N writers, and WAL bytes per audited read.

**Records per second** (:func:`audit_log_rate`, in each configuration): N threads (``--threads``,
default 8), each on its own ``wxdata.db.connect`` connection, write disclosure records through
``wxdata.audit.log_read`` (one record per call, autocommit: each is its own durable commit in A)
for ``--mixed-seconds`` per repetition, interleaved with the floor: raw psycopg writing the
leanest durable record (one narrow row into an unindexed table) from as many threads. The rate is
the number of records found afterwards (counted by the run's own request id, never by the calls
that returned) over the wall time of the repetition; a call that fails, or a record that is
missing, aborts the run.

**WAL bytes per audited read** (:func:`wal_per_read`, once per run: WAL volume does not depend on
the configuration): two scratch databases seeded alike, one with every migration (the current
schema), one migrated only up to the lean-index migrations (``sql/0210``, ``0211``, ``0212``: the
schema before them: B-tree ``created_at`` and ``action`` indexes, random uuid v4 ids, one
unpartitioned table). In each repetition, for each database in turn, ``--wal-reads`` audited PHI
reads (``health_records.find_by_id``) run on one connection; the figure is the delta of
``pg_stat_wal.wal_bytes`` over them divided by their number (the backend's pending statistics are
flushed with ``pg_stat_force_next_flush()`` before each reading). ``pg_stat_wal`` counts the whole
server: other sessions writing meanwhile inflate it, so the median and the minimum over
repetitions are both reported, beside a third row that reads nothing and only waits as long as the
current schema's reads took (what other sessions wrote in that time, per read); the figures are
only meaningful when that row is near zero. One more row, on the current schema: the same read
cached in process memory (``wxdata.cache.cached``), every call a hit, which writes the record it
owes in an INSERT of its own.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import attrs
import psycopg
from returns.result import Success

from benchmarks.common import (
    BenchmarkError,
    Env,
    Options,
    Result,
    config_conninfo,
    run_writers,
)

RATE_WORKLOAD = "audit log: records per second"
WAL_WORKLOAD = "WAL bytes per audited PHI read"
#: The first migration of the lean audit log: the "before" schema stops just before it.
LEAN_MIGRATIONS = "0210"
#: The WAL row of a cache hit: the same read served from process memory, its record written by
#: its own INSERT (on the current schema).
HIT_ROW = "current schema, the same read as a memory-cache hit (its record's own INSERT)"


@dataclass
class _Writer:
    """One way of writing records from N threads: ``op(i, pair)`` writes one record on thread i's
    connection; ``count()`` is the number of its records in the database."""

    name: str
    family: str
    op: Callable[[int, tuple[Any, Any]], bool]
    count: Callable[[], int]


def audit_log_rate(env: Env, *, log: Callable[[str], None] = print) -> list[Result]:
    """Records per second the audit log takes from ``--threads`` concurrent writers.

    Beside wxdata (``log_read``, one record per call), the floor: raw psycopg writing the leanest
    durable record (one narrow row, no index) from the same number of threads, interleaved.
    """
    from benchmarks.workloads import FLOOR_INSERT, floor_table
    from wxdata.audit import log_read
    from wxdata.db import connect
    from wxdata.schema import HEALTH_RECORDS

    opts = env.options
    writers = opts.mixed_threads
    request = f"req-rate-{env.tag}"
    ctx = attrs.evolve(env.ctx, request_id=request)
    pairs = _record_pairs(env)
    floor_table(env)
    counter = env.connection("prep")
    wx_conns = [connect(env.conninfo) for _ in range(writers)]
    raw_conns = [psycopg.connect(env.conninfo, autocommit=True) for _ in range(writers)]
    raw_cursors = [c.cursor() for c in raw_conns]

    def count(sql: str) -> Callable[[], int]:
        def run() -> int:
            row = counter.execute(sql, (request,)).fetchone()
            return int(row[0]) if row else 0
        return run

    def wx_op(i: int, pair: tuple[Any, Any]) -> bool:
        return isinstance(log_read(wx_conns[i], ctx, HEALTH_RECORDS, [pair[0]], subjects=[pair[1]]),
                          Success)

    def raw_op(i: int, pair: tuple[Any, Any]) -> bool:
        cur = raw_cursors[i]
        cur.execute(FLOOR_INSERT, (pair[0], pair[1], request), prepare=True)
        return cur.rowcount == 1

    kinds = [
        _Writer(f"wxdata.audit.log_read ({writers} connections, autocommit)", "wx", wx_op,
                count("SELECT count(*) FROM audit_log WHERE request_id = %s")),
        _Writer(f"raw psycopg, leanest durable record ({writers} connections, autocommit)",
                "floor", raw_op,
                count("SELECT count(*) FROM bench_floor_record WHERE user_id = %s")),
    ]

    def once(w: _Writer, seconds: float) -> tuple[int, int, float]:
        """(calls that succeeded, calls that failed, wall seconds) of one timed run."""
        return run_writers(writers, seconds, lambda i, k: w.op(i, pairs[k % len(pairs)]))

    samples: dict[str, list[float]] = {w.name: [] for w in kinds}
    rates: dict[str, list[float]] = {w.name: [] for w in kinds}
    totals: dict[str, int] = {w.name: 0 for w in kinds}
    try:
        for w in kinds:  # warm-up: prepared statements on every connection
            once(w, min(0.3, opts.mixed_seconds))
        for rep in range(opts.mixed_reps):
            k = rep % len(kinds)
            for w in kinds[k:] + kinds[:k]:
                before = w.count()
                good, bad, wall = once(w, opts.mixed_seconds)
                found = w.count() - before
                if bad or found != good or found == 0:
                    raise BenchmarkError(f"{RATE_WORKLOAD} / {w.name}: {bad} calls failed, "
                                         f"{good} succeeded, {found} records found")
                samples[w.name].append(wall / found * 1e6)
                rates[w.name].append(found / wall)
                totals[w.name] += found
    finally:
        for c in [*wx_conns, *raw_conns]:
            c.close()
    out = []
    for w in kinds:
        per_s = statistics.median(rates[w.name])
        r = Result(f"{RATE_WORKLOAD}, {writers} writers", w.name, env.config, samples[w.name],
                   totals[w.name] // max(1, opts.mixed_reps), w.family, w.family == "wx",
                   "audit_rate",
                   extra={"records_per_s": per_s, "writers": writers, "records": totals[w.name],
                          "seconds_per_rep": opts.mixed_seconds})
        out.append(r)
        log(f"  [{env.config}] {r.workload} / {w.name}: {per_s:,.0f} records/s")
    return out


def _record_pairs(env: Env) -> list[tuple[Any, Any]]:
    """(health record id, student id) pairs of the seeded data, drawn once per configuration."""
    def make() -> list[tuple[Any, Any]]:
        ids = env.data.record_ids[:5000]
        rows = env.connection("prep").execute(
            "SELECT id, student_id FROM health_records WHERE id = ANY(%s)", (ids,)).fetchall()
        if not rows:
            raise BenchmarkError(f"{RATE_WORKLOAD}: no health records seeded")
        return [(r[0], r[1]) for r in rows]

    return env.memo("record-pairs", make)  # type: ignore[no-any-return]


def wal_per_read(server: str, options: Options, *,
                 log: Callable[[str], None] = print) -> list[Result]:
    """WAL bytes per audited PHI read: the current schema and the schema before the lean indexes."""
    from benchmarks.seed import bench_database
    from wxdata.cache import cached
    from wxdata.cache.factory import build_cache
    from wxdata.config import settings
    from wxdata.domains import health_records
    from wxdata.schema import HEALTH_RECORDS

    scale = min(options.scale, 20_000)
    reads = options.wal_reads
    schemas = (("current schema (all migrations)", None),
               (f"before the lean-index migrations (migrations before {LEAN_MIGRATIONS})",
                LEAN_MIGRATIONS))
    background = "no read: other sessions' WAL over as long as the current schema's reads took"
    hit = HIT_ROW
    samples: dict[str, list[tuple[float, float, float]]] = {
        label: [] for label in [*(label for label, _ in schemas), hit, background]}
    envs: dict[str, Env] = {}
    with (
        bench_database(server, options, scale, options.records_per_student, log=log) as current,
        bench_database(server, options, scale, options.records_per_student, log=log,
                       migrations_before=LEAN_MIGRATIONS) as before,
    ):
        try:
            for (label, _), (url, data) in zip(schemas, (current, before), strict=True):
                envs[label] = Env("A", config_conninfo(url, "A"), options, data)
            # the same read cached in process memory: every call a hit, which writes its record
            first = envs[schemas[0][0]]
            memory = build_cache(attrs.evolve(settings(), cache_enabled=True,
                                              cache_backend="memory"),
                                 prefix="wxbench-wal", subscribe_writes=False,
                                 publish_stats_every=None)
            if memory is None:
                raise BenchmarkError(f"{WAL_WORKLOAD}: no memory cache was built")
            first.on_close(memory.close)
            cached_find = cached(HEALTH_RECORDS, cache=memory, name="bench.wal.record_by_id")(
                health_records.find_by_id)
            held = first.data.record_ids[:reads]
            for rid in held:
                if not isinstance(cached_find(first.wx, first.ctx, rid), Success):
                    raise BenchmarkError(f"{WAL_WORKLOAD} / {hit}: a read failed")

            took = [0.0]

            def run(label: str, count: int) -> tuple[float, float, float]:
                env = envs[schemas[0][0] if label in (background, hit) else label]
                conn, ctx = env.wx, env.ctx
                find = cached_find if label == hit else health_records.find_by_id
                ids = [env.rng.choice(held if label == hit else env.data.record_ids)
                       for _ in range(count)]
                w0 = _wal(conn)
                t0 = time.perf_counter()
                if label == background:
                    time.sleep(took[0])
                for rid in ids if label != background else ():
                    if not isinstance(find(conn, ctx, rid), Success):
                        raise BenchmarkError(f"{WAL_WORKLOAD} / {label}: a read failed")
                if label == schemas[0][0]:
                    took[0] = time.perf_counter() - t0
                w1 = _wal(conn)
                b, r, f = (b - a for a, b in zip(w0, w1, strict=True))
                return b / count, r / count, f / count

            for label in samples:  # warm-up: prepared statements, first-touch page images
                run(label, min(50, reads))
            for _ in range(options.reps):  # the idle wait follows the reads it stands beside
                for label in samples:
                    samples[label].append(run(label, reads))
        finally:
            for env in envs.values():
                env.close()
    out = []
    for label, xs in samples.items():
        r = Result(WAL_WORKLOAD, label, "-", [x[0] for x in xs], reads, "wal",
                   label == schemas[0][0], "wal",
                   extra={"unit": "bytes", "reads": reads, "students": scale,
                          "kind": ("background" if label == background
                                   else "hit" if label == hit else "schema"),
                          "wal_records": statistics.median(x[1] for x in xs),
                          "wal_fpi": statistics.median(x[2] for x in xs)})
        out.append(r)
        log(f"  {WAL_WORKLOAD} / {label}: median {r.median:.0f} bytes "
            f"({r.extra['wal_records']:.1f} records, {r.extra['wal_fpi']:.2f} full-page images), "
            f"min {r.lo:.0f} bytes")
    return out


def _wal(conn: psycopg.Connection[Any]) -> tuple[int, int, int]:
    """``pg_stat_wal`` (bytes, records, full-page images) after flushing this backend's statistics."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    row = conn.execute("SELECT wal_bytes, wal_records, wal_fpi FROM pg_stat_wal").fetchone()
    if row is None:
        raise BenchmarkError("pg_stat_wal has no row")
    return int(row[0]), int(row[1]), int(row[2])
