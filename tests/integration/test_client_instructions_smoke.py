"""Smoke test of ``python -m benchmarks.client_instructions`` (counts, not timings): a tiny run
under callgrind counts every variant of the pairs asked for, in one process, and drops its
database; what must hold on any host holds (wxdata's by-id read runs raw psycopg's work and more).
The pure parts (a dump's total, the per-call difference, the table with a baseline) are checked
on their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import client_instructions as bench
from tests.bench_support import bench_databases

# runs wxdata under valgrind against the test server; what it checks holds on any server
pytestmark = [pytest.mark.integration, pytest.mark.one_ci_run("embedded")]

_ROOT = Path(__file__).resolve().parents[2]


def test_every_variant_of_the_pairs_asked_for_is_counted_and_the_database_dropped(
        server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = bench_databases(server_url)
    out = tmp_path / "counts.json"
    assert bench.main(["--database-url", server_url, "--pairs", "by-id-off,log-read",
                       "--low-ops", "10", "--high-ops", "30", "--students", "50",
                       "--json", str(out)]) == 0
    counts = json.loads(out.read_text())["counts"]
    by_id, log_read = (next(p for p in bench.PAIRS if p.key == k) for k in ("by-id-off",
                                                                           "log-read"))
    assert set(counts) == {by_id.wxdata, by_id.floor, log_read.wxdata, log_read.floor}
    assert all(v > 10_000 for v in counts.values()), counts  # a call, not an empty loop
    # wxdata's read sends its statement through psycopg as raw psycopg does, and checks more
    assert counts[by_id.wxdata] > counts[by_id.floor]
    table = capsys.readouterr().out
    assert f"| {by_id.wxdata} | " in table and f"| {log_read.wxdata} | " in table
    assert bench_databases(server_url) == before


def test_a_dump_has_one_total() -> None:
    assert bench.dump_total("events: Ir\nsummary: 120\ntotals: 120\n") == 120
    with pytest.raises(RuntimeError):
        bench.dump_total("events: Ir\n")


def test_one_call_is_the_difference_of_two_batches_over_their_difference() -> None:
    assert bench.per_call(1_000, 5_000, 10, 50) == 100.0
    with pytest.raises(ValueError):
        bench.per_call(1_000, 5_000, 50, 50)


def test_the_table_gives_the_excess_the_ratio_and_the_change_from_a_baseline() -> None:
    pair = bench.PAIRS[0]
    table = bench.report([pair], {pair.wxdata: 150_000.0, pair.floor: 100_000.0},
                         baseline={pair.wxdata: 160_000.0})
    row = table.splitlines()[-1]
    assert "| 150,000 | 100,000 (" in row and "| 50,000 | 1.50x |" in row
    assert row.endswith("| 160,000 | -6.2% |")
    assert bench.report([pair], {pair.wxdata: 1.0, pair.floor: 1.0}, baseline={}).endswith(
        "| — | — |")


def test_an_unknown_pair_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--pairs", "by-id-off,nonsense"])
    assert "--pairs takes some of" in capsys.readouterr().err


def test_every_label_is_one_bench_core_can_run() -> None:
    source = (_ROOT / "benchmarks" / "bench_core.py").read_text()
    for pair in bench.PAIRS:
        for label in (pair.wxdata, pair.floor):
            assert f'("{label}"' in source, label
