"""Smoke test of ``python -m benchmarks.bench_server_instructions`` (counts, not timings): a tiny
run in its own private cluster reports every variant, and what the counts must show on any host
holds: the bare fetch is the least, a riding record costs more than none, the narrow floor record
less than wxdata's, an index set more than no index, one index fewer less than all of them, a GIN
index per array more than one, a read listing its columns in another order than the table's
more than one listing them as stored, the closed vocabularies as domains more than as the log
holds them now (enum types, which cost what no check does, within a hundredth), and the records of
other shapes cost more with indexes than without and more carrying the context than not. A run
asked for some variants counts those and the bare fetch only."""

from __future__ import annotations

import argparse
import re

import pytest

from benchmarks import bench_server_instructions as bench

# it starts a PostgreSQL cluster of its own, from server binaries the suite's server does not choose
pytestmark = [pytest.mark.integration, pytest.mark.one_ci_run("system")]

_ROW = re.compile(r"^\| (.+?) \| ([0-9,]+) \(([0-9,]+)-([0-9,]+)\) \| ([0-9.]+)x \|$")


def test_every_variant_is_counted_and_the_counts_are_ordered() -> None:
    report = bench.run(argparse.Namespace(pg_bin=None, students=50, warm=10, executions=40,
                                          rounds=1, only=[]))
    rows = {m.group(1): int(m.group(2).replace(",", ""))
            for m in map(_ROW.match, report.splitlines()) if m}
    assert list(rows) == [
        "bare fetch", "by-id read, columns in the row's order (before)",
        "by-id read, columns as stored (wxdata)", "floor: narrow record, no index",
        "wxdata record, columns in the row's order (before)",
        "wxdata record into audit_log (partitioned, its indexes)",
        "the same into an unpartitioned copy, its indexes",
        "the same into a copy with a GIN index per array (before 0219)",
        "the same into a copy without the partial index of records naming their row by "
        "entity_id alone",
        "the same into a copy without the transaction_id index",
        "the same into a copy whose vocabularies (action, compliance_type, severity) are "
        "varchar with no check",
        "the same into a copy whose vocabularies are domains over varchar (before 0220)",
        "the same into a copy without any index",
        "reads in their own table: a read's columns only, no index",
        "normalised (context and shape by key), audit_log's indexes",
        "normalised (context and shape by key), no index",
        "floor record with every context parameter bound"]
    (bare, reordered, stored, floor, logged_reordered, logged, copy, per_array, no_partial,
     no_xid, unchecked, domains, unindexed, reads_only, normal_indexed, normal,
     floor_every_value) = rows.values()
    assert 0 < bare < floor < unindexed < copy < per_array
    assert unindexed < no_partial < copy and unindexed < no_xid < copy  # each index costs
    assert copy < logged  # partitioning routes each record to its month
    assert copy < domains  # a domain's check is set up again on every execution
    assert abs(copy - unchecked) < unchecked / 100  # an enum's literal is its value when planned
    assert stored < reordered and logged < logged_reordered  # no projection of the stored row
    assert floor < normal < normal_indexed and reads_only < copy  # the other shapes: indexes cost
    assert floor < floor_every_value  # and so does carrying the context


def test_a_run_asked_for_some_variants_counts_those_and_the_bare_fetch() -> None:
    report = bench.run(argparse.Namespace(pg_bin=None, students=50, warm=10, executions=40,
                                          rounds=1, only=["vocabularies", "without any index"]))
    rows = [m.group(1) for m in map(_ROW.match, report.splitlines()) if m]
    assert rows == [
        "bare fetch",
        "the same into a copy whose vocabularies (action, compliance_type, severity) are "
        "varchar with no check",
        "the same into a copy whose vocabularies are domains over varchar (before 0220)",
        "the same into a copy without any index"]
