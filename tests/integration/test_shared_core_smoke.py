"""Smoke test of ``python -m benchmarks.bench_shared_core``: a tiny run reports the server's CPU
and the wall time of both clients in both placements, drops its database and gives the server its
affinity back. Nothing asserts anything about speed."""

from __future__ import annotations

import math
import os
import re

import psycopg
import pytest

from benchmarks import bench_core, bench_shared_core
from tests.bench_support import bench_databases

pytestmark = pytest.mark.integration

_FIGURE = r"([0-9.]+) \(([0-9.]+)-([0-9.]+)\)"


def _postmaster(server_url: str) -> int:
    with psycopg.connect(server_url, autocommit=True) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert backend is not None
        # read while the backend lives: once the connection is closed its process exits
        postmaster = bench_core._postmaster(backend[0])
    assert postmaster is not None, "the test server runs on this machine"
    return postmaster


def test_both_clients_in_both_placements_and_the_server_as_it_was(
        server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: the server cannot be placed on another")
    from wxdata.config import settings

    before, found = bench_databases(server_url), settings()
    postmaster = _postmaster(server_url)
    affinity = os.sched_getaffinity(postmaster)
    assert bench_shared_core.main(["--reps", "1", "--ops", "5", "--students", "20",
                                   "--database-url", server_url]) == 0
    out = capsys.readouterr().out
    for placement in bench_shared_core.PLACEMENTS:
        for variant in bench_shared_core.VARIANTS:
            line = next((x for x in out.splitlines()
                         if re.match(rf"  {placement} +\| {re.escape(variant)} +\|", x)), None)
            assert line is not None, f"{placement}, {variant} not reported"
            figures = re.findall(_FIGURE, line)
            assert len(figures) == 2, line
            assert all(math.isfinite(float(v)) and float(v) > 0 for f in figures for v in f), line
    assert os.sched_getaffinity(postmaster) == affinity
    assert bench_databases(server_url) == before
    assert settings() is found


def test_the_server_gets_its_affinity_back_when_the_run_fails(server_url: str) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: the server cannot be placed on another")
    postmaster = _postmaster(server_url)
    affinity = os.sched_getaffinity(postmaster)
    core = min(affinity)
    pinned: list[set[int]] = []

    def fail_half_way() -> None:
        with bench_shared_core.pinned_server(postmaster) as pin:
            pin(core)
            pinned.append(os.sched_getaffinity(postmaster))
            raise RuntimeError("a run that fails half-way")

    with pytest.raises(RuntimeError):
        fail_half_way()
    assert pinned == [{core}]
    assert os.sched_getaffinity(postmaster) == affinity


def test_a_figure_is_its_median_and_range() -> None:
    assert bench_shared_core.summarise([3.0, 1.0, 2.0]) == "2.0 (1.0-3.0)"
