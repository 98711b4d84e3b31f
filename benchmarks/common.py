"""Benchmark harness: options, results, interleaved timing, configurations A/B, the run driver.

Method: every workload runs through several *variants* (raw psycopg, wxdata audited and
unaudited, SQLAlchemy Core and ORM, ...) on the same seeded database, in the same process, in the
same configuration. Each repetition runs one batch of every variant, the order rotating from one
repetition to the next (A B C, B C A, C A B, ...), so slow drift of the machine hits every variant
alike. A batch's inputs are prepared before its clock starts. The figure reported is the median over
repetitions of the mean time per operation in a batch, with the min-max of those means; ratios are
taken to the workload's baseline variant (raw psycopg) of the same configuration and run.

Configurations: **A** realistic (TCP loopback, durable commits; the PostgreSQL server and Redis
pinned to one core and this process to another, so every round trip crosses cores as it would
cross a network); **B** CPU cost (this process, the PostgreSQL server and Redis pinned to one core,
``synchronous_commit=off``), which removes the cross-core wake-ups that hide Python-side cost in A.
Affinities are restored afterwards, including those of server backends forked meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import random
import signal
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import attrs
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

RESULTS_DIR = Path(__file__).resolve().parent / "results"
EXTRA_MODULES = ("bench_audit_write", "bench_cache", "bench_audit_verify", "bench_async")
SCALING_PAGES = (1, 100, 1000, 10000)

# --- options and results ------------------------------------------------------------------------


@dataclass
class Options:
    """What to run and how hard; built from the command line by :func:`parse_args`."""

    quick: bool = False
    scale: int = 100_000
    records_per_student: int = 3
    schools: int = 8
    configs: tuple[str, ...] = ("A", "B")
    only: frozenset[str] | None = None
    reps: int = 7
    batch_seconds: float = 0.25
    max_batch: int = 2000
    bulk_rows: int = 10_000
    mixed_seconds: float = 3.0
    mixed_reps: int = 3
    mixed_threads: int = 8
    scaling: tuple[int, ...] = (10_000, 100_000)
    database_url: str | None = None
    output_dir: Path = RESULTS_DIR
    chart: bool = True
    write: bool = True
    keep_db: bool = False
    extras: bool = True
    core: int = 0
    pin: bool = True  # False: no process pinned in either configuration (--no-pin)
    profile: str | None = None
    profile_ops: int = 2000
    seed: int = 20240601
    targets: bool = False
    families: frozenset[str] | None = None
    wal_reads: int = 500

    def wants(self, key: str) -> bool:
        """Whether workload ``key`` was selected (``--only``)."""
        return self.only is None or key in self.only

    def keeps(self, family: str) -> bool:
        """Whether variants of ``family`` run (``--targets`` keeps only those its table reads)."""
        return self.families is None or family in self.families


@dataclass
class Result:
    """One variant of one workload in one configuration: per-repetition means, in µs per operation."""

    workload: str
    variant: str
    config: str
    samples_us: list[float]
    ops_per_rep: int
    family: str = ""
    baseline: bool = False
    section: str = "main"
    scale: int | None = None
    ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        """Median over repetitions of the mean µs per operation."""
        return statistics.median(self.samples_us)

    @property
    def lo(self) -> float:
        """Fastest repetition (µs per operation)."""
        return min(self.samples_us)

    @property
    def hi(self) -> float:
        """Slowest repetition (µs per operation)."""
        return max(self.samples_us)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for the JSON output."""
        return {
            "workload": self.workload, "variant": self.variant, "config": self.config,
            "family": self.family, "baseline": self.baseline, "section": self.section,
            "scale": self.scale, "median_us": self.median, "min_us": self.lo, "max_us": self.hi,
            "ratio": self.ratio, "ops_per_rep": self.ops_per_rep, "samples_us": self.samples_us,
            "extra": self.extra,
        }


def finalize(results: Sequence[Result]) -> None:
    """Fill each result's ratio to its workload's baseline variant (same config, section, scale)."""
    base: dict[tuple[str, str, str, int | None], float] = {}
    for r in results:
        if r.baseline:
            base[(r.section, r.workload, r.config, r.scale)] = r.median
    for r in results:
        b = base.get((r.section, r.workload, r.config, r.scale))
        r.ratio = r.median / b if b else None


# --- variants and workloads -----------------------------------------------------------------------

Op = Callable[[Any], object]


@dataclass
class Variant:
    """One way of doing a workload's operation: ``make(env)`` returns the operation ``op(input)``.

    ``op`` returns something truthy on success (a falsy return counts as a failed operation and
    aborts the workload: a benchmark that measures errors is worse than none). ``around`` wraps
    every batch (e.g. switching the audit off for the unaudited wxdata variant).
    """

    name: str
    family: str
    make: Callable[[Env], Op]
    baseline: bool = False
    around: Callable[[], contextlib.AbstractContextManager[Any]] | None = None


@dataclass
class Workload:
    """An operation, its variants, and the inputs each batch gets (prepared outside the clock)."""

    key: str
    title: str
    variants: list[Variant]
    inputs: Callable[[Env, int], list[Any]]
    fixed_batch: int | None = None
    max_batch: int | None = None
    cleanup: Callable[[Env], None] | None = None
    section: str = "main"
    scale: int | None = None
    note: str = ""


class BenchmarkError(RuntimeError):
    """A variant failed an operation, or the environment cannot run the benchmark."""


# --- the environment of one configuration ---------------------------------------------------------


@dataclass
class Dataset:
    """What the seeding produced and the workloads draw their inputs from."""

    students: int
    schools: list[tuple[uuid.UUID, uuid.UUID]]  # (school_id, district_id)
    student_ids: list[uuid.UUID]
    record_ids: list[uuid.UUID]
    grades: list[str]
    fragments: list[str]


class Env:
    """One configuration's connections, context, data and helpers (closed by :meth:`close`)."""

    def __init__(self, config: str, conninfo: str, options: Options, data: Dataset) -> None:
        from wxdata import ExecutionContext, Purpose, Role

        self.config = config
        self.conninfo = conninfo
        self.options = options
        self.data = data
        self.rng = random.Random(options.seed + ord(config))
        self.tag = f"{config}{uuid.uuid4().hex[:6].upper()}"
        self._counter = 0
        self.ctx = ExecutionContext(
            user_id="u-bench-nurse", role=Role.NURSE, purpose=Purpose.TREATMENT,
            ip_address="10.1.2.3", user_agent="wxdata-bench", request_id="req-bench-1",
        )
        self._closers: list[Callable[[], None]] = []
        self._cache: dict[str, Any] = {}
        self._closers.append(owner_runs(conninfo))

    # connections, opened on first use and kept for the whole configuration
    def _once(self, key: str, make: Callable[[], Any], close: Callable[[Any], None]) -> Any:
        if key not in self._cache:
            value = make()
            self._cache[key] = value
            self._closers.append(lambda: close(value))
        return self._cache[key]

    @property
    def raw(self) -> psycopg.Connection[Any]:
        """The raw psycopg connection (autocommit)."""
        return self._once("raw", lambda: psycopg.connect(self.conninfo, autocommit=True),
                          lambda c: c.close())

    @property
    def wx(self) -> psycopg.Connection[Any]:
        """The connection wxdata runs on (``wxdata.db.connect``, autocommit)."""
        from wxdata.db import connect

        return self._once("wx", lambda: connect(self.conninfo), lambda c: c.close())

    def connection(self, key: str) -> psycopg.Connection[Any]:
        """An extra autocommit connection under its own key (e.g. for input preparation)."""
        return self._once(key, lambda: psycopg.connect(self.conninfo, autocommit=True),
                          lambda c: c.close())

    def engine(self, autocommit: bool = True, pool_size: int = 10) -> Any:
        """A SQLAlchemy 2 engine over psycopg 3 on the same conninfo (AUTOCOMMIT or transactional)."""
        from sqlalchemy import create_engine

        def make() -> Any:
            kwargs: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 4}
            if autocommit:
                kwargs["isolation_level"] = "AUTOCOMMIT"
            return create_engine(
                "postgresql+psycopg://", creator=lambda: psycopg.connect(self.conninfo), **kwargs
            )

        return self._once(f"engine-{autocommit}-{pool_size}", make, lambda e: e.dispose())

    def core(self) -> Any:
        """A long-lived SQLAlchemy Core connection in AUTOCOMMIT mode (one round trip per statement)."""
        return self._once("core", lambda: self.engine(True).connect(), lambda c: c.close())

    def sessions(self, autocommit: bool = True) -> Any:
        """A ``sessionmaker`` (``expire_on_commit=False``) bound to the AUTOCOMMIT or the tx engine."""
        from sqlalchemy.orm import sessionmaker

        return self._once(f"sessions-{autocommit}",
                          lambda: sessionmaker(self.engine(autocommit), expire_on_commit=False),
                          lambda _: None)

    def unique(self, prefix: str) -> str:
        """A student number never used before in this run."""
        self._counter += 1
        return f"{prefix}{self.tag}{self._counter:08d}"

    def memo(self, key: str, make: Callable[[], Any]) -> Any:
        """A value computed once per configuration (captured SQL, prebuilt statements...)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def on_close(self, closer: Callable[[], None]) -> None:
        """Run ``closer`` when the environment closes (after what was opened later)."""
        self._closers.append(closer)

    def close(self) -> None:
        """Close every connection, engine and pool this environment opened."""
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                closer()
        self._closers.clear()
        self._cache.clear()


def publish(report: str, output: str | None) -> None:
    """Print a stand-alone benchmark's Markdown report, and write it to ``output`` when given."""
    print(report)
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(report + "\n")


@contextlib.contextmanager
def read_commit_async() -> Iterator[None]:
    """Run with ``AUDIT_READ_COMMIT=async`` (audit on), restoring the previous settings after."""
    from wxdata.config import configure, settings

    previous = settings()
    configure(attrs.evolve(previous, audit_read_commit="async"))
    try:
        yield
    finally:
        configure(previous)


@contextlib.contextmanager
def audit_disabled() -> Iterator[None]:
    """Run with ``AUDIT_ENABLED=false`` (process settings), restoring the previous settings after."""
    from wxdata.config import configure, settings

    previous = settings()
    configure(attrs.evolve(previous, audit_enabled=False))
    try:
        yield
    finally:
        configure(previous)


class Recorder(psycopg.Cursor[Any]):
    """A cursor that records every statement it executes (to replay wxdata's SQL with raw psycopg)."""

    log: list[tuple[str, Any]] = []

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        """Record, then execute."""
        text = query if isinstance(query, str) else bytes(query).decode() if isinstance(
            query, bytes | bytearray) else str(query)
        Recorder.log.append((text, dict(params) if isinstance(params, dict) else params))
        return super().execute(query, params, **kwargs)


def capture(env: Env, run: Callable[[psycopg.Connection[Any]], object],
            conninfo: str | None = None) -> list[tuple[str, Any]]:
    """The statements (text, params) ``run`` sends through a fresh connection, in order."""
    Recorder.log = []
    with psycopg.connect(conninfo or env.conninfo, autocommit=True, cursor_factory=Recorder) as conn:
        outcome = run(conn)
    if not outcome:
        raise BenchmarkError(f"capture run failed: {outcome!r}")
    log, Recorder.log = Recorder.log, []
    # wxdata's once-per-connection probes (role privileges, scope-key fingerprint) are not part of
    # the statements of an operation
    return [(text, params) for text, params in log if not any(p in text for p in _PROBES)]


_PROBES = ("FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
           "wxdata_scope_key_fingerprint()")


def statement(log: list[tuple[str, Any]], contains: str) -> tuple[str, dict[str, Any]]:
    """The first captured statement whose text contains ``contains``."""
    for text, params in log:
        if contains in text:
            return text, dict(params or {})
    raise BenchmarkError(f"no captured statement contains {contains!r}")


def sent_statement(conninfo: str, call: Callable[[psycopg.Connection[Any]], Any],
                   contains: str = "audit_log") -> tuple[str, dict[str, Any]]:
    """The first statement containing ``contains`` (by default: the one carrying an audit record)
    that ``call``, a wxdata call whose Result is unwrapped, sends through a fresh connection to
    ``conninfo``, with its parameters: captured once, for raw psycopg to send."""
    Recorder.log = []
    try:
        with psycopg.connect(conninfo, autocommit=True, cursor_factory=Recorder) as conn:
            call(conn).unwrap()
        return statement(Recorder.log, contains)
    finally:
        Recorder.log = []


# --- timing ---------------------------------------------------------------------------------------


def run_writers(writers: int, seconds: float,
                call: Callable[[int, int], bool]) -> tuple[int, int, float]:
    """(calls that succeeded, calls that failed, wall seconds): ``writers`` threads, released
    together, each calling ``call(i, k)`` back to back until ``seconds`` have passed (``i`` the
    thread's index, ``k`` its running count: ``i``, ``i + writers``, ... so the threads share out
    the inputs ``k`` indexes)."""
    ok, bad = [0] * writers, [0] * writers
    start = threading.Barrier(writers + 1)
    stop = [0.0]

    def writer(i: int) -> None:
        k = i
        start.wait()
        deadline = stop[0]
        while time.perf_counter() < deadline:
            if call(i, k):
                ok[i] += 1
            else:
                bad[i] += 1
            k += writers

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(writers)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    stop[0] = t0 + seconds
    start.wait()
    for t in threads:
        t.join()
    return sum(ok), sum(bad), time.perf_counter() - t0


def _timed(op: Op, xs: list[Any]) -> tuple[int, int]:
    bad = 0
    clock = time.perf_counter_ns
    t0 = clock()
    for x in xs:
        if not op(x):
            bad += 1
    return clock() - t0, bad


def measure(env: Env, wl: Workload, *, log: Callable[[str], None] = print) -> list[Result]:
    """Run every variant of ``wl`` interleaved, ``reps`` times; return one Result per variant."""
    opts = env.options
    ops: dict[str, Op] = {}
    variants = list(wl.variants)
    for v in variants:
        ops[v.name] = v.make(env)

    def batch(v: Variant, n: int) -> float:
        xs = wl.inputs(env, n)
        ctx = v.around() if v.around is not None else contextlib.nullcontext()
        with ctx:
            ns, bad = _timed(ops[v.name], xs)
        if bad:
            raise BenchmarkError(f"{wl.title} / {v.name}: {bad} of {n} operations failed")
        return ns / 1000 / n

    # warm-up (prepares statements, fills plan caches) and calibration of the batch size
    probe = 1 if wl.fixed_batch else (3 if opts.quick else 20)
    slowest = 0.0
    for v in variants:
        first = batch(v, probe)
        slowest = max(slowest, first if wl.fixed_batch else batch(v, probe))
    if wl.fixed_batch:
        n = wl.fixed_batch
    else:
        cap = min(wl.max_batch or opts.max_batch, opts.max_batch)
        n = int(opts.batch_seconds * 1e6 / max(slowest, 1.0))
        n = max(3 if opts.quick else 10, min(cap, n))
    samples: dict[str, list[float]] = {v.name: [] for v in variants}
    for rep in range(opts.reps):
        k = rep % len(variants)
        for v in variants[k:] + variants[:k]:
            samples[v.name].append(batch(v, n))
    if wl.cleanup is not None:
        wl.cleanup(env)
    out = [
        Result(wl.title, v.name, env.config, samples[v.name], n, v.family, v.baseline, wl.section,
               wl.scale, extra={"note": wl.note} if wl.note else {})
        for v in variants
    ]
    base = next((r.median for r in out if r.baseline), None)
    for r in out:
        ratio = f"{r.median / base:5.2f}x" if base else "   - "
        log(f"  [{env.config}] {wl.title:<34} {r.variant:<44} {fmt_us(r.median):>10} "
            f"({fmt_us(r.lo)}-{fmt_us(r.hi)})  {ratio}")
    return out


def fmt_us(us: float) -> str:
    """µs with a unit that keeps 3 significant figures."""
    if us >= 100_000:
        return f"{us / 1000:.0f} ms"
    if us >= 10_000:
        return f"{us / 1000:.1f} ms"
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    if us >= 100:
        return f"{us:.0f} µs"
    return f"{us:.1f} µs"


# --- configurations A and B -----------------------------------------------------------------------


def _tasks(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return [pid]


def _children(ppid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(ppid):
            out.append(int(entry))
    return out


class Pinning:
    """Pins processes (every thread, like ``taskset -a``) to one core; remembers and restores."""

    def __init__(self, core: int) -> None:
        self.core = core
        self.saved: dict[int, set[int]] = {}
        self.postmaster: int | None = None
        self.notes: list[str] = []

    def pin(self, pid: int) -> None:
        """Pin every thread of ``pid`` (remembering each thread's previous affinity)."""
        for tid in _tasks(pid):
            try:
                if tid not in self.saved:
                    self.saved[tid] = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, {self.core})
            except ProcessLookupError:
                continue  # exited meanwhile
            except PermissionError as exc:
                self.notes.append(f"could not pin {tid}: {type(exc).__name__}")

    def pin_server(self, postmaster: int) -> None:
        """Pin the postmaster (new backends inherit) and every existing child process."""
        self.postmaster = postmaster
        self.pin(postmaster)
        for child in _children(postmaster):
            self.pin(child)

    def restore(self) -> None:
        """Give every pinned thread its previous affinity back, and un-pin backends born meanwhile."""
        default = self.saved.get(self.postmaster) if self.postmaster else None
        for tid, mask in self.saved.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, mask)
        if self.postmaster and default:
            for child in _children(self.postmaster):
                if child in self.saved:
                    continue
                for tid in _tasks(child):
                    with contextlib.suppress(OSError):
                        if os.sched_getaffinity(tid) == {self.core}:
                            os.sched_setaffinity(tid, default)
        self.saved.clear()


def _local_pid(pid: int, needle: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return needle.encode() in fh.read()
    except OSError:
        return False


def postmaster_pid(conninfo: str) -> int | None:
    """The server's postmaster pid when it runs on this machine (parent of our backend), else None."""
    with psycopg.connect(conninfo, autocommit=True) as conn:  # the backend must be alive to look
        row = conn.execute("SELECT pg_backend_pid(), current_database()").fetchone()
        assert row is not None
        backend, dbname = row
        if not _local_pid(backend, dbname):
            return None
        with open(f"/proc/{backend}/stat") as fh:
            stat = fh.read()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def redis_pid(url: str | None) -> int | None:
    """The Redis server's pid when it is reachable and runs on this machine, else None."""
    if not url:
        return None
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=1)
        pid = int(client.info("server")["process_id"])
        client.close()
    except Exception:
        return None
    return pid if _local_pid(pid, "redis") else None


def config_conninfo(db_url: str, config: str) -> str:
    """The conninfo every client uses in this configuration (same options for all of them)."""
    options = ["-c statement_timeout=30000", "-c idle_in_transaction_session_timeout=30000"]
    if config == "B":
        options.append("-c synchronous_commit=off")
    existing = conninfo_to_dict(db_url)
    if "options" in existing:
        options.insert(0, str(existing["options"]))
    return make_conninfo(db_url, options=" ".join(options), application_name="wxdata-bench")


NO_PIN_HELP = ("pin no process (the servers may be shared with other work, as in a test run); the "
               "configurations then differ only in synchronous_commit")


def client_core(server_core: int) -> int | None:
    """The core configuration A runs this process on: the first one this process may use other
    than the servers' core, or None when there is no other (A then pins nothing)."""
    others = sorted(os.sched_getaffinity(0) - {server_core})
    return others[0] if others else None


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """``--config A|B`` of a benchmark run on its own: pin as the main suite does, or nothing."""
    parser.add_argument("--config", choices=("A", "B"), default=None,
                        help="pin as the main suite's configuration does (B: client and servers "
                             "on one core, the CPU each side spends); default: pin nothing")


def print_in_configuration(config: str | None, database_url: str | None,
                           report: Callable[[], str]) -> int:
    """Print ``report()``, made inside configuration ``config`` (pinned) when one is given."""
    if config is None:
        print(report())
        return 0
    server = database_url or os.environ["DATABASE_URL"]
    with configuration(config, server, Options(database_url=server), log=print):
        print(report())
    return 0


@contextlib.contextmanager
def configuration(config: str, db_url: str, options: Options, *,
                  log: Callable[[str], None] = print) -> Iterator[tuple[str, list[str]]]:
    """Enter configuration A or B; yields (conninfo, notes). Affinities are restored on exit.

    Both pin the PostgreSQL postmaster with every child (new backends inherit) and Redis to
    ``options.core``. A runs this process on another core, so every round trip crosses cores as
    it would cross a network (left to the scheduler, client and server sometimes share a core and
    sometimes not, and a round trip then takes one of two times about 3x apart, changing from one
    batch to the next). B runs this process on the servers' core (no cross-core wake-ups: the CPU
    each side spends is what is left).
    """
    conninfo = config_conninfo(db_url, config)
    notes: list[str] = []
    servers = Pinning(options.core)
    own_core = (options.core if config == "B" else client_core(options.core)) if options.pin \
        else None
    client = Pinning(own_core if own_core is not None else options.core)
    previous_handler = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    try:
        if threading_is_main():
            signal.signal(signal.SIGTERM, on_term)
        if not options.pin:
            notes.append("nothing pinned (--no-pin)")
        elif own_core is None:
            notes.append("one core only: nothing pinned (client and server share it)")
        else:
            client.pin(os.getpid())
            notes.append(f"this process pinned to core {own_core}")
            pm = postmaster_pid(conninfo)
            if pm is None:
                notes.append("PostgreSQL is not local: only the client was pinned")
            else:
                servers.pin_server(pm)
                notes.append(f"postmaster {pm} and its children pinned to core {options.core}")
            rp = redis_pid(os.environ.get("REDIS_URL"))
            if rp is not None:
                servers.pin(rp)
                notes.append(f"redis {rp} pinned to core {options.core}")
        notes.extend(client.notes + servers.notes)
        for n in notes:
            log(f"  [{config}] {n}")
        yield conninfo, notes
    finally:
        servers.restore()
        client.restore()
        if threading_is_main():
            signal.signal(signal.SIGTERM, previous_handler)


def threading_is_main() -> bool:
    """True in the main thread (signal handlers can only be set there)."""
    import threading

    return threading.current_thread() is threading.main_thread()


# --- the run driver -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Options from the command line (see ``python -m benchmarks --help``)."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="wxdata vs raw psycopg vs SQLAlchemy 2: interleaved, medians, ratios, A/B.",
    )
    p.add_argument("--quick", action="store_true", help="short smoke run (few reps, tiny batches)")
    p.add_argument("--targets", action="store_true",
                   help="the audited-performance targets table only: its workloads and variants, "
                        f"{TARGETS_SCALE:,} students, {TARGETS_REPS} repetitions, no scaling, no "
                        "optional modules (other options still apply on top)")
    p.add_argument("--wal-reads", type=int, default=None,
                   help="audited reads per repetition of the WAL measurement (default 500)")
    p.add_argument("--scale", type=int, default=None, help="students to seed (default 100000)")
    p.add_argument("--records-per-student", type=int, default=3)
    p.add_argument("--config", choices=("A", "B", "both"), default="both")
    p.add_argument("--only", default=None,
                   help="comma-separated workload keys: " + ",".join(ALL_KEYS))
    p.add_argument("--reps", type=int, default=None, help="repetitions (default 7, quick 2)")
    p.add_argument("--batch-seconds", type=float, default=None,
                   help="target time of the slowest variant's batch (default 0.25)")
    p.add_argument("--bulk-rows", type=int, default=None, help="rows per bulk create (10000)")
    p.add_argument("--mixed-seconds", type=float, default=None, help="school-day run length per rep")
    p.add_argument("--threads", type=int, default=8, help="threads of the school-day workload")
    p.add_argument("--scaling", default=None,
                   help="comma-separated student counts for the scaling runs (default 10000,100000;"
                        " add 1000000 for the 1M run; 'none' to skip)")
    p.add_argument("--database-url", default=None,
                   help="server to create the benchmark database on (default DATABASE_URL, else "
                        "the embedded PostgreSQL)")
    p.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--no-chart", action="store_true")
    p.add_argument("--no-write", action="store_true", help="print only, write no files")
    p.add_argument("--no-extras", action="store_true",
                   help="skip optional modules " + ", ".join(f"benchmarks/{m}.py" for m in EXTRA_MODULES))
    p.add_argument("--keep-db", action="store_true", help="do not drop the benchmark database")
    p.add_argument("--core", type=int, default=0,
                   help="core the servers are pinned to (and, in configuration B, this process)")
    p.add_argument("--no-pin", action="store_true", help=NO_PIN_HELP)
    p.add_argument("--profile", default=None, metavar="KEY",
                   help="profile the wxdata variant of one workload with cProfile and exit")
    p.add_argument("--profile-ops", type=int, default=2000)
    a = p.parse_args(argv)
    o = Options(quick=a.quick, targets=a.targets)
    if a.targets:
        o.only, o.families, o.scaling = TARGET_KEYS, TARGET_FAMILIES, ()
        o.scale, o.reps = TARGETS_SCALE, TARGETS_REPS
    if a.quick:
        o.scale, o.reps, o.batch_seconds, o.max_batch = 2000, 2, 0.02, 200
        o.bulk_rows, o.mixed_seconds, o.mixed_reps, o.scaling = 500, 0.3, 1, ()
        o.wal_reads = 50
    if a.wal_reads is not None:
        o.wal_reads = max(1, a.wal_reads)
    if a.scale is not None:
        o.scale = a.scale
    o.records_per_student = a.records_per_student
    o.configs = ("A", "B") if a.config == "both" else (a.config,)
    if a.only:
        keys = frozenset(k.strip() for k in a.only.split(",") if k.strip())
        unknown = keys - set(ALL_KEYS)
        if unknown:
            p.error(f"unknown workload keys: {', '.join(sorted(unknown))}")
        o.only = keys
    if a.reps is not None:
        o.reps = max(1, a.reps)
    if a.batch_seconds is not None:
        o.batch_seconds = a.batch_seconds
    if a.bulk_rows is not None:
        o.bulk_rows = a.bulk_rows
    if a.mixed_seconds is not None:
        o.mixed_seconds = a.mixed_seconds
    if a.scaling is not None:
        o.scaling = () if a.scaling.strip() in ("", "none") else tuple(
            int(s) for s in a.scaling.split(",") if s.strip())
    o.mixed_threads = a.threads
    o.database_url = a.database_url
    o.output_dir = a.output_dir
    o.chart = not a.no_chart
    o.write = not a.no_write
    o.extras = not a.no_extras and not a.targets
    o.keep_db = a.keep_db
    o.core = a.core
    o.pin = not a.no_pin
    o.profile = a.profile
    o.profile_ops = a.profile_ops
    return o


ALL_KEYS = ("fetch", "rls", "page", "search", "create", "update", "delete", "bulk", "create_tx",
            "phi_read", "mixed", "cache", "audit_rate", "wal", "scaling", "extras")
#: ``--targets``: the workloads and variant families the targets table (benchmarks/report.py) reads.
TARGET_KEYS = frozenset({"fetch", "page", "phi_read", "create", "update", "bulk", "mixed", "cache",
                         "audit_rate", "wal"})
TARGET_FAMILIES = frozenset({"raw", "raw_audit", "floor", "wx", "wx_noaudit", "wx_relaxed"})
TARGETS_SCALE = 100_000
TARGETS_REPS = 7


def server_url(options: Options) -> str:
    """The admin URL: --database-url, DATABASE_URL, or the embedded PostgreSQL."""
    url = options.database_url or os.environ.get("DATABASE_URL")
    if url:
        return url
    from wxdata.db import embedded_url

    return embedded_url("postgres")


def metadata(options: Options, server: str) -> dict[str, Any]:
    """Facts about the run (versions, machine, load) stored with the results."""
    import psycopg_pool

    try:
        import sqlalchemy

        sa_version = sqlalchemy.__version__
    except ImportError:  # pragma: no cover
        sa_version = "absent"
    with psycopg.connect(server, autocommit=True) as c:
        row = c.execute("SHOW server_version").fetchone()
    commit = git_commit(Path(__file__).resolve().parent.parent)
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(), "psycopg": psycopg.__version__,
        "psycopg_pool": psycopg_pool.__version__, "sqlalchemy": sa_version,
        "postgresql": row[0] if row else "?", "cpus": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()), "git_commit": commit,
        "scale": options.scale, "records_per_student": options.records_per_student,
        "reps": options.reps, "quick": options.quick, "targets": options.targets,
        "configs": list(options.configs),
        "server": conninfo_to_dict(server).get("host") or "socket",
    }


def git_commit(root: Path) -> str:
    """The checked-out commit of ``root`` (12 hex digits; also in a linked worktree), else unknown."""
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out[:12] or "unknown"


@dataclass
class Report:
    """Everything a run produced."""

    meta: dict[str, Any]
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    markdown: str = ""
    files: list[Path] = field(default_factory=list)
    extra_markdown: list[str] = field(default_factory=list)
    modules: dict[str, tuple[Any, list[Result]]] = field(default_factory=dict)


def _extras(env: Env, log: Callable[[str], None], rep: Report) -> list[Result]:
    """Results of the optional modules other engineers own (``run(env) -> list[Result]``)."""
    out: list[Result] = []
    for name in EXTRA_MODULES:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"benchmarks.{name}":
                log(f"  [{env.config}] benchmarks/{name}.py: import failed ({exc})")
            continue
        run = getattr(module, "run", None)
        if not callable(run):
            log(f"  [{env.config}] benchmarks/{name}.py has no run(env): run it on its own")
            continue
        try:
            got = run(env)
        except Exception as exc:
            message = f"benchmarks/{name}.py failed: {type(exc).__name__}: {str(exc).strip()[:200]}"
            log(f"  [{env.config}] {message}")
            rep.notes.append(f"{env.config}: {message}")
            continue
        mine = [r for r in got or [] if isinstance(r, Result)]
        for r in mine:
            if r.section in ("main", "mixed", "scaling"):
                r.section = f"extra:{name}"
        rep.modules.setdefault(name, (module, []))[1].extend(mine)
        out.extend(mine)
    return out


def _module_reports(rep: Report, log: Callable[[str], None]) -> None:
    """The optional modules' own summaries (their ``report(results) -> str``), if they have one."""
    for name, (module, results) in rep.modules.items():
        render = getattr(module, "report", None)
        if not results or not callable(render):
            continue
        try:
            text = str(render(results))
        except Exception as exc:
            log(f"benchmarks/{name}.py report failed: {type(exc).__name__}: {exc}")
            continue
        rep.extra_markdown.append(f"### benchmarks/{name}.py\n\n```\n{text.strip()}\n```")


def owner_runs(conninfo: str) -> Callable[[], None]:
    """Let wxdata act for the benchmark's nurse on the owner's connections; returns the undo.

    The workloads compare wxdata with raw psycopg on the database owner's connections (the RLS
    workload alone connects as the application role), so the refusal of privileged connections
    is lifted for the benchmark's lifetime, and the scope key (the configured one, else one
    generated for the run) is installed in the benchmark database.
    """
    import secrets

    import attrs

    from wxdata.config import configure, settings
    from wxdata.roles import install_scope_key
    from wxdata.tx.token import scope_key, use_fallback_key

    key = scope_key()
    if key is None:
        key = secrets.token_bytes(32)
        use_fallback_key(key)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        install_scope_key(conn, key)
    if not _LIFTS:  # the first lift remembers the setting; the last undo puts it back
        _LIFTED_FROM[:] = [settings().allow_privileged_connection]
        configure(attrs.evolve(settings(), allow_privileged_connection=True))
    token = object()
    _LIFTS.append(token)

    def undo() -> None:
        if token in _LIFTS:
            _LIFTS.remove(token)
            if not _LIFTS:
                configure(attrs.evolve(settings(),
                                       allow_privileged_connection=_LIFTED_FROM[0]))

    return undo


#: Open lifts of the privileged-connection refusal (environments overlap: A and B, or two
#: schemas), and the setting before the first of them.
_LIFTS: list[object] = []
_LIFTED_FROM: list[bool] = []


def main(argv: Sequence[str] | None = None, *, log: Callable[[str], None] = print) -> Report:
    """Run the suite: create, migrate and seed a database, measure, report, drop the database."""
    from benchmarks import audit_capacity, workloads
    from benchmarks import report as reporting
    from benchmarks import seed as seeding

    os.environ.setdefault("WXDATA_ENV", "bench")
    options = parse_args(argv)
    server = server_url(options)
    if options.profile:
        workloads.profile(options, server, log=log)
        return Report(meta={})
    rep = Report(meta=metadata(options, server))
    started = time.perf_counter()
    steps: dict[str, float] = {}
    rep.meta["step_seconds"] = steps

    @contextlib.contextmanager
    def timed(config: str, step: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            steps[f"{config}:{step}"] = round(time.perf_counter() - t0, 1)
            log(f"  [{config}] {step}: {steps[f'{config}:{step}']:.1f} s")
    selected = [w for w in workloads.MAIN if options.wants(w)]
    run_main_db = bool(selected) or any(options.wants(k) for k in ("mixed", "cache", "audit_rate")) \
        or (options.extras and options.wants("extras"))
    if run_main_db:
        with seeding.bench_database(server, options, options.scale,
                                    options.records_per_student, log=log) as (db_url, data):
            for config in options.configs:
                settle(db_url)
                with configuration(config, db_url, options, log=log) as (conninfo, notes):
                    rep.notes.extend(f"{config}: {n}" for n in notes)
                    env = Env(config, conninfo, options, data)
                    try:
                        for key in selected:
                            quiesce(db_url, log=log)
                            with timed(config, key):
                                for wl in workloads.MAIN[key](env):
                                    wl.variants = [v for v in wl.variants if v.baseline
                                                   or options.keeps(v.family)]
                                    rep.results.extend(measure(env, wl, log=log))
                        if options.wants("cache"):
                            with timed(config, "cache"):
                                got, note = workloads.cache_hits(env, log=log)
                            rep.results.extend(got)
                            if note and note not in rep.notes:
                                rep.notes.append(note)
                        if options.wants("mixed"):
                            with timed(config, "mixed"):
                                rep.results.extend(workloads.school_day(env, log=log))
                        if options.wants("audit_rate"):
                            with timed(config, "audit_rate"):
                                rep.results.extend(audit_capacity.audit_log_rate(env, log=log))
                        if options.extras and options.wants("extras"):
                            with timed(config, "extras"):
                                rep.results.extend(_extras(env, log, rep))
                    finally:
                        env.close()
    if options.wants("wal"):
        with timed("-", "wal"):
            rep.results.extend(audit_capacity.wal_per_read(server, options, log=log))
    if options.wants("scaling"):
        for scale in options.scaling:
            with seeding.bench_database(server, options, scale, 0, log=log) as (db_url, data):
                for config in options.configs:
                    settle(db_url)
                    with configuration(config, db_url, options, log=log) as (conninfo, _):
                        env = Env(config, conninfo, options, data)
                        try:
                            for wl in workloads.scaling(env, scale):
                                rep.results.extend(measure(env, wl, log=log))
                        finally:
                            env.close()
    rep.meta["loadavg_end"] = list(os.getloadavg())
    rep.meta["seconds"] = round(time.perf_counter() - started, 1)
    rep.meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    finalize(rep.results)
    _module_reports(rep, log)
    rep.markdown = reporting.markdown(rep)
    log("")
    log(rep.markdown)
    if options.write:
        rep.files = reporting.write(rep, options.output_dir, chart=options.chart,
                                    day=date.today().isoformat())
        for f in rep.files:
            log(f"wrote {f}")
    return rep


def settle(db_url: str) -> None:
    """VACUUM ANALYZE the tables the workloads touch, so every configuration starts alike."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        for table in ("students", "health_records", "audit_log"):
            conn.execute(f"VACUUM ANALYZE {table}")


#: How long :func:`quiesce` waits for the server's autovacuum workers to finish.
QUIESCE_WAIT_S = 20.0
_AUTOVACUUM_BUSY = ("SELECT count(*), clock_timestamp() FROM pg_stat_activity "
                    "WHERE backend_type = 'autovacuum worker' AND datname = current_database()")


def quiesce(db_url: str, *, log: Callable[[str], None] = print) -> datetime:
    """Leave the server no background work of the previous workload's making before the next one.

    The previous workload's audit records are vacuumed now (else an autovacuum worker would do it
    during the next workload's batches), its dirty pages are written by a CHECKPOINT (else the
    checkpointer spreads them over the next minutes), and any autovacuum worker still on this
    database is waited for (at most :data:`QUIESCE_WAIT_S`). In configuration B every server
    process shares the measured core, so what they do in the background lands in the figures.

    Returns the server's clock at the last look at the workers: the launcher may start a new
    worker at any moment after it, which no wait can prevent.
    """
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("VACUUM audit_log")
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            log("  quiesce: this role may not CHECKPOINT; the checkpointer may write meanwhile")
        deadline = time.monotonic() + QUIESCE_WAIT_S
        while True:
            row = conn.execute(_AUTOVACUUM_BUSY).fetchone()
            assert row is not None  # an aggregate always returns its row
            busy, looked_at = row[0], row[1]
            if not busy:
                return looked_at
            if time.monotonic() > deadline:
                log(f"  quiesce: {busy} autovacuum worker(s) still running after "
                    f"{QUIESCE_WAIT_S:.0f} s")
                return looked_at
            time.sleep(0.2)


def run_cli() -> int:
    """Entry point of ``python -m benchmarks``."""
    try:
        main(sys.argv[1:])
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    return 0


def dumps(obj: Any) -> str:
    """JSON with dates, UUIDs and paths as strings."""
    return json.dumps(obj, indent=1, default=str)
