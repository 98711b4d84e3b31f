"""Smoke test of the benchmark harness: a tiny --quick run in configuration A (no timing assertions).

It runs every workload of ``python -m benchmarks`` once against its own freshly created, migrated,
seeded and dropped database, and checks the report: every workload row is present in the summary
table, every variant has a finite positive time and a finite ratio to raw psycopg, and the school
day reports throughput and percentiles. It asserts nothing about speed.
"""

from __future__ import annotations

import math

import psycopg

from benchmarks import workloads
from benchmarks.common import main


def test_quick_run_reports_every_workload_with_finite_ratios(server_url: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as admin:
        before = {r[0] for r in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'wxdata_bench_%'")}
    lines: list[str] = []
    report = main(
        ["--quick", "--scale", "200", "--reps", "1", "--config", "A", "--no-chart", "--no-write",
         "--no-extras", "--mixed-seconds", "0.1", "--bulk-rows", "50", "--threads", "4",
         "--database-url", server_url],
        log=lines.append,
    )

    main_results = [r for r in report.results if r.section == "main"]
    titles = {r.workload for r in main_results}
    assert len(titles) == len(workloads.MAIN)
    summary = report.markdown.split("## Summary")[1].split("## Targets")[0]
    for title in titles:
        row = next(line for line in summary.splitlines() if line.startswith(f"| {title} |"))
        assert "nan" not in row and "inf" not in row
        assert row.count("x") >= 3  # ratios of the non-baseline clients

    for r in main_results:
        assert r.config == "A" and len(r.samples_us) == 1
        assert math.isfinite(r.median) and r.median > 0
        assert r.ratio is not None and math.isfinite(r.ratio) and r.ratio > 0
    baselines = [r for r in main_results if r.baseline]
    assert {r.workload for r in baselines} == titles and all(r.ratio == 1.0 for r in baselines)
    for family in ("wx", "wx_noaudit"):
        assert {r.workload for r in main_results if r.family == family} == titles
    sqlalchemy = titles - {"fetch by id as the app role (RLS)"}  # RLS: raw vs wxdata only
    for family in ("core", "orm"):
        assert {r.workload for r in main_results if r.family == family} == sqlalchemy

    day = [r for r in report.results if r.section == "mixed"]
    assert {r.family for r in day} == {"raw", "wx", "wx_noaudit", "core", "orm"}
    for r in day:
        assert r.extra["throughput_ops_s"] > 0 and r.extra["ops"] > 0
        assert r.extra["p50_us"] <= r.extra["p95_us"] <= r.extra["p99_us"]
        assert r.ratio is not None and math.isfinite(r.ratio)
    assert "## Targets" in report.markdown and "| fetch by id |" in report.markdown

    with psycopg.connect(server_url, autocommit=True) as admin:  # the run dropped its database
        after = {r[0] for r in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'wxdata_bench_%'")}
    assert after <= before
