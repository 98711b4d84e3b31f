"""Wall time of wxdata's audited writes to a table of many rules: its rules as table CHECKs or as
domains.

Two databases on the server of ``--database-url`` (a superuser), alike but for how the domain
tables hold the rules of their single columns: one migrated with the migrations before
``sql/0221`` (each rule the table CHECK it was), one with every migration (each rule its column's
domain). Each gets one student. wxdata's audited ``vital_signs.create`` of a measurement with
every vital sign (thirteen rules) and ``vital_signs.update`` of who measured it (a column with
no rule: an UPDATE ran every CHECK of its table whatever it set) run on both as the owner, with
``synchronous_commit=off`` in both sessions (the CPU cost, not the disk's), in ``--reps``
interleaved repetitions of ``--ops`` calls each, the order of the two databases alternating.
Reported: the median time per call over the repetitions (min-max) and the ratio of the
domains' to the CHECKs'.

    python -m benchmarks.bench_rule_writes --reps 7 --ops 1000

Server instructions for the same comparison, exact and independent of the machine's load:
:mod:`benchmarks.bench_check_instructions`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from benchmarks._args import parse_with_database_url

#: The first migration whose rules are domains: the "table CHECKs" database stops before it.
FIRST_DOMAINS = "0221_"
VARIANTS = ("table CHECKs", "domains")


def _database(server: str, name: str, before: str | None) -> str:
    """Create ``name``, migrate it (only the files sorting before ``before``, when given) and
    give it one district, school and student; its URL."""
    from wxdata.migrate import migrate, sql_dir

    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(server, dbname=name)
    folder = None
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            if before is not None:
                folder = Path(tempfile.mkdtemp(prefix="wxdata-rules-"))
                for f in sorted(sql_dir().glob("*.sql")):
                    if f.name < before:
                        shutil.copy(f, folder / f.name)
            migrate(conn, folder)
            conn.execute(
                "WITH d AS (INSERT INTO districts (name, code) VALUES ('D', 'RW') RETURNING id),"
                " s AS (INSERT INTO schools (name, code, district_id) SELECT 'S', 'RW', id FROM d"
                " RETURNING id, district_id)"
                " INSERT INTO students (student_number, first_name, last_name, date_of_birth,"
                " grade, gender, enrollment_date, school_id, district_id)"
                " SELECT 'RW-1', 'Ada', 'Lovelace', '2014-05-17', '5', 'FEMALE', '2020-09-01', id,"
                " district_id FROM s")
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    return url


def _drop(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


def _measurement(student: Any) -> dict[str, Any]:
    return {"student_id": student, "measurement_date": datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
            "temperature": 98.6, "temperature_unit": "F", "heart_rate": 82,
            "respiratory_rate": 18, "blood_pressure_systolic": 112,
            "blood_pressure_diastolic": 72, "oxygen_saturation": 98.0, "weight": 41.5,
            "weight_unit": "kg", "height": 148.0, "height_unit": "cm", "bmi": 18.9, "pain": 1}


def run(args: argparse.Namespace) -> str:
    """Create and migrate both databases, time the writes interleaved, drop the databases; the
    Markdown report."""
    from returns.pipeline import is_successful

    from wxdata import ExecutionContext, Purpose, Role
    from wxdata.config import configure, settings
    from wxdata.db import connect
    from wxdata.domains import vital_signs

    tag = uuid.uuid4().hex[:8]
    names = {variant: f"wxdata_bench_rules_{i}_{tag}" for i, variant in enumerate(VARIANTS)}
    before = settings()
    configure(attrs.evolve(before, allow_privileged_connection=True, audit_enabled=True))
    conns: dict[str, psycopg.Connection[Any]] = {}
    try:
        for variant in VARIANTS:
            url = _database(args.database_url, names[variant],
                            FIRST_DOMAINS if variant == "table CHECKs" else None)
            conns[variant] = connect(url)
            conns[variant].execute("SET synchronous_commit = off")
        ctx = ExecutionContext(user_id="u-bench-nurse", role=Role.NURSE,
                               purpose=Purpose.TREATMENT, request_id="req-bench-rules")
        students = {v: c.execute("SELECT id FROM students").fetchone()[0]  # type: ignore[index]
                    for v, c in conns.items()}

        def creates(variant: str) -> list[Any]:
            conn, values = conns[variant], _measurement(students[variant])
            ids = [vital_signs.create(conn, ctx, values).map(_id).value_or(None)
                   for _ in range(args.ops)]
            if None in ids:
                raise RuntimeError(f"{variant}: a create failed")
            return ids

        def updates(variant: str, ids: list[Any]) -> None:
            conn = conns[variant]
            for i, key in enumerate(ids):
                if not is_successful(vital_signs.update(conn, ctx, key, {"measured_by": f"n{i}"})):
                    raise RuntimeError(f"{variant}: an update failed")

        times: dict[tuple[str, str], list[float]] = {
            (statement, variant): [] for statement in ("create", "update") for variant in VARIANTS}
        for variant in VARIANTS:  # warm-up: statements prepared, caches filled
            updates(variant, creates(variant)[:50])
        for rep in range(args.reps):
            order = VARIANTS if rep % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                started = time.perf_counter()
                ids = creates(variant)
                times[("create", variant)].append((time.perf_counter() - started) / args.ops)
                started = time.perf_counter()
                updates(variant, ids)
                times[("update", variant)].append((time.perf_counter() - started) / args.ops)
        server = conns["domains"].execute("SHOW server_version").fetchone()
    finally:
        for c in conns.values():
            c.close()
        for name in names.values():
            _drop(args.database_url, name)
        configure(before)
    out = [f"PostgreSQL {server[0] if server else '?'}; {args.reps} interleaved repetitions of "
           f"{args.ops} calls; load average at the end {os.getloadavg()[0]:.2f}; time per call, "
           "median (min-max) over the repetitions:", "",
           "| wxdata, audited | rules as table CHECKs | rules as domains | domains / CHECKs |",
           "|---|---|---|---|"]
    for statement, label in (("create", "`vital_signs.create`, every vital sign"),
                             ("update", "`vital_signs.update` of `measured_by`")):
        cells = [_cell(times[(statement, v)]) for v in VARIANTS]
        ratio = (statistics.median(times[(statement, "domains")])
                 / statistics.median(times[(statement, "table CHECKs")]))
        out.append(f"| {label} | {cells[0]} | {cells[1]} | {ratio:.2f}x |")
    return "\n".join(out) + "\n"


def _id(row: Any) -> Any:
    return row.id


def _micro(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def _cell(values: list[float]) -> str:
    """The median (min-max) of per-call times."""
    return f"{_micro(statistics.median(values))} ({_micro(min(values))}-{_micro(max(values))})"


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--ops", type=int, default=1000)
    args = parse_with_database_url(p, argv)
    print("# wxdata's audited writes to vital_signs: its rules as table CHECKs and as domains\n")
    print(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
