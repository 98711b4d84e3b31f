"""Smoke test of ``python -m benchmarks.bench_audit_floor`` (no timing assertions): a tiny run
against its own database reports every section, and every timed row has a finite positive time
and ratio, the record-shape rows included. The journal's WAL rows hold what holds by construction:
the record into an unindexed table writes less WAL than into the indexed log, and that record
written and then moved into the log writes more than the log's alone."""

from __future__ import annotations

import argparse
import math
import re

import psycopg

from benchmarks import bench_audit_floor

_ROW = re.compile(r"^\| (.+?) \| ([0-9.]+) \([0-9.]+-[0-9.]+\) \| ([0-9.]+)x \(")
_WAL_ROW = re.compile(r"^\| (.+?) \| ([0-9]+) \| ([0-9.]+) \| ([0-9.]+)x \|$")


def test_the_breakdown_reports_every_section_with_finite_figures(server_url: str) -> None:
    report = bench_audit_floor.run(argparse.Namespace(
        database_url=server_url, students=200, reps=1, ops=10))
    for title in ("## Statements and WAL per audited operation",
                  "### PHI read, durable commits: bare, floor record, wxdata record",
                  "### PHI read + record (synchronous_commit=off): the same record into tables of "
                  "decreasing cost",
                  "secondary indexes dropped one at a time",
                  "### WAL per riding read by index set",
                  "### Student update + record (synchronous_commit=off): the record's images "
                  "built per column (wxdata) against aggregated"):
        assert title in report
    rows = {m.group(1): (float(m.group(2)), float(m.group(3)))
            for m in map(_ROW.match, report.splitlines()) if m}
    for name in ("wxdata record into audit_log (partitioned, its indexes)",
                 "the same into an unpartitioned copy with the same indexes",
                 "the same into the copy without any index",
                 "reads in their own table: a read's columns only, no index",
                 "normalised (context and shape by key), audit_log's indexes",
                 "normalised (context and shape by key), no index",
                 "floor record with every context parameter bound", "floor record",
                 "wxdata update + record", "the same, images aggregated"):
        assert name in rows
    with psycopg.connect(server_url) as conn:
        returns_old = conn.info.server_version >= 180000
    # before 18 the update reads its old row unlocked, and the run times the locking form too
    assert ("the same, old row locked" in rows) == (not returns_old)
    assert ("no self-join to lock" in report) == returns_old
    for name, (us, ratio) in rows.items():
        assert math.isfinite(us) and us > 0, name
        assert math.isfinite(ratio) and ratio > 0, name
    journal = report.split("### A journal indexed later: WAL per read", 1)[1]
    wal = {m.group(1): int(m.group(2)) for m in map(_WAL_ROW.match, journal.splitlines()) if m}
    assert list(wal) == ["`audit_log` (now)", "the journal, in the read",
                         "moved into `audit_log` later", "the journal in all"]
    now, ride, moved, total = wal.values()
    assert 0 < ride < now < total
    assert moved > 0 and abs(total - (ride + moved)) <= 1
