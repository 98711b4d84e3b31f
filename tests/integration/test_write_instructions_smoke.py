"""Smoke test of ``python -m benchmarks.bench_write_instructions`` (counts, not timings): a tiny
run in its own private cluster reports every variant, and what the counts must show on any host
holds: a riding record costs more than none and wxdata's more than the narrow floor's, and an
audited update reading the changed column's old value costs more than reading no old row at all
and, before PostgreSQL 18, less than reading the whole old row."""

from __future__ import annotations

import argparse
import re

import pytest

from benchmarks import bench_write_instructions as bench

# it starts a PostgreSQL cluster of its own, from server binaries the suite's server does not choose
pytestmark = [pytest.mark.integration, pytest.mark.one_ci_run("system")]

_ROW = re.compile(r"^\| (.+?) \| ([0-9,]+) \(([0-9,]+)-([0-9,]+)\) \| ([0-9.]+)x \|$")


def test_every_variant_is_counted_and_the_counts_are_ordered() -> None:
    report = bench.run(argparse.Namespace(pg_bin=None, students=200, warm=2, executions=8,
                                          rounds=1))
    rows = {m.group(1): int(m.group(2).replace(",", ""))
            for m in map(_ROW.match, report.splitlines()) if m}
    assert list(rows) == [
        "create: bare INSERT", "create: floor: narrow record, no index",
        "create: wxdata, audited (as sent)",
        "update: bare UPDATE", "update: floor: narrow record, no index",
        "update: wxdata, audited (as sent: the changed column's old value)",
        "update: the same reading the whole old row (before)",
        "update: wxdata's record on a plain UPDATE, no old row (not a correct diff)"]
    (create, create_floor, create_wx, update, update_floor, update_wx, whole_row,
     no_old) = rows.values()
    assert 0 < create < create_floor < create_wx
    assert 0 < update < update_floor < no_old < update_wx
    version = re.search(r"^PostgreSQL (\d+)", report, re.MULTILINE)
    assert version is not None
    if int(version.group(1)) < 18:  # the old row read in the statement: its width costs there
        # (from 18 it comes from RETURNING old, where the rest of the row costs next to nothing)
        assert update_wx < whole_row
