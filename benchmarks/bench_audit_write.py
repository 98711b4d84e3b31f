"""Audit write-path benchmark: what the HIPAA audit trail costs on the two hottest paths.

Workloads (each against its raw-psycopg baseline, same database, same process, interleaved):

- **create**: ``students.create`` (validation, INSERT ... RETURNING with its CREATE record riding in
  the same statement, autocommit, outside a unit of work) vs a bare prepared INSERT ... RETURNING of
  the same columns (autocommit, no audit). Target: <= 1.15x in configuration A.
- **PHI read**: ``students.find_by_id`` (SELECT with its READ record riding in the same statement)
  vs a bare prepared SELECT by primary key. Target: <= 1.2x in configuration A.

Extra variants show where the time goes: the same wxdata calls with auditing switched off, and
(A only) the PHI read with ``synchronous_commit = off`` for its record, a proposal.

Method: every variant runs on the same connection (in configuration A two backends can land on
different cores and differ by ~30 µs per round trip for no reason of theirs); each repetition runs
one batch of every variant, the order rotating between repetitions; a batch's inputs are built
before its clock starts; statements are warmed (prepared) first. Reported:
the median over repetitions of the mean µs per operation, the min-max of those means, and the
ratio of medians to the raw baseline.

Configurations: **A** TCP loopback, nothing pinned, durable commits. **B** this process pinned to
one core with ``os.sched_setaffinity``, the postmaster and its children pinned to the same core
(``taskset -acp``; backends forked afterwards inherit it) and ``SET synchronous_commit = off`` on the
benchmark connections; every affinity is restored afterwards.

Run: ``python -m benchmarks.bench_audit_write [--reps 7] [--ops 400] [--configs A,B] [--profile]``
(``DATABASE_URL`` or ``--database-url``; the benchmark creates, migrates and drops its own database).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import attrs
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

TARGETS = {"create": 1.15, "PHI read": 1.2}
#: Secondary audit_log indexes dropped by ``--lean-indexes`` (a what-if, never in a real database).
LEAN_DROPPED = ("audit_log_user_idx", "audit_log_created_brin", "audit_log_transaction_idx")


@dataclass
class Figure:
    """One variant of one workload in one configuration: per-repetition means (µs per op)."""

    workload: str
    variant: str
    config: str
    samples_us: list[float] = field(default_factory=list)
    baseline: bool = False

    @property
    def median(self) -> float:
        """Median of the per-repetition means."""
        return statistics.median(self.samples_us)


@dataclass
class Variant:
    """A timed operation and the builder of its inputs (called before the clock starts)."""

    workload: str
    name: str
    op: Callable[[Any], object]
    inputs: Callable[[int], list[Any]]
    baseline: bool = False
    audit: bool = True
    before: Callable[[], object] | None = None  # run outside the clock, around the batch
    after: Callable[[], object] | None = None


# --- the database ----------------------------------------------------------------------------


@dataclass
class Bench:
    """A migrated throw-away database with one school and some students to read."""

    admin_url: str
    url: str
    name: str
    school: tuple[uuid.UUID, uuid.UUID]
    student_ids: list[uuid.UUID]
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8].upper())
    counter: int = 0

    def next_values(self) -> dict[str, Any]:
        """Values of a new student with a unique number (same shape for every variant)."""
        self.counter += 1
        return {
            "student_number": f"BA-{self.tag}-{self.counter}", "first_name": "Ada",
            "last_name": "Lovelace", "date_of_birth": date(2014, 5, 17), "grade": "5",
            "gender": "FEMALE", "enrollment_date": date(2020, 9, 1),
            "school_id": self.school[0], "district_id": self.school[1],
        }


def create_bench(admin_url: str, students: int) -> Bench:
    """Create, migrate and seed the benchmark database."""
    from wxdata import system_context
    from wxdata.domains import students as student_ops
    from wxdata.migrate import migrate

    name = f"wx_bench_audit_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(admin_url, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        row = conn.execute("INSERT INTO districts (name, code) VALUES ('D', 'BENCH-D') RETURNING id"
                           ).fetchone()
        assert row is not None
        school = conn.execute("INSERT INTO schools (name, code, district_id) VALUES "
                              "('S', 'BENCH-S', %s) RETURNING id", (row[0],)).fetchone()
        assert school is not None
        bench = Bench(admin_url, url, name, (school[0], row[0]), [])
        ctx = system_context("bench-seed")
        rows = [bench.next_values() for _ in range(students)]
        bench.student_ids = list(student_ops.bulk_create(conn, ctx, rows).unwrap())
        conn.execute("VACUUM ANALYZE students")
        conn.execute("VACUUM ANALYZE audit_log")
    return bench


def drop_bench(bench: Bench) -> None:
    """Drop the benchmark database."""
    with psycopg.connect(bench.admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{bench.name}" WITH (FORCE)')


# --- configurations --------------------------------------------------------------------------


def _children(ppid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    stat = fh.read()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if len(fields) > 1 and fields[1] == str(ppid):
                out.append(int(entry))
    return out


_AUXILIARY = ("checkpointer", "background writer", "walwriter", "autovacuum launcher",
              "logical replication launcher", "stats collector", "archiver", "startup")


def _auxiliary(pid: int) -> bool:
    """Whether a postmaster child is a server process (not another client's backend)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return any(name in cmdline for name in _AUXILIARY)


def postmaster_pid(url: str) -> int | None:
    """The local postmaster's pid (the parent of our backend), or None if the server is remote."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        try:
            with open(f"/proc/{row[0]}/status") as fh:
                for line in fh:
                    if line.startswith("PPid:"):
                        return int(line.split()[1])
        except OSError:
            return None
    return None


def _taskset(core: int, pid: int) -> None:
    if shutil.which("taskset"):
        subprocess.run(["taskset", "-acp", str(core), str(pid)], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:  # pragma: no cover - taskset is part of util-linux
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {core})


@contextlib.contextmanager
def configuration(config: str, url: str, core: int) -> Iterator[tuple[list[str], list[str]]]:
    """Enter A or B; yields (session statements for each connection, notes). B is undone on exit."""
    if config == "A":
        yield [], ["TCP loopback, unpinned, durable commits"]
        return
    own = os.sched_getaffinity(0)
    saved: dict[int, set[int]] = {}
    notes = []
    postmaster = postmaster_pid(url)
    try:
        os.sched_setaffinity(0, {core})
        if postmaster is not None:  # our backends fork after this and inherit the affinity
            server = [postmaster, *(p for p in _children(postmaster) if _auxiliary(p))]
            for pid in server:
                with contextlib.suppress(OSError):
                    saved[pid] = os.sched_getaffinity(pid)
                    _taskset(core, pid)
            notes.append(f"client, postmaster {postmaster} and its {len(server) - 1} server "
                         f"processes pinned to core {core} (other clients' backends untouched)")
        else:
            notes.append("server not local: only the client pinned")
        notes.append("synchronous_commit=off on the benchmark connections")
        yield ["SET synchronous_commit = off"], notes
    finally:
        os.sched_setaffinity(0, own)
        default = saved.get(postmaster) if postmaster is not None else None
        for pid, mask in saved.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, mask)
        if postmaster is not None and default:
            for pid in _children(postmaster):  # backends forked while pinned
                if pid not in saved:
                    with contextlib.suppress(OSError):
                        if os.sched_getaffinity(pid) == {core}:
                            os.sched_setaffinity(pid, default)


# --- variants --------------------------------------------------------------------------------


def _open(url: str, statements: Sequence[str]) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url, autocommit=True)
    for s in statements:
        conn.execute(s)
    return conn


def variants(bench: Bench, raw: psycopg.Connection[Any], wx: psycopg.Connection[Any],
             proposal: bool = False) -> list[Variant]:
    """The raw baselines and the wxdata variants of both workloads (+ the async-commit proposal).

    Pass the same connection as ``raw`` and ``wx`` for a fair comparison: in configuration A the
    scheduler may place two backends differently (same core as the client or not, ~30 µs apart).
    """
    from wxdata import ExecutionContext, Purpose, Role
    from wxdata.domains import students
    from wxdata.schema import STUDENTS

    ctx = ExecutionContext(user_id="u-bench-nurse", role=Role.NURSE, purpose=Purpose.TREATMENT,
                           ip_address="10.1.2.3", user_agent="wxdata-bench", request_id="req-bench")
    columns = ("id", "student_number", "first_name", "last_name", "date_of_birth", "grade", "gender",
               "enrollment_date", "school_id", "district_id", "created_by", "updated_by")
    returning = ", ".join(STUDENTS.column_names)
    insert = (f"INSERT INTO students ({', '.join(columns)}) VALUES "
              f"({', '.join('%s' for _ in columns)}) RETURNING {returning}")
    fetch = f"SELECT {returning} FROM students WHERE id = %s AND deleted_at IS NULL"
    cur = raw.cursor()

    def raw_insert(values: tuple[Any, ...]) -> object:
        cur.execute(insert, values, prepare=True)
        return cur.fetchone()

    def raw_fetch(key: uuid.UUID) -> object:
        cur.execute(fetch, (key,), prepare=True)
        return cur.fetchone()

    def raw_inputs(n: int) -> list[Any]:
        out = []
        for _ in range(n):
            v = bench.next_values()
            out.append((uuid.uuid4(), v["student_number"], v["first_name"], v["last_name"],
                        v["date_of_birth"], v["grade"], v["gender"], v["enrollment_date"],
                        v["school_id"], v["district_id"], ctx.user_id, ctx.user_id))
        return out

    def wx_create(values: dict[str, Any]) -> object:
        return students.create(wx, ctx, values).unwrap()

    def wx_read(key: uuid.UUID) -> object:
        return students.find_by_id(wx, ctx, key).unwrap()

    def ids(n: int) -> list[Any]:
        return random.choices(bench.student_ids, k=n)

    def creates(n: int) -> list[Any]:
        return [bench.next_values() for _ in range(n)]

    extra = [Variant("PHI read", "proposal: + audit, async commit", wx_read, ids,
                     before=lambda: wx.execute("SET synchronous_commit = off"),
                     after=lambda: wx.execute("RESET synchronous_commit"))] if proposal else []
    return [
        Variant("create", "raw psycopg INSERT", raw_insert, raw_inputs, baseline=True),
        Variant("create", "wxdata create + audit", wx_create, creates),
        Variant("create", "wxdata create, audit off", wx_create, creates, audit=False),
        Variant("PHI read", "raw psycopg SELECT", raw_fetch, ids, baseline=True),
        Variant("PHI read", "wxdata find_by_id + audit", wx_read, ids),
        Variant("PHI read", "wxdata find_by_id, audit off", wx_read, ids, audit=False),
        *extra,
    ]


@contextlib.contextmanager
def audit_switch(on: bool) -> Iterator[None]:
    """Run with auditing on or off (process settings, restored afterwards)."""
    from wxdata.config import configure, settings

    previous = configure(attrs.evolve(settings(), audit_enabled=on, audit_phi_access=on))
    try:
        yield
    finally:
        configure(previous)


def _batch(v: Variant, n: int) -> float:
    inputs = v.inputs(n)
    op = v.op
    if v.before is not None:
        v.before()
    try:
        with audit_switch(v.audit):
            start = time.perf_counter_ns()
            for x in inputs:
                op(x)
            elapsed = time.perf_counter_ns() - start
    finally:
        if v.after is not None:
            v.after()
    return elapsed / n / 1000.0


def measure(config: str, vs: list[Variant], reps: int, ops: int) -> list[Figure]:
    """Interleaved repetitions (rotating order) of every variant; per-rep mean µs per op."""
    for v in vs:  # warm up: prepare statements, fill caches
        _batch(v, max(20, ops // 10))
    figures = {v.name: Figure(v.workload, v.name, config, baseline=v.baseline) for v in vs}
    for rep in range(reps):
        k = rep % len(vs)
        for v in vs[k:] + vs[:k]:
            figures[v.name].samples_us.append(_batch(v, ops))
    return list(figures.values())


def profile(vs: list[Variant], ops: int) -> str:
    """cProfile of the wxdata variants with auditing on: where the time goes."""
    out = io.StringIO()
    for v in vs:
        if v.baseline or not v.audit or v.before is not None:
            continue
        inputs = v.inputs(ops)
        prof = cProfile.Profile()
        with audit_switch(True):
            prof.enable()
            for x in inputs:
                v.op(x)
            prof.disable()
        out.write(f"\n--- {v.name}: {ops} calls ---\n")
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(14)
    return out.getvalue()


def report(figures: list[Figure]) -> str:
    """A table: median (min-max) µs per operation and the ratio to the raw baseline."""
    lines = []
    base = {(f.config, f.workload): f.median for f in figures if f.baseline}
    for f in figures:
        ratio = f.median / base[(f.config, f.workload)]
        extra = f.baseline or "audit off" in f.variant or f.variant.startswith("proposal")
        target = None if extra else TARGETS.get(f.workload)
        verdict = "" if target is None else (" meets" if ratio <= target else " MISSES") + \
            f" target {target:.2f}x" if f.config == "A" else ""
        lines.append(
            f"  {f.config}  {f.workload:<9} {f.variant:<30} {f.median:8.1f} µs "
            f"({min(f.samples_us):7.1f} - {max(f.samples_us):7.1f})  {ratio:5.2f}x{verdict}")
    return "\n".join(lines)


def run_config(bench: Bench, config: str, reps: int, ops: int, core: int,
               want_profile: bool) -> tuple[list[Figure], list[str], str]:
    """Measure one configuration on fresh connections."""
    from wxdata.db import conninfo as wx_conninfo

    with configuration(config, bench.url, core) as (session, notes):
        conn = _open(wx_conninfo(bench.url), session)  # one connection (backend) for every variant
        try:
            vs = variants(bench, conn, conn, proposal=not session)
            figures = measure(config, vs, reps, ops)
            prof = profile(vs, ops) if want_profile else ""
        finally:
            conn.close()
    return figures, notes, prof


def main(argv: Sequence[str] | None = None) -> int:
    """Create the database, measure A and B, print the table (and optional profile), drop it."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_audit_write",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--ops", type=int, default=400, help="operations per batch")
    parser.add_argument("--students", type=int, default=5000, help="students seeded for reads")
    parser.add_argument("--configs", default="A,B")
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="cProfile the wxdata variants")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--lean-indexes", action="store_true",
                        help="then drop audit_log's secondary indexes and measure A again")
    args = parser.parse_args(argv)
    os.environ.setdefault("WXDATA_ENV", "test")  # connecting as a superuser is expected here
    if not args.database_url:
        from wxdata.db import embedded_url

        args.database_url = embedded_url("postgres")
    random.seed(20240601)
    bench = create_bench(args.database_url, args.students)
    all_figures: list[Figure] = []
    try:
        for config in [c.strip() for c in args.configs.split(",") if c.strip()]:
            figures, notes, prof = run_config(bench, config, args.reps, args.ops, args.core,
                                              args.profile and config == "A")
            print(f"configuration {config}: " + "; ".join(notes))
            print(report(figures))
            if prof:
                print(prof)
            all_figures.extend(figures)
        if args.lean_indexes:
            with psycopg.connect(bench.url, autocommit=True) as conn:
                for index in LEAN_DROPPED:
                    conn.execute(f"DROP INDEX IF EXISTS {index}")
            figures, notes, _ = run_config(bench, "A", args.reps, args.ops, args.core, False)
            for f in figures:
                f.config = "A-lean"
            print("configuration A-lean: A with audit_log indexes reduced to id, seq, entity "
                  "and subjects (dropped: " + ", ".join(LEAN_DROPPED) + ")")
            print(report(figures))
            all_figures.extend(figures)
    finally:
        drop_bench(bench)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([{"workload": f.workload, "variant": f.variant, "config": f.config,
                        "median_us": f.median, "min_us": min(f.samples_us),
                        "max_us": max(f.samples_us), "baseline": f.baseline,
                        "samples_us": f.samples_us} for f in all_figures], fh, indent=2)
    return 0


def run(env: Any) -> list[Any]:
    """Adapter for the main suite (``benchmarks.common``): the same variants in its configuration."""
    from benchmarks.common import Result

    host = conninfo_to_dict(env.conninfo)
    bench = Bench(env.conninfo, env.conninfo, str(host.get("dbname", "")), env.data.schools[0],
                  list(env.data.student_ids))
    vs = variants(bench, env.wx, env.wx)  # one backend for all variants (fair in A)
    reps = max(3, int(getattr(env.options, "reps", 7)))
    ops = 200 if getattr(env.options, "quick", False) else 400
    figures = measure(env.config, vs, reps, ops)
    return [Result(workload=f"audit {f.workload}", variant=f.variant, config=f.config,
                   samples_us=f.samples_us, ops_per_rep=ops, family="audit", baseline=f.baseline)
            for f in figures]


if __name__ == "__main__":
    sys.exit(main())
