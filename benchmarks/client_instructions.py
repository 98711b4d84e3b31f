"""Client instructions per call of wxdata's data calls beside raw psycopg's, in one command.

A timed ratio moves with the host; an instruction count does not. For every pair below (a wxdata
call and raw psycopg doing the same work by hand), this runs ``python -m benchmarks.bench_core``
under callgrind with each variant's calls made twice, ``--low-ops`` and then ``--high-ops`` of
them, each batch inside one ``functools.reduce`` that callgrind collects and dumps on its own: the
set-up, the warm-up and the interpreter's start fall outside, and (high total - low total) /
(high_ops - low_ops) is the cost of one call. Every variant runs in one process (one database,
one set-up). The same count comes back on any host for the same binaries and inputs, whatever
else the host is doing (a reply that comes late costs a few more instructions of polling: two
runs agree within about 0.5 %).

Each pair: wxdata's count, raw psycopg's, the excess (wxdata - raw) and the ratio. ``--json``
writes every count; ``--baseline`` a file written so earlier (another commit, another tree)
adds the change of every variant beside it.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python -m benchmarks.client_instructions [--pairs by-id-off,by-id-audited] \\
        [--json out.json] [--baseline before.json]

Needs valgrind on ``PATH``. Run from the tree to count (its ``wxdata`` is the one imported: the
working directory comes first on ``sys.path``). The run makes its own database and drops it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import git_commit


@dataclass(frozen=True)
class Pair:
    """A wxdata call and raw psycopg doing the same by hand (``bench_core`` labels)."""

    key: str
    wxdata: str
    floor: str


#: What each wxdata call is measured against: raw psycopg sending what wxdata sends where the
#: statement is wxdata's own choice (the record riding in it, the create's key left to the
#: server), else raw psycopg's own statement.
PAIRS: tuple[Pair, ...] = (
    Pair("by-id-off", "sync find_by_id, audit off, owner",
         "raw psycopg find by id (superuser, prepared)"),
    Pair("by-id-audited", "sync find_by_id, audited, owner",
         "raw psycopg sending that read's statement (superuser, prepared)"),
    Pair("memory-hit", "sync find_by_id, memory-cache hit + its record, owner",
         "raw psycopg INSERT of a hit's record (superuser, prepared)"),
    Pair("page-audited", "sync find_many 20 + total, audited, owner",
         "raw psycopg sending that page's statement (superuser, prepared)"),
    Pair("create-off", "sync create, audit off, owner",
         "raw psycopg sending that create's statement (superuser, prepared)"),
    Pair("update-audited", "sync update of seven columns, audited, owner",
         "raw psycopg sending that update's statement (superuser, prepared)"),
    Pair("log-read", "sync log_read, the owner",
         "raw psycopg audit record INSERT (superuser, prepared)"),
    Pair("async-by-id-off", "async find_by_id, audit off, owner",
         "raw psycopg async find by id (superuser, prepared)"),
)

_TOTALS = re.compile(r"^totals: (\d+)\s*$", re.MULTILINE)


def dump_total(text: str) -> int:
    """The instruction total of one callgrind dump (its ``totals:`` line)."""
    found = _TOTALS.findall(text)
    if len(found) != 1:
        raise RuntimeError("a callgrind dump without a single 'totals:' line")
    return int(found[0])


def per_call(low_total: int, high_total: int, low_ops: int, high_ops: int) -> float:
    """Instructions of one call from the totals of ``low_ops`` and ``high_ops`` calls."""
    if high_ops <= low_ops:
        raise ValueError("high_ops must exceed low_ops")
    return (high_total - low_total) / (high_ops - low_ops)


#: Runs the calls of every label, ``low`` then ``high`` of each, and answers the instruction
#: total of each run, in that order (two per label).
Counter = Callable[[Sequence[str], int, int], list[int]]


def callgrind_counter(database_url: str | None, students: int, cwd: Path) -> Counter:
    """A counter running ``bench_core --instructions ... --ops LOW --ops-again HIGH`` in ``cwd``
    under callgrind, in one process: every ``functools.reduce`` of calls is dumped on its own
    (``--dump-after``), so one database set-up serves every variant."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not on PATH")

    def count(labels: Sequence[str], low: int, high: int) -> list[int]:
        with tempfile.TemporaryDirectory(prefix="wxdata-callgrind-") as folder:
            out = Path(folder) / "callgrind.out"
            argv = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}",
                    "--collect-atstart=no", "--toggle-collect=functools_reduce",
                    "--dump-after=functools_reduce", "--dump-instr=no",
                    sys.executable, "-m", "benchmarks.bench_core", "--ops", str(low),
                    "--ops-again", str(high), "--students", str(students)]
            for label in labels:
                argv += ["--instructions", label]
            if database_url:
                argv += ["--database-url", database_url]
            done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False,
                                  timeout=3600)
            if done.returncode != 0:
                tail = "\n".join(done.stderr.splitlines()[-5:])
                raise RuntimeError(f"bench_core under callgrind exited {done.returncode}:\n{tail}")
            dumps = sorted(Path(folder).glob("callgrind.out.*"),
                           key=lambda f: int(f.name.rsplit(".", 1)[1]))
            totals = [dump_total(f.read_text()) for f in dumps]
        if len(totals) != 2 * len(labels):
            raise RuntimeError(f"{len(totals)} callgrind dumps for {len(labels)} variants")
        return totals

    return count


def measure(pairs: Sequence[Pair], count: Counter, low_ops: int, high_ops: int,
            log: Callable[[str], None] = print) -> dict[str, float]:
    """Instructions per call of every variant of ``pairs`` (each counted once)."""
    labels = list(dict.fromkeys(label for p in pairs for label in (p.wxdata, p.floor)))
    totals = count(labels, low_ops, high_ops)
    counts: dict[str, float] = {}
    for i, label in enumerate(labels):
        counts[label] = per_call(totals[2 * i], totals[2 * i + 1], low_ops, high_ops)
        log(f"  {label}: {counts[label]:,.0f}")
    return counts


def report(pairs: Sequence[Pair], counts: dict[str, float],
           baseline: dict[str, float] | None = None) -> str:
    """The Markdown table of ``pairs``; with ``baseline``, each wxdata count's change beside it."""
    head = "| call | wxdata | raw psycopg by hand | excess | ratio |"
    rule = "|---|---:|---:|---:|---:|"
    if baseline is not None:
        head += " wxdata in the baseline | change |"
        rule += "---:|---:|"
    lines = [head, rule]
    for p in pairs:
        wx, floor = counts[p.wxdata], counts[p.floor]
        row = (f"| {p.wxdata} | {wx:,.0f} | {floor:,.0f} ({p.floor}) | {wx - floor:,.0f} "
               f"| {wx / floor:.2f}x |")
        if baseline is not None:
            before = baseline.get(p.wxdata)
            row += (" — | — |" if before is None else
                    f" {before:,.0f} | {(wx - before) / before:+.1%} |")
        lines.append(row)
    return "\n".join(lines)


def _versions() -> str:
    import psycopg

    return (f"Python {platform.python_version()}, psycopg {psycopg.__version__} "
            f"({psycopg.pq.__impl__})")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0],
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    p.add_argument("--pairs", default=",".join(x.key for x in PAIRS),
                   help="comma-separated: " + ", ".join(x.key for x in PAIRS))
    p.add_argument("--low-ops", type=int, default=300)
    p.add_argument("--high-ops", type=int, default=1300)
    p.add_argument("--students", type=int, default=1000)
    p.add_argument("--json", default=None, help="write every count to this file")
    p.add_argument("--baseline", default=None, help="a --json file of an earlier run")
    args = p.parse_args(argv)
    known = {x.key: x for x in PAIRS}
    wanted = [k.strip() for k in args.pairs.split(",") if k.strip()]
    unknown = [k for k in wanted if k not in known]
    if unknown or not wanted:
        p.error(f"--pairs takes some of: {', '.join(known)}")
    pairs = [known[k] for k in wanted]
    baseline = None
    if args.baseline:
        baseline = json.loads(Path(args.baseline).read_text())["counts"]
    root = Path.cwd()
    counts = measure(pairs, callgrind_counter(args.database_url, args.students, root),
                     args.low_ops, args.high_ops, log=lambda s: print(s, file=sys.stderr))
    commit = git_commit(root)
    print(f"Client instructions per call, git {commit}, {_versions()}; ({args.high_ops}-call "
          f"count - {args.low_ops}-call count) / {args.high_ops - args.low_ops}.\n")
    print(report(pairs, counts, baseline))
    if args.json:
        document: dict[str, Any] = {"commit": commit, "versions": _versions(),
                                    "low_ops": args.low_ops, "high_ops": args.high_ops,
                                    "counts": counts}
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
