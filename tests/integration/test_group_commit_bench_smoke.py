"""Smoke test of the group-commit benchmark: a tiny run reports every operation, writer count and
commit_delay, finds every record it wrote, and drops its database. Nothing asserts anything about
speed."""

from __future__ import annotations

import re

import pytest

from benchmarks import bench_group_commit
from tests.bench_support import bench_databases

pytestmark = pytest.mark.integration


def test_group_commit_bench_reports_every_delay_and_drops_its_database(
        server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = bench_databases(server_url)
    assert bench_group_commit.main(
        ["--writers", "1,2", "--delays", "0,50", "--reps", "2", "--seconds", "0.2",
         "--students", "30", "--database-url", server_url]) == 0
    out = capsys.readouterr().out
    for operation in ("find_by_id", "log_read"):
        for writers in (1, 2):
            for delay in (0, 50):
                line = re.search(
                    rf"^  {operation} +{writers} writers, commit_delay +{delay} µs: +([0-9]+) "
                    r"\(([0-9]+)-([0-9]+)\) \| +([0-9.]+)x \| +([0-9.]+)$", out, re.M)
                assert line is not None, f"{operation}, {writers} writers, {delay} not reported"
                rate, low, high, ratio, micros = (float(g) for g in line.groups())
                assert 0 < low <= rate <= high
                assert ratio > 0 and micros > 0
                if delay == 0:
                    assert ratio == 1.0
    assert bench_databases(server_url) == before


def test_group_commit_bench_refuses_a_negative_delay(server_url: str) -> None:
    with pytest.raises(SystemExit):
        bench_group_commit.main(["--delays", "0,-5", "--database-url", server_url])
