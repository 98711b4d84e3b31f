"""Audit chain: sealing rate, verification time, and audited writers with a sealer running.

``python -m benchmarks.bench_audit_verify [--records 100000] [--writers 8] [--seconds 3]
[--reps 3] [--database-url URL]``

Self-contained: creates and migrates its own database on the server (``--database-url``,
``DATABASE_URL`` or the embedded PostgreSQL), measures, drops it. The suite
(``python -m benchmarks``) also picks this module up through :func:`run`, on its seeded database.

Workloads (medians over repetitions, min-max in brackets):

1. backlog sealing: ``records`` audit records inserted in one statement, then one ``seal`` run;
   µs per record and records/s;
2. incremental sealing: one committed audited write, then a ``seal`` run, repeated (the "seal
   after every commit" shape); µs per run;
3. verification of the whole chain; µs per record and seconds per 100,000 records;
4. ``writers`` threads doing audited ``students.update`` for ``seconds``: without a sealer
   (baseline), with a sealer every 50 ms, and with a sealer looping without pause. The ratio shows
   what sealing costs the writers (the design target: no serialisation collapse, writers never
   wait on the chain).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from benchmarks.common import Env, Result, finalize, fmt_us

KEY = b"bench-audit-chain-key-0123456789abcdef"

_INSERT = (
    "INSERT INTO audit_log (action, entity_type, entity_id, entity_ids, subject_student_id,"
    " subject_ids, user_id, user_role, new_values, fields_disclosed, is_phi, compliance_type,"
    " purpose, tags, ip_address, request_id) "
    "SELECT 'READ', 'Student', e, ARRAY[e], s, ARRAY[s], 'u-' || (i %% 50), 'NURSE',"
    " jsonb_build_object('grade', i %% 12, 'first_name', 'Ada', 'date_of_birth', '2014-05-17'),"
    " ARRAY['first_name', 'last_name', 'date_of_birth', 'grade'], true, 'HIPAA', 'TREATMENT',"
    " ARRAY['student', 'read'], '10.1.2.3', 'req-bench' "
    "FROM generate_series(1, %s) i, LATERAL (SELECT gen_random_uuid() e, gen_random_uuid() s) u"
)


def _seal(conn: psycopg.Connection[Any]) -> Any:
    from wxdata.audit.chain import seal

    return seal(conn, KEY).unwrap()


def backlog(conn: psycopg.Connection[Any], records: int, reps: int) -> list[float]:
    """µs per record of one sealing run over ``records`` new records, per repetition."""
    _seal(conn)
    samples = []
    for _ in range(reps):
        conn.execute(_INSERT, (records,))
        started = time.perf_counter()
        report = _seal(conn)
        elapsed = time.perf_counter() - started
        assert report.sealed == records, report
        samples.append(elapsed / records * 1e6)
    return samples


def incremental(conn: psycopg.Connection[Any], runs: int, reps: int) -> list[float]:
    """µs per sealing run that finds one new committed record."""
    samples = []
    for _ in range(reps):
        total = 0.0
        for _ in range(runs):
            conn.execute(_INSERT, (1,))
            started = time.perf_counter()
            report = _seal(conn)
            total += time.perf_counter() - started
            assert report.sealed == 1, report
        samples.append(total / runs * 1e6)
    return samples


def verification(conn: psycopg.Connection[Any], reps: int) -> tuple[list[float], int]:
    """µs per record of a full verification, and the chain length."""
    from wxdata.audit.chain import verify

    samples = []
    length = 0
    for _ in range(reps):
        report = verify(conn, KEY).unwrap()
        assert report.ok, report.broken
        length = report.verified
        samples.append(report.seconds / max(1, report.verified) * 1e6)
    return samples, length


def _school(conn: psycopg.Connection[Any]) -> tuple[uuid.UUID, uuid.UUID]:
    tag = uuid.uuid4().hex[:8]
    d = conn.execute("INSERT INTO districts (name, code) VALUES ('Bench', %s) RETURNING id",
                     (f"BD-{tag}",)).fetchone()
    assert d is not None
    s = conn.execute("INSERT INTO schools (name, code, district_id) VALUES ('Bench', %s, %s) "
                     "RETURNING id", (f"BS-{tag}", d[0])).fetchone()
    assert s is not None
    return s[0], d[0]


def writers(url: str, n: int, seconds: float, sealer_pause: float | None) -> tuple[float, int]:
    """(µs per audited write per writer, total writes) with an optional sealer looping."""
    from wxdata import system_context
    from wxdata.domains import students

    ctx = system_context("bench-writers")
    with psycopg.connect(url, autocommit=True) as conn:
        school, district = _school(conn)
    stop = threading.Event()
    counts = [0] * n
    failures: list[Any] = []
    ready = threading.Barrier(n + 1)

    def write(i: int) -> None:
        with psycopg.connect(url, autocommit=True) as c:
            sid = students.create(c, ctx, {
                "student_number": f"BW-{uuid.uuid4().hex[:12]}", "first_name": "Ada",
                "last_name": "L", "date_of_birth": date(2014, 1, 1), "grade": "5",
                "gender": "FEMALE", "enrollment_date": date(2020, 9, 1), "school_id": school,
                "district_id": district}).unwrap().id
            ready.wait()
            k = 0
            while not stop.is_set():
                result = students.update(c, ctx, sid, {"grade": str(k % 12)})
                if not hasattr(result, "unwrap"):
                    failures.append(result)
                k += 1
            counts[i] = k

    def seal_loop() -> None:
        with psycopg.connect(url, autocommit=True) as c:
            while not stop.is_set():
                _seal(c)
                if sealer_pause:
                    time.sleep(sealer_pause)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    ready.wait()
    sealer = threading.Thread(target=seal_loop) if sealer_pause is not None else None
    started = time.perf_counter()
    if sealer is not None:
        sealer.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if sealer is not None:
        sealer.join()
    assert not failures
    total = sum(counts)
    return elapsed * n / max(1, total) * 1e6, total


def measure_all(url: str, config: str, *, records: int, reps: int, runs: int, n_writers: int,
                seconds: float, log: Callable[[str], None] = print) -> list[Result]:
    """Every workload on the database at ``url``."""
    out: list[Result] = []
    with psycopg.connect(url, autocommit=True) as conn:
        log(f"  [{config}] sealing backlogs of {records} records x {reps}")
        out.append(Result("seal a backlog (per record)", "wxdata seal", config,
                          backlog(conn, records, reps), records, baseline=True,
                          section="audit-chain"))
        log(f"  [{config}] incremental sealing: {runs} runs x {reps}")
        out.append(Result("seal after each commit (per run)", "wxdata seal", config,
                          incremental(conn, runs, reps), runs, baseline=True,
                          section="audit-chain"))
        log(f"  [{config}] verifying")
        samples, length = verification(conn, reps)
        out.append(Result("verify (per record)", "wxdata verify", config, samples, length,
                          baseline=True, section="audit-chain", extra={"chain": length}))
    workload = f"{n_writers} audited writers (per write)"
    variants = (("no sealer", None), ("sealer every 50 ms", 0.05), ("sealer looping", 0.0))
    samples_by: dict[str, list[float]] = {name: [] for name, _ in variants}
    totals: dict[str, list[int]] = {name: [] for name, _ in variants}
    for rep in range(reps):
        order = variants[rep % 3:] + variants[: rep % 3]
        for name, pause in order:
            log(f"  [{config}] {workload}: {name}")
            us, total = writers(url, n_writers, seconds, pause)
            samples_by[name].append(us)
            totals[name].append(total)
    for name, _ in variants:
        out.append(Result(workload, name, config, samples_by[name],
                          int(statistics.median(totals[name])), baseline=name == "no sealer",
                          section="audit-chain",
                          extra={"writes_per_s": [t / seconds for t in totals[name]]}))
    finalize(out)
    return out


def run(env: Env) -> list[Result]:
    """The suite hook: the chain workloads, small, on the suite's seeded database."""
    quick = env.options.quick
    return measure_all(env.conninfo, env.config, records=2000 if quick else 20_000,
                       reps=1 if quick else 3, runs=20 if quick else 100,
                       n_writers=env.options.mixed_threads,
                       seconds=0.3 if quick else env.options.mixed_seconds)


def report(results: list[Result]) -> str:
    """A plain-text summary of every workload."""
    finalize(results)
    lines = []
    for r in results:
        ratio = f"{r.ratio:6.3f}x" if r.ratio is not None else ""
        extra = ""
        if r.workload.startswith("seal a backlog"):
            extra = f"{1e6 / r.median:,.0f} records/s"
        elif r.workload.startswith("verify"):
            extra = (f"{r.median * 100_000 / 1e6:.2f} s per 100,000 records "
                     f"(chain of {r.extra.get('chain', 0):,})")
        elif "writes_per_s" in r.extra:
            extra = f"{statistics.median(r.extra['writes_per_s']):,.0f} writes/s"
        lines.append(f"[{r.config}] {r.workload:<38} {r.variant:<20} {fmt_us(r.median):>10} "
                     f"[{fmt_us(r.lo)}-{fmt_us(r.hi)}] {ratio} {extra}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Create a database, measure, print, drop it."""
    from wxdata.migrate import migrate

    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_audit_verify",
                                description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=200, help="incremental sealing runs per rep")
    p.add_argument("--writers", type=int, default=8)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--database-url", default=None)
    a = p.parse_args(argv)
    os.environ.setdefault("WXDATA_ENV", "bench")
    server = a.database_url or os.environ.get("DATABASE_URL")
    if not server:
        from wxdata.db import embedded_url

        server = embedded_url("postgres")
    name = f"wxdata_bench_chain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(server, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
        results = measure_all(url, "A", records=a.records, reps=a.reps, runs=a.runs,
                              n_writers=a.writers, seconds=a.seconds)
        print(report(results))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
