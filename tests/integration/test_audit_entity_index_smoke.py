"""Smoke test of ``python -m benchmarks.bench_audit_entity_index`` (no timing assertions): a tiny
run against its own database reports both sections, each with both index sets and finite figures
(the run itself checks that both forms of the history query find the sampled rows' records)."""

from __future__ import annotations

import argparse
import math
import re

from benchmarks import bench_audit_entity_index as bench

_ROW = re.compile(r"^\| (.+?) \| ([0-9.]+) \([0-9.]+-[0-9.]+\) \| ([0-9.]+)x \(")


def test_both_index_sets_are_measured_with_finite_figures(server_url: str) -> None:
    report = bench.run(argparse.Namespace(
        database_url=server_url, students=200, log_records=2000, reps=1, ops=10,
        history_rows=2, seed=1))
    sections = report.split("### ")[1:]
    assert [s.split(",")[0].split(" (")[0] for s in sections] == [
        "PHI read + its riding record", "A row's history"]
    for section in sections:
        rows = {m.group(1): (float(m.group(2)), float(m.group(3)))
                for m in map(_ROW.match, section.splitlines()) if m}
        assert set(rows) == {bench.BEFORE, bench.NOW}
        for name, (us, ratio) in rows.items():
            assert math.isfinite(us) and us > 0, name
            assert math.isfinite(ratio) and ratio > 0, name
    assert len(re.findall(r"audit_log: 200[01] records", report)) == 2  # both databases filled
