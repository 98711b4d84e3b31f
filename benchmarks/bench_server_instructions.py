"""Server instructions per audited read: the record's cost on the server, counted, not timed.

A timing of one riding statement moves with the host (a virtual machine's system calls, another
process's load), and an index's share of it is a few per cent. This counts instead the
instructions PostgreSQL itself executes per statement, with ``valgrind --tool=callgrind``, which
are the same on any host for the same server binary and data:

1. a private PostgreSQL cluster (``initdb`` from ``--pg-bin``) is started, migrated and seeded;
   wxdata's PHI read by id (a health record) is captured with its riding record, and copies of
   ``audit_log`` are made with the index sets compared;
2. the cluster is stopped, and for each variant the backend runs in single-user mode
   (``postgres --single``) under callgrind: the statement prepared (generic plan), then executed
   ``--warm`` times, and, in a second run, ``--warm + --executions`` times, each with a health
   record id of the seeded data; the difference of the two runs' counts, divided by
   ``--executions``, is the instructions one execution costs, start-up and warm-up excluded.

The context's values are written into the prepared statement as literals (single-user mode takes
no bound parameters), the same for every variant. Every execution returns its row (printed by the
single-user backend, the same for every variant). ``--rounds`` repeats the whole count to show it
is repeatable. Variants: the bare fetch, the floor (one narrow row into an unindexed table), the
by-id read as wxdata sends it with the audit off (its columns listed as the table stores them) and
with its columns in the row's order (as before), the record into ``audit_log`` (and the same with
the columns in the row's order), into an unpartitioned copy with its indexes, with the GIN index
per array it had before migration 0219, without the partial index of records that name their row
by ``entity_id`` alone (which holds none of wxdata's own but is checked on every insert), without
the ``transaction_id`` index (which the sealer reads), with the closed vocabularies (``action``,
``compliance_type``, ``severity``) as varchar with no check and as the domains they were before
migration 0220 (the log holds them as enum types), and with no index; then records of other
shapes: a table of reads alone (a read's columns, no index), the record normalised (the context
and the record's shape each stored once and referenced by key) with audit_log's indexes and with
none, and the narrow floor record carrying every context value wxdata's record binds.

    python -m benchmarks.bench_server_instructions --executions 500 --rounds 2
    python -m benchmarks.bench_server_instructions --only vocabularies --only "unpartitioned copy"

``--only`` (repeatable) counts the variants whose name contains its text, and the bare fetch.

Needs valgrind and the PostgreSQL server binaries (``--pg-bin``, default ``pg_config --bindir``);
run as root, the cluster runs as the ``postgres`` operating-system user.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import pwd
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from benchmarks.bench_audit_floor import (
    FETCH_RECORD,
    FLOOR_DDL,
    FLOOR_READ,
    _slot,
    record_shapes,
)
from benchmarks.common import Env, Options, capture, statement
from benchmarks.seed import bench_database

#: Copies of audit_log, unpartitioned, each with the index set or the vocabularies' types it names.
_COPIES = (
    "CREATE SEQUENCE bench_copy_seq",
    "CREATE TABLE bench_copy_now (LIKE audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
    "INCLUDING INDEXES)",
    "CREATE TABLE bench_copy_gin_per_array (LIKE audit_log INCLUDING DEFAULTS INCLUDING "
    "CONSTRAINTS INCLUDING INDEXES)",
    "CREATE TABLE bench_copy_bare (LIKE audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
    "CREATE TABLE bench_copy_no_partial (LIKE audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
    "INCLUDING INDEXES)",
    "CREATE TABLE bench_copy_no_xid (LIKE audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
    "INCLUDING INDEXES)",
    "ALTER TABLE bench_copy_now ALTER seq SET DEFAULT nextval('bench_copy_seq')",
    "ALTER TABLE bench_copy_gin_per_array ALTER seq SET DEFAULT nextval('bench_copy_seq')",
    "ALTER TABLE bench_copy_bare ALTER seq SET DEFAULT nextval('bench_copy_seq')",
    "ALTER TABLE bench_copy_no_partial ALTER seq SET DEFAULT nextval('bench_copy_seq')",
    "ALTER TABLE bench_copy_no_xid ALTER seq SET DEFAULT nextval('bench_copy_seq')",
    "CREATE TABLE bench_copy_plain_vocab (LIKE audit_log INCLUDING DEFAULTS INCLUDING "
    "CONSTRAINTS INCLUDING INDEXES)",
    "ALTER TABLE bench_copy_plain_vocab ALTER seq SET DEFAULT nextval('bench_copy_seq'), "
    "ALTER action TYPE varchar(50), ALTER compliance_type TYPE varchar(50), "
    "ALTER severity TYPE varchar(50)",
    "CREATE TABLE bench_copy_domain_vocab (LIKE audit_log INCLUDING DEFAULTS INCLUDING "
    "CONSTRAINTS INCLUDING INDEXES)",
    "ALTER TABLE bench_copy_domain_vocab ALTER seq SET DEFAULT nextval('bench_copy_seq'), "
    "ALTER compliance_type DROP DEFAULT, ALTER severity DROP DEFAULT, "
    "ALTER action TYPE bench_action USING action::text, "
    "ALTER compliance_type TYPE bench_compliance USING compliance_type::text, "
    "ALTER severity TYPE bench_severity USING severity::text",
)

#: The records of other shapes counted (``bench_audit_floor.record_shapes``): what is left of the
#: record's cost with no index, the columns of a read alone, the context stored once and referenced
#: by key, and the narrow floor record carrying every context value wxdata's record binds.
_SHAPES = (
    "reads in their own table: a read's columns only, no index",
    "normalised (context and shape by key), audit_log's indexes",
    "normalised (context and shape by key), no index",
    "floor record with every context parameter bound",
)
#: Copies each without one index of audit_log: (table, what picks the index out of its indexdef).
_ONE_LESS = (("bench_copy_no_partial", "% WHERE %"), ("bench_copy_no_xid", "%(transaction_id)%"))


def _vocabulary_domains() -> list[sql.Composed]:
    """The log's three closed vocabularies as they were before migration 0220: domains over
    varchar whose check lists the labels (for the copy that holds them so)."""
    from wxdata.audit.record import AuditAction, AuditSeverity, ComplianceType

    return [sql.SQL("CREATE DOMAIN {} AS varchar(50) CHECK (VALUE IN ({}))").format(
        sql.Identifier(name), sql.SQL(",").join(sql.Literal(m.value) for m in members))
        for name, members in (("bench_action", AuditAction),
                              ("bench_compliance", ComplianceType),
                              ("bench_severity", AuditSeverity))]


def _bin_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    found = shutil.which("pg_config")
    if found:
        return Path(subprocess.run([found, "--bindir"], check=True, capture_output=True,
                                   text=True).stdout.strip())
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if not versions:
        raise SystemExit("no PostgreSQL server binaries: pass --pg-bin")
    return versions[-1]


def _as_server_user(argv: list[str]) -> list[str]:
    """``argv`` run as the ``postgres`` user when this process is root (initdb refuses root)."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _cluster(bindir: Path) -> Iterator[tuple[Path, str]]:
    """A private cluster in a temporary folder: (data directory, superuser URL while started)."""
    root = Path(tempfile.mkdtemp(prefix="wxdata-instr-"))
    data = root / "data"
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    try:
        subprocess.run(_as_server_user([str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                                        "-U", "postgres"]), check=True, capture_output=True)
        yield data, str(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _pg_ctl(bindir: Path, data: Path, *args: str) -> None:
    subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-w", *args]),
                   check=True, capture_output=True)


@contextlib.contextmanager
def _serving(bindir: Path, data: Path, folder: str) -> Iterator[str]:
    """The cluster started on a free local port for the block (its superuser URL), then
    stopped, so that its single-user backend can be counted."""
    port = _free_port()
    _pg_ctl(bindir, data, "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1",
            "-l", f"{folder}/log", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        _pg_ctl(bindir, data, "stop")


def _literal(conn: psycopg.Connection[Any], value: Any) -> str:
    return sql.Literal(value).as_string(conn)


def _callgrind(bindir: Path, data: Path, folder: str, database: str, script: str
               ) -> tuple[int, Path]:
    """Run ``script`` in the single-user backend under callgrind: (instructions, its profile)."""
    out = Path(folder) / "callgrind.out"
    run = subprocess.run(_as_server_user([
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
        str(bindir / "postgres"), "--single", "-D", str(data), "-c", "fsync=off",
        "-c", "synchronous_commit=off", database]),
        input=script, capture_output=True, text=True, check=True)
    failed = re.search(r"\bERROR:.*", run.stdout + run.stderr)
    if failed is not None:
        raise RuntimeError("a statement failed in single-user mode: " + failed[0])
    found = re.search(r"Collected : (\d+)", run.stderr)
    if found is None:
        raise RuntimeError("callgrind reported no count")
    return int(found[1]), out


def _count(bindir: Path, data: Path, folder: str, database: str, script: str) -> int:
    """Instructions the single-user backend executes for ``script`` (callgrind's total)."""
    return _callgrind(bindir, data, folder, database, script)[0]


_ANNOTATED = re.compile(r"^\s*([0-9,]+) \([^)]*\)\s+(?:\S*:)?([A-Za-z_][A-Za-z0-9_]*)(?: |$)")


def _inclusive(bindir: Path, data: Path, folder: str, database: str, script: str
               ) -> tuple[int, dict[str, int]]:
    """:meth:`Prepared.inclusive`."""
    total, out = _callgrind(bindir, data, folder, database, script)
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
                          check=True, capture_output=True, text=True).stdout
    counts: dict[str, int] = {}
    for line in text.splitlines():
        m = _ANNOTATED.match(line)
        if m is not None:
            name, value = m.group(2), int(m.group(1).replace(",", ""))
            counts[name] = max(counts.get(name, 0), value)
    return total, counts


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A seeded private cluster, stopped, and the statements to count in it (each with ``$1``
    for a health record's id): what :func:`prepared` yields."""

    bindir: Path
    data: Path
    folder: str
    database: str
    variants: dict[str, str]
    ids: list[str]

    def script(self, body: str, n: int) -> str:
        """The single-user script preparing ``body`` (generic plan) and executing it ``n``
        times, each with one of the seeded ids."""
        lines = ["SET plan_cache_mode = force_generic_plan", f"PREPARE r(uuid) AS {body}"]
        lines += [f"EXECUTE r('{self.ids[i % len(self.ids)]}')" for i in range(n)]
        return "\n".join(lines) + "\n"

    def count(self, script: str) -> int:
        """Instructions the stopped cluster's single-user backend executes for ``script``."""
        return _count(self.bindir, self.data, self.folder, self.database, script)

    def inclusive(self, script: str) -> tuple[int, dict[str, int]]:
        """The same and, by function name, the instructions spent inside each function,
        callees included (callgrind_annotate's inclusive counts; a name met more than once is
        kept at its largest)."""
        return _inclusive(self.bindir, self.data, self.folder, self.database, script)


@contextlib.contextmanager
def prepared(args: argparse.Namespace) -> Iterator[Prepared]:
    """Start, seed and capture, stop: the cluster and every variant's statement."""
    from wxdata.domains import health_records
    from wxdata.query.compiler import select_by_id

    entity = health_records.ENTITY
    own, stored = (",".join(f'"{c}"' for c in names)
                   for names in (entity.column_names, entity.stored_names))

    bindir = _bin_dir(args.pg_bin)
    with _cluster(bindir) as (data, folder):
        with _serving(bindir, data, folder) as server:
            options = Options(database_url=server, reps=1, keep_db=True)
            with bench_database(server, options, args.students, 2,
                                log=lambda _: None) as (url, seeded):
                env = Env("A", url, options, seeded)
                try:
                    sample = seeded.record_ids[0]
                    riding, params = statement(capture(
                        env, lambda c: health_records.find_by_id(c, env.ctx, sample)),
                        "INSERT INTO audit_log")
                    key = _slot(params, sample)
                    conn = env.raw
                    conn.execute(FLOOR_DDL)
                    for ddl in (*_vocabulary_domains(), *_COPIES):
                        conn.execute(ddl)
                    gin = conn.execute(
                        "SELECT indexname FROM pg_indexes WHERE tablename = "
                        "'bench_copy_gin_per_array' AND indexdef LIKE '%USING gin%'").fetchall()
                    for (name,) in gin:
                        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
                    for table, pattern in _ONE_LESS:
                        (index,) = conn.execute(
                            "SELECT indexname FROM pg_indexes WHERE tablename = %s"
                            " AND indexdef LIKE %s", (table, pattern)).fetchone() or (None,)
                        if index is None:
                            raise RuntimeError(f"{table}: no index of audit_log like {pattern}")
                        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
                    conn.execute("CREATE INDEX ON bench_copy_gin_per_array USING gin (entity_ids)")
                    conn.execute("CREATE INDEX ON bench_copy_gin_per_array USING gin (subject_ids)")
                    shapes = record_shapes(conn, riding, key)
                    conn.execute("VACUUM ANALYZE")
                    # the context's values as literals, the row's id as the prepared parameter
                    literals = {f"%({name})s": _literal(conn, value)
                                for name, value in {**params, "_context": 1}.items()
                                if name != key}

                    def written(statement: str) -> str:
                        for placeholder, literal in literals.items():
                            statement = statement.replace(placeholder, literal)
                        return statement.replace(f"%({key})s", "$1")

                    text = written(riding)
                    shaped = {name: written(shapes[name]) for name in _SHAPES}
                    user = _literal(conn, params.get("a_user_id", "u-bench"))
                    database = conn.info.dbname
                    ids = [str(i) for i in seeded.record_ids]
                finally:
                    env.close()
        if stored not in text:
            raise RuntimeError("the riding read does not list its columns as stored")
        variants = {
            "bare fetch": FETCH_RECORD.replace("%s", "$1"),
            "by-id read, columns in the row's order (before)": select_by_id(
                entity, entity.column_names).replace("%(_id)s", "$1"),
            "by-id read, columns as stored (wxdata)": select_by_id(
                entity, entity.stored_names).replace("%(_id)s", "$1"),
            "floor: narrow record, no index": FLOOR_READ.replace("%(id)s", "$1").replace(
                "%(user)s", user),
            "wxdata record, columns in the row's order (before)": text.replace(stored, own),
            "wxdata record into audit_log (partitioned, its indexes)": text,
            "the same into an unpartitioned copy, its indexes": text.replace(
                "INSERT INTO audit_log", "INSERT INTO bench_copy_now", 1),
            "the same into a copy with a GIN index per array (before 0219)": text.replace(
                "INSERT INTO audit_log", "INSERT INTO bench_copy_gin_per_array", 1),
            "the same into a copy without the partial index of records naming their row by "
            "entity_id alone": text.replace(
                "INSERT INTO audit_log", "INSERT INTO bench_copy_no_partial", 1),
            "the same into a copy without the transaction_id index": text.replace(
                "INSERT INTO audit_log", "INSERT INTO bench_copy_no_xid", 1),
            "the same into a copy whose vocabularies (action, compliance_type, severity) are "
            "varchar with no check": text.replace(
                "INSERT INTO audit_log", "INSERT INTO bench_copy_plain_vocab", 1),
            "the same into a copy whose vocabularies are domains over varchar (before 0220)":
                text.replace("INSERT INTO audit_log", "INSERT INTO bench_copy_domain_vocab", 1),
            "the same into a copy without any index": text.replace(
                "INSERT INTO audit_log", "INSERT INTO bench_copy_bare", 1),
            **shaped,
        }

        yield Prepared(bindir, data, folder, database, variants, ids)


def run(args: argparse.Namespace) -> str:
    """Start, seed and capture; stop; count every variant; the Markdown report."""
    with prepared(args) as cluster:
        counts: dict[str, list[float]] = {
            name: [] for name in cluster.variants
            if name == "bare fetch" or not args.only or any(part in name for part in args.only)}
        for _ in range(args.rounds):
            for name, body in cluster.variants.items():
                if name not in counts:
                    continue
                warm = cluster.count(cluster.script(body, args.warm))
                full = cluster.count(cluster.script(body, args.warm + args.executions))
                counts[name].append((full - warm) / args.executions)
    base = statistics.median(counts["bare fetch"])
    out = [f"PostgreSQL binaries {cluster.bindir}; {args.executions} executions per count after "
           f"{args.warm}, {args.rounds} rounds; instructions per execution, median (min-max) "
           "over the rounds:", "",
           "| variant | server instructions per execution | ratio to the bare fetch |",
           "|---|---|---|"]
    out += table_rows(counts, base)
    return "\n".join(out) + "\n"


def table_rows(counts: dict[str, list[float]], base: float) -> list[str]:
    """One Markdown row per variant: its median count (min-max over the rounds) and its ratio to
    ``base``."""
    rows = []
    for name, values in counts.items():
        mid = statistics.median(values)
        rows.append(f"| {name} | {mid:,.0f} ({min(values):,.0f}-{max(values):,.0f}) | "
                    f"{mid / base:.2f}x |")
    return rows


def command_line(doc: str, title: str, count: Callable[[argparse.Namespace], str], *,
                 students: int, executions: int, only: bool = False) -> int:
    """The command line of a server-instruction count: parse, print ``title`` and the report."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pg-bin", default=None, help="PostgreSQL server binaries (initdb, postgres)")
    p.add_argument("--students", type=int, default=students)
    p.add_argument("--warm", type=int, default=50)
    p.add_argument("--executions", type=int, default=executions)
    p.add_argument("--rounds", type=int, default=2)
    if only:
        p.add_argument("--only", action="append", default=[],
                       help="count only the variants whose name contains this (repeatable; "
                            "the bare fetch is always counted)")
    args = p.parse_args()
    print(f"# {title}\n")
    print(count(args))
    return 0


def main() -> int:
    """Command line entry point."""
    return command_line(__doc__ or "", "server instructions per audited read", run,
                        students=300, executions=500, only=True)


if __name__ == "__main__":
    raise SystemExit(main())
