"""Smoke test of benchmarks/bench_cache.py: a tiny run must report every workload (no timing asserted)."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from benchmarks import bench_cache
from benchmarks.seed import seed


def test_quick_run_reports_every_cache_workload(fresh_database: Callable[[], str], redis_url: str,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    options = bench_cache.options_from(["--quick", "--reps", "1", "--batch-seconds", "0.001"])
    url = fresh_database()
    with psycopg.connect(url, autocommit=True) as conn:
        data = seed(conn, options, 200, 1, log=lambda _: None)
    results = bench_cache.measure_all(url, data, options)
    print(bench_cache.report(results))
    out = capsys.readouterr().out
    for title in ("schools by id (reference data)", "schools page of 20 + total (5,000 matching)",
                  "schools search ILIKE, page + total", "PHI student by id, with its audit record",
                  "PHI students page of 20 + total, with audit"):
        assert title in out
    for variant in ("cached: memory hit", "cached: redis hit", "bare cachetools lookup (floor)",
                    "cached: tiered (memory tier) hit", "cached: redis hit + audit INSERT"):
        assert variant in out
    assert "hit-path overhead" in out and "target cached: memory hit" in out
    assert all(r.median > 0 for r in results) and "nan" not in out
    figures = bench_cache.micro(repeat=1, number=200)
    assert len(figures) == 3 and all(v > 0 for v in figures.values())
