"""The audit log's index set before and after migration 0219, on a filled log.

Every audited read and write inserts one record, and each index of ``audit_log`` is paid on every
insert. Migration 0219 merged the GIN index on ``entity_ids`` (queries by row) and the one on
``subject_ids`` (queries by student) into one multicolumn GIN index. Two databases are seeded alike
and migrated up to 0219 and through it; each log is filled with ``--log-records`` records naming
random rows and students, and sealed. Interleaved, on both:

- the PHI read with its riding record (wxdata's captured statement, random records,
  ``synchronous_commit=off``: the CPU and buffer work, not the commit's wait);
- the WAL one riding read writes (records and bytes, ``EXPLAIN (ANALYZE, WAL)``, median of
  ``--wal-samples`` reads of random records);
- a row's history (``wxdata.audit.reports.names_row``) and a student's accounting of disclosures
  (``wxdata.audit.reports.accounting_spec``), for rows and students the log names;
- a seal run after ``--new-records`` new audited reads (the candidates found from the previous
  run's snapshot on, then chained);
- the size of the GIN indexes and of the sealer's index on ``transaction_id``, after the run.

Timings are the median over interleaved repetitions of the mean µs per operation, with min-max and
the ratio to the log before the migration; the 1-minute load average is printed with them.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python -m benchmarks.bench_audit_index_set --log-records 200000 --reps 7 --config B
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import uuid
from contextlib import ExitStack
from typing import Any

import psycopg

from benchmarks.bench_audit_entity_index import _fill, riding_reads
from benchmarks.bench_audit_floor import _explain, _interleaved, _load, _slot, _table
from benchmarks.common import (
    Env,
    Options,
    add_config_argument,
    capture,
    print_in_configuration,
    statement,
)
from benchmarks.seed import bench_database

#: The index sets compared, by the migration each database stops before (None: all applied).
SETS = {
    "a GIN index per array (before)": "0219",
    "one GIN index on both arrays (now)": None,
}
BEFORE = next(iter(SETS))
#: The sealing key of the benchmark's chains (never a real key).
KEY = b"bench-audit-index-set-key-0123456789abcdef"

#: The GIN indexes and the sealer's index, and their size, summed over the log's months.
_SIZES = (
    "SELECT string_agg(format('%s (%s) %s', name, am, pg_size_pretty(size)), ', ' ORDER BY name) "
    "FROM (SELECT regexp_replace(c.relname, '^audit_log_(p[0-9]+|default)_', '') AS name, "
    "am.amname AS am, sum(pg_relation_size(c.oid)) AS size FROM pg_index i "
    "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
    "WHERE (am.amname = 'gin' OR c.relname ~ 'transaction') "
    "AND i.indrelid IN (SELECT inhrelid FROM pg_inherits "
    "WHERE inhparent = 'audit_log'::regclass) GROUP BY 1, 2) x"
)


def _wal(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> tuple[int, int]:
    """WAL records and bytes of one execution of ``sql`` (the node that wrote them, as
    ``bench_audit_floor`` reports it)."""
    found = re.search(r"records=(\d+)(?: fpi=\d+)? bytes=(\d+)", _explain(conn, sql, params)[0])
    if found is None:
        raise RuntimeError("the riding read wrote no WAL")
    return int(found[1]), int(found[2])


def _close(conns: list[psycopg.Connection[Any]]) -> None:
    for c in conns:
        c.close()


def run(args: argparse.Namespace) -> str:
    """Two databases seeded and filled alike, one per index set; measure both interleaved."""
    from wxdata.audit.chain import seal
    from wxdata.audit.reports import accounting_spec, names_row
    from wxdata.domains import health_records

    server = args.database_url or os.environ["DATABASE_URL"]
    options = Options(database_url=server, reps=args.reps)
    out: list[str] = []
    history = ("SELECT a.seq FROM audit_log a WHERE a.entity_type = 'HealthRecord' AND "
               + names_row("id") + " ORDER BY a.seq")
    # the accounting's condition, its student bound per call (the key here only checks the spec)
    accounting = ("SELECT a.seq FROM audit_log a WHERE "
                  + accounting_spec(uuid.UUID(int=0), None, None, False).unwrap().where
                  + " ORDER BY a.seq")
    conns: list[psycopg.Connection[Any]] = []
    with ExitStack() as stack:
        urls, data = {}, None
        for name, before in SETS.items():
            url, seeded = stack.enter_context(bench_database(
                server, options, args.students, 3, log=lambda _: None, migrations_before=before))
            urls[name], data = url, data or seeded
        assert data is not None
        env = Env("A", urls[BEFORE], options, data)
        stack.callback(env.close)
        stack.callback(_close, conns)
        sample = data.record_ids[0]
        sql, params = statement(capture(
            env, lambda c: health_records.find_by_id(c, env.ctx, sample)), "INSERT INTO audit_log")
        key = _slot(params, sample)

        def connect(name: str) -> psycopg.Connection[Any]:
            c = psycopg.connect(urls[name], autocommit=True)
            conns.append(c)
            return c

        admins = {name: connect(name) for name in SETS}
        for name, admin in admins.items():
            out += [f"{name}: {_fill(admin, args.log_records)}", ""]
            seal(admin, KEY).unwrap()  # the filled log sealed: a run then costs what is new
        # the seeds are alike but their ids differ: each database reads its own records
        ids = {name: [r[0] for r in admin.execute(
            "SELECT id FROM health_records ORDER BY id").fetchall()]
            for name, admin in admins.items()}
        named = {name: admin.execute(
            "SELECT entity_id, subject_student_id FROM audit_log "
            "WHERE entity_id IS NOT NULL AND subject_student_id IS NOT NULL "
            "ORDER BY random() LIMIT %s", (args.lookups,)).fetchall()
            for name, admin in admins.items()}

        rng = random.Random(args.seed)
        inputs = [rng.randrange(1 << 30) for _ in range(args.ops)]
        reads = {name: riding_reads(connect(name), sql, params, key, ids[name]) for name in SETS}
        samples = _interleaved(reads, inputs, args.reps)
        out += _table(f"PHI read + its riding record, {args.ops} random records per repetition "
                      "(synchronous_commit=off)", samples, BEFORE)

        out += ["### WAL of one riding read", "",
                f"EXPLAIN (ANALYZE, WAL) of {args.wal_samples} riding reads of random records in "
                "each database, median (min-max):", "",
                "| index set | WAL records | WAL bytes |", "|---|---|---|"]
        for name, admin in admins.items():
            admin.execute("SET synchronous_commit = off")
            pool = ids[name]
            wal = [_wal(admin, sql, {**params, key: pool[rng.randrange(len(pool))]})
                   for _ in range(args.wal_samples)]
            recs, size = [w[0] for w in wal], [w[1] for w in wal]
            out.append(f"| {name} | {statistics.median(recs):g} ({min(recs)}-{max(recs)}) | "
                       f"{statistics.median(size):g} ({min(size)}-{max(size)}) |")
        out.append("")

        def lookup(name: str, text: str, column: int) -> Any:
            cur, pool = connect(name).cursor(), [row[column] for row in named[name]]

            def op(i: int) -> Any:
                # prepare=False: planned per call, as a report is asked (rarely, by hand)
                cur.execute(text, {"id": pool[i % len(pool)],
                                   "student_id": pool[i % len(pool)]}, prepare=False)
                return cur.fetchall()
            if not pool or min(len(op(i)) for i in range(len(pool))) < 1:
                raise RuntimeError(f"{name}: a sampled row's or student's records were not found")
            return op

        for title, text, column in (("A row's history", history, 0),
                                    ("A student's accounting of disclosures", accounting, 1)):
            samples = _interleaved({name: lookup(name, text, column) for name in SETS},
                                   list(range(args.lookups)), args.reps)
            out += _table(f"{title} ({args.lookups} per repetition), by index", samples, BEFORE)

        def new_records(name: str) -> None:  # untimed: what the next seal run finds
            for i in range(args.new_records):
                reads[name](rng.randrange(1 << 30) + i)

        def seal_run(name: str) -> Any:
            admin = admins[name]

            def op(_: int) -> Any:
                report = seal(admin, KEY).unwrap()
                if report.sealed < args.new_records:
                    raise RuntimeError(f"{name}: a seal run missed new records")
                return report
            return op

        samples = _interleaved({name: seal_run(name) for name in SETS}, [0], args.reps,
                               between=new_records)
        out += _table(f"A seal run after {args.new_records} new audited reads (µs per run)",
                      samples, BEFORE)
        out += ["### GIN and sealer's indexes after the run", "",
                "| index set | indexes (method) size, summed over the months |", "|---|---|"]
        for name, admin in admins.items():
            row = admin.execute(_SIZES).fetchone()
            out.append(f"| {name} | {row[0] if row else '?'} |")
        out.append("")
    return "\n".join(out) + "\n"


def main() -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database-url", default=None)
    p.add_argument("--students", type=int, default=5000)
    p.add_argument("--log-records", type=int, default=200_000)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--ops", type=int, default=1000)
    p.add_argument("--lookups", type=int, default=20)
    p.add_argument("--wal-samples", type=int, default=51)
    p.add_argument("--new-records", type=int, default=200)
    p.add_argument("--seed", type=int, default=20261205)
    add_config_argument(p)
    args = p.parse_args()
    print(f"# audit index set: students {args.students}, log records {args.log_records}, "
          f"reps {args.reps}, ops {args.ops}, lookups {args.lookups}, new records "
          f"{args.new_records}, load average at start {_load()}\n")
    return print_in_configuration(args.config, args.database_url, lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
