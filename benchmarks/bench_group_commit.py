"""What PostgreSQL's group commit gives the audit trail: durable records per second by commit_delay.

Every audited read outside a unit of work is its own durable commit: one WAL flush per read, which
is what the audit trail costs most in configuration A. Concurrent commits share a flush when they
wait for it together, and ``commit_delay`` (microseconds; only with at least ``commit_siblings``
other transactions open) makes the committing backend wait that long before flushing, so more
commits join it. Records stay durable: no commit returns before its WAL is on disk.

Self-contained (the database set-up of :mod:`benchmarks.bench_scope`: a fresh database, migrated
and seeded, dropped at the end). For each number of writer threads (``--writers``), each on its own
connection as the owner, every repetition runs each ``commit_delay`` of ``--delays`` in turn (the
order rotates between repetitions) for ``--seconds``, every writer doing one of two operations
back to back:

- ``find_by_id``: an audited by-id read of a student, its record riding in the SELECT;
- ``log_read``: an explicit disclosure record (``wxdata.audit.log_read``), one per call.

Each (operation, delay, repetition) has its own request id; the records counted in the log
afterwards must equal the calls that returned Success, or the run aborts. Printed per operation,
writers and delay: records per second (median over repetitions, min-max), the ratio to
``commit_delay = 0`` in the same repetitions, and the mean wall µs per call; with the 1-minute load
average at start and end. Nothing is pinned: run it on an otherwise idle machine.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python -m benchmarks.bench_group_commit --writers 1,8 --delays 0,100,200,500 --reps 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import psycopg
from psycopg import sql

from benchmarks._args import parse_with_database_url
from benchmarks.bench_scope import _drop, _setup
from benchmarks.common import run_writers

#: The operations timed: name -> (conn, ctx, student id) -> whether it returned Success.
Op = Callable[[psycopg.Connection[Any], Any, uuid.UUID], bool]


def _operations() -> dict[str, Op]:
    from returns.result import Success

    from wxdata.audit import log_read
    from wxdata.domains import students

    def by_id(conn: psycopg.Connection[Any], ctx: Any, sid: uuid.UUID) -> bool:
        return isinstance(students.find_by_id(conn, ctx, sid), Success)

    def disclosure(conn: psycopg.Connection[Any], ctx: Any, sid: uuid.UUID) -> bool:
        return isinstance(log_read(conn, ctx, students.ENTITY, [sid]), Success)

    return {"find_by_id": by_id, "log_read": disclosure}


def _set_delay(conns: list[psycopg.Connection[Any]], delay: int) -> None:
    for conn in conns:
        conn.execute(sql.SQL("SET commit_delay = {}").format(sql.Literal(delay)))


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the table."""
    from wxdata import ExecutionContext, Purpose, Role
    from wxdata.config import configure, settings

    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--writers", default="1,8", help="comma-separated thread counts (default 1,8)")
    p.add_argument("--delays", default="0,100,200,500",
                   help="comma-separated commit_delay values in µs; the first is the baseline")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--seconds", type=float, default=2.0, help="per delay, operation, repetition")
    p.add_argument("--students", type=int, default=2000)
    args = parse_with_database_url(p, argv, who="a superuser: commit_delay is one")
    writer_counts = [int(w) for w in args.writers.split(",")]
    delays = [int(d) for d in args.delays.split(",")]
    if not writer_counts or min(writer_counts) < 1 or not delays or min(delays) < 0:
        p.error("--writers must be positive and --delays non-negative")
    operations = _operations()
    name, owner, app, school, ids = _setup(args.database_url, args.students)
    saved = settings()
    # the owner's connection (no row security), as the targets' workloads
    configure(attrs.evolve(saved, allow_privileged_connection=True))
    load = [os.getloadavg()[0]]
    rates: dict[tuple[str, int, int], list[float]] = {}
    micros: dict[tuple[str, int, int], list[float]] = {}
    try:
        conns = [psycopg.connect(owner, autocommit=True) for _ in range(max(writer_counts))]
        counter = psycopg.connect(owner, autocommit=True)
        try:
            for writers in writer_counts:
                for label, op in operations.items():
                    for rep in range(args.reps):
                        turn = rep % len(delays)
                        for delay in delays[turn:] + delays[:turn]:
                            request = f"req-gc-{uuid.uuid4().hex[:12]}"
                            ctx = ExecutionContext(
                                user_id="u-bench-nurse", role=Role.NURSE,
                                purpose=Purpose.TREATMENT, school_ids={school},
                                request_id=request)
                            used = conns[:writers]
                            _set_delay(used, delay)
                            for sid in ids[:20]:  # warm: statements prepared on every connection
                                for conn in used:
                                    op(conn, ctx, sid)
                            warm = 20 * writers
                            done, failed, wall = run_writers(
                                writers, args.seconds,
                                lambda i, k, used=used, op=op, ctx=ctx: op(
                                    used[i], ctx, ids[k % len(ids)]))
                            found = counter.execute(
                                "SELECT count(*) FROM audit_log WHERE request_id = %s",
                                (request,)).fetchone()
                            recorded = int(found[0]) if found else 0
                            if failed or recorded != done + warm:
                                raise SystemExit(
                                    f"{label}, {writers} writers, commit_delay {delay}: {done} "
                                    f"calls succeeded, {failed} failed, {recorded - warm} "
                                    "records found")
                            key = (label, writers, delay)
                            rates.setdefault(key, []).append(done / wall)
                            micros.setdefault(key, []).append(wall * writers / done * 1e6)
                            _set_delay(used, 0)
        finally:
            for conn in conns:
                conn.close()
            counter.close()
    finally:
        configure(saved)
        _drop(args.database_url, name, app)
    load.append(os.getloadavg()[0])
    print(f"{args.reps} interleaved reps x {args.seconds:g} s per delay; {args.students} students; "
          f"commit_siblings at the server's setting; load average {load[0]:.2f} -> {load[1]:.2f}")
    print("  operation, writers, commit_delay: records/s median (min-max) | ratio to "
          f"commit_delay {delays[0]} | wall µs per call")
    for writers in writer_counts:
        for label in operations:
            base = rates[(label, writers, delays[0])]
            for delay in delays:
                r = rates[(label, writers, delay)]
                ratio = statistics.median(a / b for a, b in zip(r, base, strict=True))
                print(f"  {label:10} {writers:2} writers, commit_delay {delay:4} µs: "
                      f"{statistics.median(r):9.0f} ({min(r):.0f}-{max(r):.0f}) | "
                      f"{ratio:5.2f}x | {statistics.median(micros[(label, writers, delay)]):7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
