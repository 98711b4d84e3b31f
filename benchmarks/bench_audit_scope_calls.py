"""Scope verifications per statement, and the server-side time of a scoped fetch by id.

Creates and migrates a database (the wxdata on ``PYTHONPATH``), installs a scope key, seeds one
student and one health record, then as ``wxdata_app`` (row security on) with a signed token:

- counts the calls of ``wxdata_scope_claims()`` (the HMAC verification) made by one fetch by id
  of each table (``track_functions = all``, ``pg_stat_xact_user_functions``): deterministic;
- times ``--loops`` fetches in a server-side loop (no client, no network), ``--reps`` times:
  median µs per fetch (min-max).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        python -m benchmarks.bench_audit_scope_calls --reps 7
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import uuid
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

CALLS = ("SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions "
         "WHERE funcname = 'wxdata_scope_claims'")
CLOCK = "SELECT extract(epoch FROM clock_timestamp())"


def _seed(c: psycopg.Connection[Any]) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    d = c.execute("INSERT INTO districts (name, code) VALUES ('D', 'D1') RETURNING id").fetchone()
    assert d is not None
    s = c.execute("INSERT INTO schools (name, code, district_id) VALUES ('S', 'S1', %s) "
                  "RETURNING id", (d[0],)).fetchone()
    assert s is not None
    st = c.execute(
        "INSERT INTO students (student_number, first_name, last_name, date_of_birth, grade, "
        "gender, enrollment_date, school_id, district_id, created_by, updated_by) VALUES "
        "('N1', 'A', 'B', '2014-01-01', '5', 'FEMALE', '2020-09-01', %s, %s, 'u', 'u') "
        "RETURNING id", (s[0], d[0])).fetchone()
    assert st is not None
    h = c.execute(
        "INSERT INTO health_records (student_id, record_type, title, description, record_date) "
        "VALUES (%s, 'ILLNESS', 't', 'd', '2024-01-01') RETURNING id", (st[0],)).fetchone()
    assert h is not None
    return s[0], st[0], h[0]


def run(server: str, reps: int, loops: int) -> list[str]:
    """Measure in a throw-away database; one line per table."""
    from wxdata import ExecutionContext, Purpose, Role
    from wxdata.migrate import migrate
    from wxdata.roles import install_scope_key
    from wxdata.tx.token import scope_token

    name = f"wxdata_bench_scope_calls_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    out = []
    try:
        with psycopg.connect(make_conninfo(server, dbname=name), autocommit=True) as c:
            migrate(c)
            key = secrets.token_bytes(32)
            install_scope_key(c, key)
            school, student, record = _seed(c)
            ctx = ExecutionContext(user_id="u-n", role=Role.NURSE, purpose=Purpose.TREATMENT,
                                   school_ids={school})
            c.execute("SET track_functions = 'all'")
            c.execute("SET ROLE wxdata_app")
            for table, rid in (("students", student), ("health_records", record)):
                fetch = sql.SQL("SELECT id FROM {} WHERE id = %s").format(sql.Identifier(table))
                loop = sql.SQL(
                    "DO $$ DECLARE r record; BEGIN FOR i IN 1..{} LOOP "
                    "SELECT * INTO r FROM {} WHERE id = {}; END LOOP; END $$"
                ).format(sql.Literal(loops), sql.Identifier(table), sql.Literal(str(rid)))
                with c.transaction():
                    c.execute("SELECT set_config('app.scope_token', %s, true)",
                              (scope_token(ctx, key),))
                    before = c.execute(CALLS).fetchone()
                    assert c.execute(fetch, (rid,)).fetchall() == [(rid,)]
                    after = c.execute(CALLS).fetchone()
                    assert before is not None and after is not None
                    times = []
                    for _ in range(reps):
                        t0 = c.execute(CLOCK).fetchone()
                        c.execute(loop)
                        t1 = c.execute(CLOCK).fetchone()
                        assert t0 is not None and t1 is not None
                        times.append(float(t1[0] - t0[0]) / loops * 1e6)
                out.append(f"{table}: {after[0] - before[0]} scope verifications per fetch; "
                           f"server-side µs per fetch median {statistics.median(times):.1f} "
                           f"({min(times):.1f}-{max(times):.1f}); load {os.getloadavg()[0]:.2f}")
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
    return out


def main() -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database-url", default=None)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--loops", type=int, default=500)
    args = p.parse_args()
    print("\n".join(run(args.database_url or os.environ["DATABASE_URL"], args.reps, args.loops)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
