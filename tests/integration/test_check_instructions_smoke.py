"""Smoke test of ``python -m benchmarks.bench_check_instructions`` (counts, not timings): a tiny
run in its own private cluster reports every entity, statement and variant, and what the counts
must show on any host holds: a column's rule held by a domain costs an INSERT less than half
what the same rule held by a table CHECK does, and an UPDATE that sets no ruled column pays for
the table's CHECKs and not for its domains."""

from __future__ import annotations

import argparse
import re

import pytest

from benchmarks import bench_check_instructions as bench

# it starts a PostgreSQL cluster of its own, from server binaries the suite's server does not choose
pytestmark = [pytest.mark.integration, pytest.mark.one_ci_run("system")]

_ROW = re.compile(r"^\| (.+?) \| ([0-9,]+) \(([0-9,]+)-([0-9,]+)\) \| ([0-9.]+)x \|$")
_HEADING = re.compile(r"^\*\*(\w+)\*\*, (INSERT|UPDATE):$")


def test_every_variant_is_counted_and_a_domain_costs_less_than_a_table_check() -> None:
    report = bench.run(argparse.Namespace(pg_bin=None, students=5, warm=2, executions=6,
                                          rounds=1, entities=["students", "incident_reports"]))
    counts: dict[tuple[str, str], dict[str, int]] = {}
    heading = None
    for line in report.splitlines():
        if (h := _HEADING.match(line)) is not None:
            heading = (h.group(1), h.group(2))
            counts[heading] = {}
        elif (m := _ROW.match(line)) is not None and heading is not None:
            counts[heading][m.group(1)] = int(m.group(2).replace(",", ""))
    assert list(counts) == [("students", "INSERT"), ("students", "UPDATE"),
                            ("incident_reports", "INSERT"), ("incident_reports", "UPDATE")]
    for (table, statement), variants in counts.items():
        assert list(variants) == ["domains", "table CHECKs", "unchecked"]
        domains, checks, unchecked = variants.values()
        # (a tiny run's counts move by a few thousand instructions between statements alike)
        assert 0 < unchecked < checks and domains < checks, (table, statement, variants)
        if statement == "INSERT":  # a domain's check costs a fraction of the table CHECK's
            assert domains - unchecked < 0.5 * (checks - unchecked), (table, variants)
        else:  # no vocabulary set: its domains cost nothing, the table CHECKs all run
            assert abs(domains - unchecked) < 0.1 * (checks - unchecked), (table, variants)
    # five rules cost more than one, as table CHECKs
    assert (counts[("incident_reports", "UPDATE")]["table CHECKs"]
            - counts[("incident_reports", "UPDATE")]["unchecked"]) > 2 * (
        counts[("students", "UPDATE")]["table CHECKs"] - counts[("students", "UPDATE")]["unchecked"])
