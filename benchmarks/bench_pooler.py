"""Transaction-pooler benchmark: what ``DB_POOLER=transaction`` (or ``transaction-prepared``)
behind PgBouncer costs.

Two workloads, each in four variants, on one database, in one process, interleaved:

- **fetch by id**: ``students.find_by_id`` (a PHI read: its READ record rides in the statement);
- **audited create**: ``students.create`` (validation, INSERT ... RETURNING with its CREATE record).

Variants:

- **direct** — ``DB_POOLER=none`` straight to PostgreSQL: named prepared statements, timeouts as
  startup options (the default and the fastest);
- **direct, pooler-mode statements** — ``DB_POOLER=transaction`` settings but straight to
  PostgreSQL: unnamed statements and the timeouts' ``set_config`` pipelined with each statement,
  no proxy; the share of the cost that is wxdata's own;
- **through PgBouncer** — ``DB_POOLER=transaction`` through a PgBouncer in ``pool_mode =
  transaction`` on the same host: everything above plus the proxy's hop;
- **through PgBouncer, statements kept** — ``DB_POOLER=transaction-prepared`` through a PgBouncer
  (1.21 or newer) with ``max_prepared_statements = 200``: named prepared statements again, the
  timeouts still per transaction, plus the proxy's hop.

Method: one connection per variant, opened once; each repetition runs one batch of every variant,
the order rotating between repetitions; the settings of the variant are installed around its batch
(``wxdata.config.configure``); inputs are drawn before the clock starts; every result is checked.
Reported: the median over repetitions of the mean µs per operation, the min-max of those means,
and the ratio of medians to the direct variant.

Run: ``python -m benchmarks.bench_pooler [--reps 9] [--ops 400] [--students 2000]
[--database-url URL] [--output FILE.md]``. It creates, migrates, seeds and drops its own database
and starts two private PgBouncers (``pgbouncer`` 1.21 or newer must be installed: ``bash
.ci/pgbouncer`` builds one; as root they run as ``postgres``).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import attrs
import psycopg
from psycopg.conninfo import make_conninfo

VARIANTS = ("direct", "direct, pooler-mode statements", "through PgBouncer",
            "through PgBouncer, statements kept")


@dataclass
class Figure:
    """One variant of one workload: per-repetition means (µs per operation)."""

    workload: str
    variant: str
    samples_us: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median of the per-repetition means."""
        return statistics.median(self.samples_us)


@dataclass
class Lane:
    """A variant's connection and settings."""

    variant: str
    conn: psycopg.Connection[Any]
    settings: Any


def _school(conn: psycopg.Connection[Any]) -> tuple[uuid.UUID, uuid.UUID]:
    tag = uuid.uuid4().hex[:8]
    d = conn.execute("INSERT INTO districts (name, code) VALUES ('D', %s) RETURNING id",
                     (f"BP-D-{tag}",)).fetchone()
    assert d is not None
    s = conn.execute("INSERT INTO schools (name, code, district_id) VALUES ('S', %s, %s) "
                     "RETURNING id", (f"BP-S-{tag}", d[0])).fetchone()
    assert s is not None
    return s[0], d[0]


_counter = [0]


def _values(school: tuple[uuid.UUID, uuid.UUID]) -> dict[str, Any]:
    _counter[0] += 1
    return {"student_number": f"BP-{uuid.uuid4().hex[:8]}-{_counter[0]}", "first_name": "Ada",
            "last_name": "Lovelace", "date_of_birth": date(2014, 5, 17), "grade": "5",
            "gender": "FEMALE", "enrollment_date": date(2020, 9, 1),
            "school_id": school[0], "district_id": school[1]}


def _batch(workload: str, lane: Lane, ctx: Any, ids: list[uuid.UUID],
           school: tuple[uuid.UUID, uuid.UUID], ops: int) -> float:
    """Mean µs per operation of one batch (inputs drawn before the clock starts)."""
    from returns.result import Success

    from wxdata.config import configure
    from wxdata.domains import students

    previous = configure(lane.settings)
    try:
        if workload == "fetch by id":
            keys = [random.choice(ids) for _ in range(ops)]
            start = time.perf_counter_ns()
            results = [students.find_by_id(lane.conn, ctx, k) for k in keys]
            elapsed = time.perf_counter_ns() - start
            bad = sum(1 for k, r in zip(keys, results, strict=True)
                      if not (isinstance(r, Success) and r.unwrap().id == k))
        else:
            rows = [_values(school) for _ in range(ops)]
            start = time.perf_counter_ns()
            results = [students.create(lane.conn, ctx, v) for v in rows]
            elapsed = time.perf_counter_ns() - start
            bad = sum(1 for v, r in zip(rows, results, strict=True)
                      if not (isinstance(r, Success)
                              and r.unwrap().student_number == v["student_number"]))
    finally:
        configure(previous)
    if bad:
        raise RuntimeError(f"{workload} / {lane.variant}: {bad} of {ops} results wrong")
    return elapsed / ops / 1000.0


def measure(lanes: list[Lane], ctx: Any, ids: list[uuid.UUID],
            school: tuple[uuid.UUID, uuid.UUID], reps: int, ops: int) -> list[Figure]:
    """Interleaved repetitions; the variant order rotates between repetitions."""
    figures = {(w, lane.variant): Figure(w, lane.variant)
               for w in ("fetch by id", "audited create") for lane in lanes}
    for workload in ("fetch by id", "audited create"):
        for lane in lanes:  # warm-up: connections, statements, caches
            _batch(workload, lane, ctx, ids, school, max(ops // 4, 10))
    for rep in range(reps):
        order = lanes[rep % len(lanes):] + lanes[:rep % len(lanes)]
        for workload in ("fetch by id", "audited create"):
            for lane in order:
                figures[(workload, lane.variant)].samples_us.append(
                    _batch(workload, lane, ctx, ids, school, ops))
    return list(figures.values())


def report(figures: list[Figure], meta: dict[str, str]) -> str:
    """The Markdown report."""
    out = ["# Transaction pooler: direct vs PgBouncer (transaction mode, statements passed or kept)", ""]
    out += [f"- {k}: {v}" for k, v in meta.items()]
    out += ["", "| workload | variant | median µs/op | min-max | ratio to direct |",
            "|---|---|---:|---:|---:|"]
    base = {f.workload: f.median for f in figures if f.variant == "direct"}
    for f in figures:
        out.append(f"| {f.workload} | {f.variant} | {f.median:.1f} | "
                   f"{min(f.samples_us):.1f}-{max(f.samples_us):.1f} | "
                   f"{f.median / base[f.workload]:.2f}x |")
    return "\n".join(out) + "\n"


def _version(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return "unknown"
    return (done.stdout or done.stderr).splitlines()[0] if (done.stdout or done.stderr) else "?"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print (and optionally write) the Markdown report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_pooler")
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--ops", type=int, default=400)
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.database_url:
        print("bench_pooler: DATABASE_URL or --database-url is required", file=sys.stderr)
        return 2

    import secrets

    from psycopg import sql as q

    from tests.pgbouncer import PgBouncer
    from wxdata import ExecutionContext, Purpose, Role, system_context
    from wxdata.config import configure, settings
    from wxdata.db import connect
    from wxdata.domains import students
    from wxdata.migrate import migrate
    from wxdata.roles import ensure_app_role, install_scope_key
    from wxdata.tx.token import scope_key, use_fallback_key

    name = f"wx_bench_pooler_{uuid.uuid4().hex[:8]}"
    app_user, app_password = f"wx_bench_app_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(18)
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(args.database_url, dbname=name)
    bouncer = PgBouncer(args.database_url).start()
    keeping = PgBouncer(args.database_url, keeps_statements=True).start()
    opened: list[psycopg.Connection[Any]] = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
            key = scope_key()
            if key is None:  # a key for this run: the policies verify what wxdata signs
                key = secrets.token_bytes(32)
                use_fallback_key(key)
            install_scope_key(conn, key)
            ensure_app_role(conn, app_user, app_password)
            school = _school(conn)
            rows = [_values(school) for _ in range(args.students)]
            ids = list(students.bulk_create(conn, system_context("bench-seed"), rows).unwrap())
            conn.execute("VACUUM ANALYZE")
        direct = attrs.evolve(settings(), pooler="none")
        pooled = attrs.evolve(settings(), pooler="transaction")
        kept = attrs.evolve(settings(), pooler="transaction-prepared")
        lanes = []
        app_url = make_conninfo(url, user=app_user, password=app_password)
        for variant, target, config in ((VARIANTS[0], app_url, direct),
                                        (VARIANTS[1], app_url, pooled),
                                        (VARIANTS[2], bouncer.url(app_url), pooled),
                                        (VARIANTS[3], keeping.url(app_url), kept)):
            previous = configure(config)  # the connection's first-use checks read the settings
            try:
                conn = connect(target, config=config)
            finally:
                configure(previous)
            opened.append(conn)
            lanes.append(Lane(variant, conn, config))
        ctx = ExecutionContext(user_id="u-bench", role=Role.NURSE, purpose=Purpose.TREATMENT,
                               school_ids=frozenset({school[0]}), request_id="bench-pooler")
        load = os.getloadavg()[0]
        figures = measure(lanes, ctx, ids, school, args.reps, args.ops)
        load_after = os.getloadavg()[0]
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        meta = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python -m benchmarks.bench_pooler " + " ".join(argv or sys.argv[1:]),
            "PostgreSQL": str(row[0]) if row else "?",
            "PgBouncer": _version(["pgbouncer", "--version"]),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, TCP loopback, shared host",
            "repetitions x operations": f"{args.reps} x {args.ops} per variant",
            "role": "an application login role: row-level security applies (signed scope)",
            "git": _version(["git", "rev-parse", "--short", "HEAD"]),
            "load average (1 min)": f"{load:.2f} at start, {load_after:.2f} at end",
        }
        text = report(figures, meta)
    finally:
        for conn in opened:
            conn.close()
        bouncer.stop()
        keeping.stop()
        with psycopg.connect(args.database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(q.SQL("DROP ROLE IF EXISTS {}").format(q.Identifier(app_user)))
    print(text)
    if args.output is not None:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
