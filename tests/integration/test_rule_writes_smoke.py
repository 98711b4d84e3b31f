"""Smoke test of ``python -m benchmarks.bench_rule_writes`` (timings: nothing here compares them):
a tiny run reports both writes for both ways of holding the rules with finite times, and drops
the two databases it made."""

from __future__ import annotations

import argparse
import math
import re

import psycopg
import pytest

from benchmarks import bench_rule_writes as bench

pytestmark = pytest.mark.integration

_ROW = re.compile(r"^\| (.+?) \| ([0-9.]+) µs \(.+?\) \| ([0-9.]+) µs \(.+?\) \| ([0-9.]+)x \|$")


def test_both_writes_are_timed_on_both_schemas_and_the_databases_dropped(server_url: str) -> None:
    report = bench.run(argparse.Namespace(database_url=server_url, reps=2, ops=5))
    rows = [m.groups() for m in map(_ROW.match, report.splitlines()) if m]
    assert [r[0] for r in rows] == ["`vital_signs.create`, every vital sign",
                                    "`vital_signs.update` of `measured_by`"]
    for _, checks, domains, ratio in rows:
        assert all(math.isfinite(float(x)) and float(x) > 0 for x in (checks, domains, ratio))
    with psycopg.connect(server_url, autocommit=True) as admin:
        left = admin.execute("SELECT count(*) FROM pg_database"
                             " WHERE datname LIKE 'wxdata_bench_rules_%'").fetchone()
    assert left == (0,)
