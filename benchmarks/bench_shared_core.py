"""The server's CPU for one prepared statement, with wxdata or raw psycopg as its client, on the
client's core and on another.

Configuration B of the targets runs the client and PostgreSQL on one core, where wxdata's audited
calls exceed raw psycopg sending the very same statement by more than wxdata's client
instructions account for. This measures where the rest goes. The owner's audited by-id read is
captured once as wxdata sends it (the read and its riding record); then, on one connection, the
same prepared statement is executed by ``students.find_by_id`` and by raw psycopg sending the
captured text with each call's id (psycopg shares one server-side prepared statement between
them: same text, same parameter types). Per call it records the wall time and the CPU time the
connection's backend spent (``/proc/<pid>/schedstat``, nanoseconds), with the postmaster and all
its processes pinned to this process's core (``same core``: B's placement) and then to the other
core (``other core``), interleaved, ``--reps`` repetitions of ``--ops`` calls of each. Commits
are not waited for (``synchronous_commit = off``), as in B. The postmaster's affinity is restored
at the end, whatever happens.

The server must run on this machine (its processes under ``/proc``) with at least two cores, and
this process must be allowed to set their affinity (``taskset``): a server of its own or one that
nothing else is using while this runs.

    python -m benchmarks.bench_shared_core --reps 7 --ops 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import psycopg

from benchmarks._args import parse_with_database_url
from benchmarks.bench_core import _postmaster, server_processes
from benchmarks.bench_scope import _drop, _setup

PLACEMENTS = ("same core", "other core")
VARIANTS = ("wxdata find_by_id, audited, owner", "raw psycopg sending that read's statement")


def backend_cpu_ns(pid: int) -> int:
    """Nanoseconds process ``pid`` has spent on a CPU (``/proc/<pid>/schedstat``'s first field)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def _pin(postmaster: int, cores: str) -> None:
    """Set the affinity of the server's processes now and of their threads (``taskset -a``);
    backends forked later inherit the postmaster's."""
    for pid in server_processes(postmaster):
        subprocess.run(["taskset", "-acp", cores, str(pid)], check=pid == postmaster,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextmanager
def pinned_server(postmaster: int) -> Iterator[Callable[[int], None]]:
    """A function pinning the server to one core; on exit, the server's original affinity back."""
    original = ",".join(str(c) for c in sorted(os.sched_getaffinity(postmaster)))
    try:
        yield lambda core: _pin(postmaster, str(core))
    finally:
        _pin(postmaster, original)


def options(description: str, reps: int, ops: int, argv: list[str] | None
            ) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The parser and options of a run on a database of its own: the server (a superuser), the
    repetitions, the calls of each variant per repetition and the students seeded."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--reps", type=int, default=reps)
    p.add_argument("--ops", type=int, default=ops)
    p.add_argument("--students", type=int, default=1000)
    args = parse_with_database_url(p, argv)
    return p, args


@contextmanager
def audited_owner(args: argparse.Namespace, request_id: str) -> Iterator[tuple[str, Any, list[Any]]]:
    """A database of its own on ``args.database_url``, seeded with ``args.students`` students of
    one school, the audit on and the owner's connections allowed: (the owner's URL, a nurse's
    context in that school, the students' ids). Afterwards the settings found are back and the
    database is dropped, whatever happens."""
    from wxdata import ExecutionContext, Purpose, Role
    from wxdata.config import configure, settings

    name, owner, app, school, ids = _setup(args.database_url, args.students)
    ctx = ExecutionContext(user_id="u-bench-nurse", role=Role.NURSE, purpose=Purpose.TREATMENT,
                           school_ids={school}, request_id=request_id)
    previous = configure(attrs.evolve(settings(), audit_enabled=True,
                                      allow_privileged_connection=True))
    try:
        yield owner, ctx, ids
    finally:
        configure(previous)
        _drop(args.database_url, name, app)


@contextmanager
def measured_connection(conninfo: str) -> Iterator[tuple[psycopg.Connection[Any], int, int | None]]:
    """An autocommit connection whose commits are not waited for (as in configuration B), its
    backend's pid, and the pid of the postmaster it is a child of (None: the server's processes
    are not on this machine)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        yield conn, backend, _postmaster(backend)


@contextmanager
def on_core(core: int) -> Iterator[None]:
    """This process on ``core`` for the block, then on the cores it had."""
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, own)


def summarise(samples: list[float]) -> str:
    """``median (min-max)`` of per-call figures, one decimal."""
    return f"{statistics.median(samples):.1f} ({min(samples):.1f}-{max(samples):.1f})"


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the table."""
    p, args = options(__doc__.split("\n\n")[0], 7, 1000, argv)
    own = sorted(os.sched_getaffinity(0))
    if len(own) < 2:
        p.error("two cores are needed: one shared, one other")
    here, other = own[0], own[1]

    from benchmarks.common import sent_statement
    from wxdata.domains import students

    load = [os.getloadavg()[0]]
    cpu: dict[tuple[str, str], list[float]] = {(pl, v): [] for pl in PLACEMENTS for v in VARIANTS}
    wall: dict[tuple[str, str], list[float]] = {key: [] for key in cpu}
    with audited_owner(args, "req-bench-shared-core") as (owner, ctx, ids):
        sql, params = sent_statement(owner, lambda c: students.find_by_id(c, ctx, ids[0]))
        with measured_connection(owner) as (conn, backend, postmaster):
            if postmaster is None:
                p.error("the server's processes are not on this machine")
            cur = conn.cursor()

            def wxdata_read(sid: uuid.UUID) -> None:
                students.find_by_id(conn, ctx, sid).unwrap()

            def raw_read(sid: uuid.UUID) -> None:
                cur.execute(sql, {**params, "_id": sid}, prepare=True)
                cur.fetchall()

            calls = dict(zip(VARIANTS, (wxdata_read, raw_read), strict=True))
            with on_core(here), pinned_server(postmaster) as pin:
                for call in calls.values():  # warm-up: the prepared statement, the caches
                    for sid in ids[:100]:
                        call(sid)
                for rep in range(args.reps):
                    sample = [ids[(rep * args.ops + i) % len(ids)] for i in range(args.ops)]
                    for placement, core in zip(PLACEMENTS, (here, other), strict=True):
                        pin(core)
                        for variant, call in calls.items():
                            s0, w0 = backend_cpu_ns(backend), time.perf_counter()
                            for sid in sample:
                                call(sid)
                            wall[placement, variant].append(
                                (time.perf_counter() - w0) / args.ops * 1e6)
                            cpu[placement, variant].append(
                                (backend_cpu_ns(backend) - s0) / args.ops / 1e3)
    load.append(os.getloadavg()[0])
    print(f"{args.reps} interleaved reps x {args.ops} calls of each, {args.students} students, "
          f"this process on core {here}, the server on it or on core {other}; load average "
          f"{load[0]:.2f} -> {load[1]:.2f}")
    print("  server | client | backend CPU µs per call, median (min-max) | wall µs per call")
    for (placement, variant), samples in cpu.items():
        print(f"  {placement:10} | {variant:40} | {summarise(samples):24} | "
              f"{summarise(wall[placement, variant])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
