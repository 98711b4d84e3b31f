"""The audited update's before-image on PostgreSQL 18: ``RETURNING old`` vs the self-join.

On a scratch database of the server given (default: the embedded PostgreSQL 18), migrated, with
``--rows`` students: ``students.update`` of one column by id, audited, timed in interleaved
repetitions with the statement form wxdata picks on 18 (``RETURNING old.<column>``) and the form
it uses before 18 (the old row read in a self-join: unlocked and joined by its address, locked
with ``FOR UPDATE`` only when that updates nothing), durable and with ``synchronous_commit = off``
(the CPU share). Median of the per-repetition means, min-max.

    python -m benchmarks.bench_update_image --reps 7 --rows 300
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid

import psycopg
from psycopg.conninfo import make_conninfo

from benchmarks.common import owner_runs, publish


def run(args: argparse.Namespace) -> str:
    """Migrate a scratch database, time both forms, the Markdown report."""
    from wxdata import ExecutionContext, Purpose, Role
    from wxdata.context import system_context
    from wxdata.core import writes
    from wxdata.db import connect
    from wxdata.domains import students
    from wxdata.migrate import migrate, sql_dir

    if args.database_url:
        server = args.database_url
    else:
        from wxdata.embedded import embedded_url

        server = embedded_url()
    name = f"wxdata_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(server, dbname=name)
    out: list[str] = []
    try:
        with psycopg.connect(url, autocommit=True) as c:
            migrate(c, sql_dir())
        restore = owner_runs(url)
        wx = connect(url)
        version = wx.info.server_version
        district = wx.execute("INSERT INTO districts (name, code) VALUES ('d', 'd') RETURNING id")
        d = district.fetchone()[0]  # type: ignore[index]
        s = wx.execute("INSERT INTO schools (name, code, district_id) VALUES ('s', 's', %s) "
                       "RETURNING id", (d,)).fetchone()[0]  # type: ignore[index]
        made = system_context("bench")
        ids = [students.create(wx, made, {
            "student_number": f"U{i}", "first_name": "A", "last_name": "B",
            "date_of_birth": "2014-01-02", "grade": "5", "gender": "FEMALE",
            "enrollment_date": "2024-09-01", "school_id": s, "district_id": d,
        }).unwrap().id for i in range(args.rows)]
        ctx = ExecutionContext(user_id="u-bench", role=Role.NURSE, purpose=Purpose.TREATMENT,
                               ip_address="10.1.2.3", request_id="req-bench")
        forms = {"RETURNING old (wxdata on 18)": writes.RETURNING_OLD_SINCE,
                 "self-join (wxdata before 18)": 10**9}
        rng = random.Random(7)
        out += [f"- server_version_num {version}; {args.rows} students; {args.reps} repetitions",
                ""]
        for setting in ("on", "off"):
            wx.execute(f"SET synchronous_commit = {setting}")
            times: dict[str, list[float]] = {k: [] for k in forms}
            for rep in range(-1, args.reps):
                order = list(forms) if rep % 2 else list(reversed(forms))
                for form in order:
                    writes.RETURNING_OLD_SINCE = forms[form]
                    t0 = time.perf_counter_ns()
                    for sid in ids:
                        students.update(wx, ctx, sid, {"grade": str(rng.randint(1, 9))}).unwrap()
                    if rep >= 0:
                        times[form].append((time.perf_counter_ns() - t0) / 1000 / len(ids))
            writes.RETURNING_OLD_SINCE = forms["RETURNING old (wxdata on 18)"]
            base = times["self-join (wxdata before 18)"]
            out += [f"### synchronous_commit = {setting}", "",
                    "| form | µs per audited update, median (min-max) | ratio to the self-join |",
                    "|---|---|---|"]
            for form, xs in times.items():
                ratios = [x / b for x, b in zip(xs, base, strict=True)]
                out.append(f"| {form} | {statistics.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})"
                           f" | {statistics.median(ratios):.2f}x |")
            out.append("")
        out.append(f"load average (1 min) after the run: {os.getloadavg()[0]:.2f}")
        wx.close()
        restore()
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return "\n".join(out)


def main() -> None:
    """Command line: print the report (and write it with ``--output``)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("WXDATA_BENCH_UPDATE_URL"))
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    report = ("# Audited update on PostgreSQL 18: RETURNING old vs the self-join\n\n"
              f"- run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n" + run(args))
    publish(report, args.output)


if __name__ == "__main__":
    main()
