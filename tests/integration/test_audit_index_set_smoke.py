"""Smoke test of ``python -m benchmarks.bench_audit_index_set`` (no timing assertions): a tiny run
against its own databases reports every section with both index sets and finite figures, one
fewer WAL record per riding read after the migration, and the indexes each set holds (the run itself
checks that every lookup finds the sampled records and every seal run the new ones)."""

from __future__ import annotations

import argparse
import math
import re

from benchmarks import bench_audit_index_set as bench

_ROW = re.compile(r"^\| (.+?) \| ([0-9.]+) \([0-9.]+-[0-9.]+\) \| ([0-9.]+)x \(")
_WAL = re.compile(r"^\| (.+?) \| ([0-9.]+) \([0-9]+-[0-9]+\) \| ([0-9.]+) \(")


def test_every_index_set_is_measured_with_finite_figures(server_url: str) -> None:
    report = bench.run(argparse.Namespace(
        database_url=server_url, students=200, log_records=2000, reps=1, ops=10, lookups=2,
        wal_samples=3, new_records=5, seed=1))
    sections = {s.split("\n")[0]: s for s in report.split("### ")[1:]}
    timed = [t for t in sections if not t.startswith(("WAL", "GIN"))]
    assert [t.split(",")[0].split(" (")[0] for t in timed] == [
        "PHI read + its riding record", "A row's history",
        "A student's accounting of disclosures", "A seal run after 5 new audited reads"]
    for title in timed:
        rows = {m.group(1): (float(m.group(2)), float(m.group(3)))
                for m in map(_ROW.match, sections[title].splitlines()) if m}
        assert set(rows) == set(bench.SETS), title
        for name, (us, ratio) in rows.items():
            assert math.isfinite(us) and us > 0, name
            assert math.isfinite(ratio) and ratio > 0, name
    wal = {m.group(1): (float(m.group(2)), float(m.group(3)))
           for m in map(_WAL.match, sections["WAL of one riding read"].splitlines()) if m}
    before, now = (wal[name][0] for name in bench.SETS)
    assert now == before - 1, wal
    changed = {line.split(" | ")[0].lstrip("| "): {  # index set -> {index: method}
        item.split(" (")[0]: item.split(" (")[1].split(")")[0]
        for item in line.split(" | ")[1].rstrip(" |").split(", ")}
        for line in sections["GIN and sealer's indexes after the run"].splitlines()
        if line.startswith("| ") and " | " in line and "index set" not in line}
    assert [changed[name] for name in bench.SETS] == [
        {"entity_ids_idx": "gin", "subject_ids_idx": "gin", "transaction_id_idx": "btree"},
        {"entity_ids_subject_ids_idx": "gin", "transaction_id_idx": "btree"}]
    assert len(re.findall(r"audit_log: 200[01] records", report)) == 2  # both databases filled
