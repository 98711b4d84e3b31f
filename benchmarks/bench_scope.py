"""Cost of the school-scope policy: fetch a student by id as the application role.

Self-contained and independent of the rest of ``benchmarks`` (so the same file can measure any
version of wxdata on ``PYTHONPATH``): creates a database on ``--database-url`` (default
``DATABASE_URL``, a superuser), migrates it, installs a scope key when this wxdata signs its scope,
creates a LOGIN member of wxdata_app, seeds one school of students with plain SQL, then runs the
variants interleaved, ``--reps`` times ``--ops`` fetches each, and prints per-fetch medians (min-max)
and each variant's ratio to raw psycopg as the superuser (no row security) in the same repetition.

    python -m benchmarks.bench_scope --reps 9 --ops 2000
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from benchmarks._args import parse_with_database_url

Op = Callable[[uuid.UUID], Any]


def _setup(server: str, students: int) -> tuple[str, str, str, uuid.UUID, list[uuid.UUID]]:
    """Create, migrate and seed a database; returns (name, owner url, app url, school, ids)."""
    from wxdata.migrate import migrate

    name = f"wxdata_bench_scope_{uuid.uuid4().hex[:8]}"
    role, password = f"wxbench_scope_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(12)
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    owner = make_conninfo(server, dbname=name)
    with psycopg.connect(owner, autocommit=True) as conn:
        migrate(conn)
        try:
            from wxdata.roles import install_scope_key
            from wxdata.tx.token import scope_key, use_fallback_key
        except ImportError:  # a wxdata that trusts the plain settings: nothing to install
            pass
        else:
            key = scope_key()
            if key is None:
                key = secrets.token_bytes(32)
                use_fallback_key(key)
            install_scope_key(conn, key)
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE wxdata_app").format(
            sql.Identifier(role), sql.Literal(password)))
        district = conn.execute("INSERT INTO districts (name, code) VALUES ('D', %s) RETURNING id",
                                (f"BD-{name[-8:]}",)).fetchone()
        school = conn.execute(
            "INSERT INTO schools (name, code, district_id) VALUES ('S', %s, %s) RETURNING id",
            (f"BS-{name[-8:]}", district[0])).fetchone()
        conn.execute(
            "INSERT INTO students (student_number, first_name, last_name, date_of_birth, grade,"
            " gender, enrollment_date, school_id, district_id)"
            " SELECT 'BS-' || g, 'Ada', 'Lovelace', '2014-05-17', '5', 'FEMALE', '2020-09-01', %s, %s"
            " FROM generate_series(1, %s) g", (school[0], district[0], students))
        conn.execute("ANALYZE students")
        ids = [r[0] for r in conn.execute("SELECT id FROM students WHERE school_id = %s",
                                          (school[0],))]
    return name, owner, make_conninfo(owner, user=role, password=password), school[0], ids


def _drop(server: str, name: str, app: str) -> None:
    role = psycopg.conninfo.conninfo_to_dict(app)["user"]
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(str(role))))


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the table."""
    from returns.result import Success

    from wxdata import ExecutionContext, Purpose, Role
    from wxdata.config import configure, settings
    from wxdata.domains import students

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=9)
    p.add_argument("--ops", type=int, default=2000)
    p.add_argument("--students", type=int, default=5000)
    args = parse_with_database_url(p, argv)
    name, owner, app, school, ids = _setup(args.database_url, args.students)
    rng = random.Random(2026)
    ctx = ExecutionContext(user_id="u-bench-nurse", role=Role.NURSE, purpose=Purpose.TREATMENT,
                           school_ids={school}, request_id="req-bench-scope")
    audit_on = settings()
    audit_off = attrs.evolve(audit_on, audit_enabled=False)
    try:
        with psycopg.connect(owner, autocommit=True) as sup, \
                psycopg.connect(app, autocommit=True) as wx_conn:
            cur = sup.cursor()

            def raw(sid: uuid.UUID) -> Any:
                cur.execute("SELECT * FROM students WHERE id = %s AND deleted_at IS NULL", (sid,),
                            prepare=True)
                return cur.fetchone()

            def wx(sid: uuid.UUID) -> Any:
                result = students.find_by_id(wx_conn, ctx, sid)
                if not isinstance(result, Success):
                    raise RuntimeError(f"fetch failed: {result}")
                return result

            variants: list[tuple[str, Op, Any]] = [
                ("raw psycopg, superuser (no RLS), prepared", raw, audit_off),
                ("wxdata find_by_id, app role, audit off", wx, audit_off),
                ("wxdata find_by_id, app role, audited", wx, audit_on),
            ]
            times: dict[str, list[float]] = {v[0]: [] for v in variants}
            for _, op, config in variants:  # warm-up: prepared statements, caches
                configure(config)
                for sid in ids[:200]:
                    op(sid)
            for _ in range(args.reps):
                sample = [rng.choice(ids) for _ in range(args.ops)]
                for label, op, config in variants:
                    configure(config)
                    start = time.perf_counter()
                    for sid in sample:
                        op(sid)
                    times[label].append((time.perf_counter() - start) / args.ops * 1e6)
            configure(audit_on)
    finally:
        _drop(args.database_url, name, app)
    floor = times[variants[0][0]]
    print(f"fetch by id, {args.reps} interleaved reps x {args.ops} fetches, {args.students} "
          "students in one school (per-fetch µs: median (min-max); ratio: per-rep ratio to the "
          "raw superuser fetch, median (min-max))")
    for label, _, _ in variants:
        t = times[label]
        ratios = [a / b for a, b in zip(t, floor, strict=True)]
        print(f"  {label:46} {statistics.median(t):7.1f} µs ({min(t):.1f}-{max(t):.1f})  "
              f"{statistics.median(ratios):5.2f}x ({min(ratios):.2f}-{max(ratios):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
