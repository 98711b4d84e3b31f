"""Smoke test of the async benchmark (benchmarks/bench_async.py): a tiny run, its report's shape.

It creates, seeds, measures and drops its own database with 200 students, one repetition, 1 and 4
concurrent tasks, and checks that every workload ran every client at both task counts with a
finite positive time and ratio, and that the report carries the targets. Nothing about speed.
"""

from __future__ import annotations

import math

from benchmarks import bench_async


def test_async_benchmark_reports_every_client_at_every_task_count(server_url: str) -> None:
    lines: list[str] = []
    results = bench_async.main(["--quick", "--no-pin", "--scale", "200", "--reps", "1", "--tasks", "1,4",
                                "--database-url", server_url], log=lines.append)
    titles = {r.workload for r in results}
    assert titles == {f"{t} @ {n} task{'s' if n > 1 else ''}" for t in _titles() for n in (1, 4)}
    families = {r.family for r in results}
    assert {"raw", "raw_audit", "wx", "wx_noaudit", "wx_noaudit_plain", "asyncpg", "orm"} <= families
    for r in results:
        assert len(r.samples_us) == 1 and math.isfinite(r.median) and r.median > 0
        assert r.ratio is not None and math.isfinite(r.ratio) and r.ratio > 0
        assert r.extra["tasks"] in (1, 4)
    for title in titles:
        assert sum(1 for r in results if r.workload == title and r.baseline) == 1
    text = "\n".join(lines)
    assert "| target | measured | bound | verdict |" in text
    assert "1 task | not measured" not in text  # the 1-task targets were measured (32 were not run)


def _titles() -> list[str]:
    return ["fetch by id", "page of 20 + total", "create (no audit record)", "audited create",
            "PHI read + record"]
