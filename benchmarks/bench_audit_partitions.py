"""audit_log partitioned by month vs the unpartitioned table: insert, seal, verify, reports, size.

Two databases on the same server, same run: **flat** (migrations before
``0212_audit_log_partitioned.sql``: one table) and **partitioned** (every migration). Each is filled
with the same ``--records`` audit records spread evenly over ``--months`` months ending now
(``INSERT ... SELECT generate_series``, one statement), then:

- single-record insert (a prepared INSERT of one READ record, autocommit), the two databases
  interleaved, ``--reps`` repetitions of ``--ops`` inserts: median µs (min-max);
- a sealing run over every record, then ``verify`` (the full chain walk): seconds;
- reports: one user's records in a one-month window, and a month's counts by action
  (``--reps`` runs each, median ms);
- total size of audit_log and of its indexes.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        python -m benchmarks.bench_audit_partitions --records 10000000 --months 60
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

KEY = b"bench-audit-partitions-key-0123456789"
FILL = (
    "INSERT INTO audit_log (action, entity_type, entity_id, entity_ids, subject_student_id, "
    "subject_ids, user_id, user_role, purpose, is_phi, compliance_type, severity, tags, created_at) "
    "SELECT 'READ', 'HealthRecord', e, ARRAY[e], s, ARRAY[s], 'u-' || (g %% 500), 'NURSE', "
    "'TREATMENT', true, 'HIPAA', 'MEDIUM', '{healthrecord,read}', "
    "now() - make_interval(months => %(months)s) "
    "+ (g::float8 / %(n)s) * (make_interval(months => %(months)s) - interval '1 minute') "
    "FROM generate_series(1, %(n)s) g, LATERAL (SELECT gen_random_uuid() AS e, "
    "('00000000-0000-4000-8000-' || lpad(to_hex(g %% 50000), 12, '0'))::uuid AS s) x"
)
ONE = (
    "INSERT INTO audit_log (action, entity_type, entity_id, entity_ids, subject_student_id, "
    "subject_ids, user_id, user_role, purpose, is_phi, compliance_type, severity) "
    "VALUES ('READ', 'HealthRecord', %s, ARRAY[%s]::uuid[], %s, ARRAY[%s]::uuid[], 'u-bench', "
    "'NURSE', 'TREATMENT', true, 'HIPAA', 'MEDIUM')"
)
#: The reports' shapes (wxdata.audit.reports binds the window, so the planner prunes months).
USER_REPORT = (
    "SELECT a.seq, a.created_at, a.action, a.entity_type, a.entity_id FROM audit_log a "
    "WHERE a.user_id = 'u-7' AND a.created_at >= %(since)s AND a.created_at < %(until)s "
    "ORDER BY a.created_at, a.seq LIMIT 100"
)
MONTH_STATS = (
    "SELECT a.action, count(*) FROM audit_log a WHERE a.created_at >= %(since)s "
    "AND a.created_at < %(until)s GROUP BY a.action"
)
INDEX_SIZES = (
    "SELECT coalesce(p.inhparent::regclass::text, i.indexrelid::regclass::text), "
    "sum(pg_relation_size(i.indexrelid)) FROM pg_index i "
    "LEFT JOIN pg_inherits p ON p.inhrelid = i.indexrelid "
    "WHERE i.indrelid = 'audit_log'::regclass OR i.indrelid IN "
    "(SELECT inhrelid FROM pg_inherits WHERE inhparent = 'audit_log'::regclass) "
    "GROUP BY 1 ORDER BY 1"
)
SIZE = (
    "SELECT coalesce(sum(pg_total_relation_size(r)), 0), coalesce(sum(pg_indexes_size(r)), 0) "
    "FROM (SELECT 'audit_log'::regclass AS r UNION ALL SELECT inhrelid::regclass FROM pg_inherits "
    "WHERE inhparent = 'audit_log'::regclass) t"
)


def _database(server: str, folder: Path) -> tuple[str, str]:
    from wxdata.migrate import migrate

    name = f"wxdata_bench_part_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(server, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn, folder)
    return name, url


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(args: argparse.Namespace) -> str:
    """Build both databases, measure, drop them; the Markdown report."""
    from wxdata.audit.chain import seal, verify
    from wxdata.migrate import sql_dir

    server = args.database_url or os.environ["DATABASE_URL"]
    tmp = Path(tempfile.mkdtemp(prefix="wxbench-sql-"))
    flat_dir = tmp / "flat"
    flat_dir.mkdir()
    for f in sql_dir().glob("*.sql"):
        if f.name < "0212_":
            shutil.copy(f, flat_dir / f.name)
    variants = {"flat": _database(server, flat_dir), "partitioned": _database(server, sql_dir())}
    out = [f"records {args.records}, months {args.months}, reps {args.reps}, ops {args.ops}, "
           f"load average at start {os.getloadavg()[0]:.2f}", ""]
    try:
        conns = {k: psycopg.connect(url, autocommit=True) for k, (_, url) in variants.items()}
        rows: dict[str, dict[str, str]] = {k: {} for k in conns}
        for k, conn in conns.items():
            conn.execute("SET maintenance_work_mem = '256MB'")
            if k == "partitioned":  # the months of the filled range exist before the fill
                conn.execute("SELECT count(*) FROM audit_log_ensure_partitions(3, now() - "
                             "make_interval(months => %s))", (args.months,))
            t0 = time.perf_counter()
            conn.execute(FILL, {"n": args.records, "months": args.months})
            rows[k]["fill (one INSERT ... SELECT)"] = f"{time.perf_counter() - t0:.1f} s"
            conn.execute("VACUUM ANALYZE audit_log")
        # single inserts, interleaved
        samples: dict[str, list[float]] = {k: [] for k in conns}
        cursors = {k: c.cursor() for k, c in conns.items()}
        for rep in range(args.reps):
            for k in (list(conns) if rep % 2 == 0 else list(conns)[::-1]):
                cur = cursors[k]
                ids = [(uuid.uuid4(), uuid.uuid4()) for _ in range(args.ops)]
                t0 = time.perf_counter_ns()
                for e, s in ids:
                    cur.execute(ONE, (e, e, s, s), prepare=True)
                samples[k].append((time.perf_counter_ns() - t0) / 1000 / args.ops)
        for k, xs in samples.items():
            rows[k]["single-record insert, µs median (min-max)"] = (
                f"{statistics.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})")
        now = datetime.now(UTC)
        window = {"since": now - timedelta(days=45), "until": now - timedelta(days=15)}
        for k, conn in conns.items():
            for name, query in (("user report, one month window", USER_REPORT),
                                ("month stats by action", MONTH_STATS)):
                conn.execute(query, window).fetchall()
                times = [_timed(lambda c=conn, q=query: c.execute(q, window).fetchall()) * 1000
                         for _ in range(args.reps)]
                rows[k][f"{name}, ms median (min-max)"] = (
                    f"{statistics.median(times):.1f} ({min(times):.1f}-{max(times):.1f})")
            t0 = time.perf_counter()
            seal(conn, KEY).unwrap()
            t_seal = time.perf_counter() - t0
            t0 = time.perf_counter()
            report = verify(conn, KEY).unwrap()
            t_verify = time.perf_counter() - t0
            rows[k]["seal every record"] = f"{t_seal:.1f} s"
            rows[k]["verify (full walk)"] = (f"{t_verify:.1f} s, ok={report.ok}, "
                                             f"{report.verified} verified")
            size = conn.execute(SIZE).fetchone()
            assert size is not None
            rows[k]["audit_log total / indexes"] = (f"{int(size[0]) / 2**20:.0f} MB / "
                                                    f"{int(size[1]) / 2**20:.0f} MB")
            for index, nbytes in conn.execute(INDEX_SIZES).fetchall():
                rows[k].setdefault(f"index {index}", "-")
                rows[k][f"index {index}"] = f"{int(nbytes) / 2**20:.1f} MB"
            parts = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = "
                                 "'audit_log'::regclass").fetchone()
            rows[k]["partitions"] = str(parts[0] if parts else 0)
        for c in conns.values():
            c.close()
        keys = list(dict.fromkeys([*rows["flat"], *rows["partitioned"]]))
        out += ["| measure | flat | partitioned |", "|---|---|---|"]
        out += [f"| {m} | {rows['flat'].get(m, '-')} | {rows['partitioned'].get(m, '-')} |"
                for m in keys]
        out.append("")
        out.append(f"load average at end {os.getloadavg()[0]:.2f}")
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            for name, _ in variants.values():
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)
    return "\n".join(out) + "\n"


def main() -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database-url", default=None)
    p.add_argument("--records", type=int, default=10_000_000)
    p.add_argument("--months", type=int, default=60)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--ops", type=int, default=300)
    print(run(p.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
