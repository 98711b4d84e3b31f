"""Smoke test of the benchmark harness: tiny --quick runs in configuration A (no timing assertions).

The first runs every workload of ``python -m benchmarks`` once against its own freshly created,
migrated, seeded and dropped database, and checks the report: every workload row is present in the
summary table, every variant has a finite positive time and a finite ratio to raw psycopg, and the
school day reports throughput and percentiles. The second runs the ``--targets`` preset and checks
that the audited-performance table has exactly its rows, each measured, with its floor and gap
where the row has one, and that the audit log's records per second and WAL per read are there.
The verdict rule of every row is checked over generated figures. Nothing asserts anything about speed.
"""

from __future__ import annotations

import math

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import workloads
from benchmarks.common import TARGET_FAMILIES, Options, Result, main, quiesce
from benchmarks.report import AUDITED_TARGETS, FLOOR_GAP, Pick, audited_rows
from benchmarks.seed import bench_database


def test_quick_run_reports_every_workload_with_finite_ratios(server_url: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as admin:
        before = {r[0] for r in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'wxdata_bench_%'")}
    lines: list[str] = []
    report = main(
        ["--quick", "--scale", "200", "--reps", "1", "--config", "A", "--no-pin", "--no-chart",
         "--no-write",
         "--no-extras", "--mixed-seconds", "0.1", "--bulk-rows", "50", "--threads", "4",
         "--database-url", server_url],
        log=lines.append,
    )

    main_results = [r for r in report.results if r.section == "main"]
    titles = {r.workload for r in main_results}
    assert len(titles) == len(workloads.MAIN)
    summary = report.markdown.split("## Summary")[1].split("## Audited-performance targets")[0]
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
    floors = {r.workload for r in main_results if r.family == "floor"}
    assert floors == {"fetch by id", "page of 20 + total", "PHI read with audit (health record)",
                      "single create", "update by id"}

    day = [r for r in report.results if r.section == "mixed"]
    assert {r.family for r in day} == {"raw", "floor", "wx", "wx_noaudit", "core", "orm"}
    for r in day:
        assert r.extra["throughput_ops_s"] > 0 and r.extra["ops"] > 0
        assert r.extra["p50_us"] <= r.extra["p95_us"] <= r.extra["p99_us"]
        assert r.ratio is not None and math.isfinite(r.ratio)
    assert "## Layer targets" in report.markdown and "| fetch by id |" in report.markdown
    assert "## Audited-performance targets" in report.markdown

    with psycopg.connect(server_url, autocommit=True) as admin:  # the run dropped its database
        after = {r[0] for r in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'wxdata_bench_%'")}
    assert after <= before


def test_targets_preset_fills_every_row_of_the_audited_table(
        server_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    lines: list[str] = []
    report = main(
        ["--targets", "--quick", "--scale", "200", "--reps", "1", "--config", "A", "--no-pin",
         "--no-chart",
         "--no-write", "--mixed-seconds", "0.1", "--bulk-rows", "50", "--threads", "4",
         "--wal-reads", "5", "--database-url", server_url],
        log=lines.append,
    )
    assert report.meta["targets"] is True

    rows = audited_rows(report.results)
    assert [r["target"] for r in rows] == [t.label for t in AUDITED_TARGETS]
    table = report.markdown.split("## Audited-performance targets")[1].split("## Audit log")[0]
    for target, row in zip(AUDITED_TARGETS, rows, strict=True):
        assert any(line.startswith(f"| {target.label} |") for line in table.splitlines())
        measured = row["A"]
        assert "B" not in row
        assert len(measured["parts"]) == len(target.parts)
        assert measured["verdict"] in ("met", "floor", "MISSED")
        for part, got in zip(target.parts, measured["parts"], strict=True):
            assert math.isfinite(got["value"]) and got["value"] > 0
            if part.floor is not None:
                assert math.isfinite(got["floor"]) and got["floor"] > 0
                assert math.isfinite(got["gap"]) and got["gap"] > 0
            else:
                assert got["floor"] is None and got["gap"] is None

    main_results = [r for r in report.results if r.section == "main"]
    assert {r.family for r in main_results} <= TARGET_FAMILIES
    assert not [r for r in report.results if r.section == "scaling" or
                r.section.startswith("extra:")]
    assert {r.family for r in report.results if r.section == "mixed"} == {"raw", "floor", "wx",
                                                                         "wx_noaudit"}

    rate = [r for r in report.results if r.section == "audit_rate"]
    assert [r.family for r in rate] == ["wx", "floor"]
    for r in rate:
        assert r.extra["records_per_s"] > 0 and r.extra["writers"] == 4
    wal = [r for r in report.results if r.section == "wal"]
    assert [r.baseline for r in wal] == [True, False, False, False]
    assert [r.extra["kind"] for r in wal] == ["schema", "schema", "hit", "background"]
    for r in wal:
        assert len(r.samples_us) == 1 and math.isfinite(r.median) and r.median >= 0
    assert wal[0].median > 0 and wal[1].median > 0  # an audited read writes WAL in either schema
    assert wal[2].median > 0  # a recorded hit writes its record
    assert "records per second, 4 writers" in report.markdown
    assert "before the lean-index migrations" in report.markdown


_figure = st.floats(min_value=1.0, max_value=1e5, allow_nan=False, allow_infinity=False)


def _result(pick: Pick, config: str, figure: float) -> Result:
    """A result that ``pick`` finds: ``figure`` µs per operation, and as many operations per second."""
    name = pick.family or pick.variant
    return Result(pick.workload.rstrip("*") + (" (8 threads)" if pick.workload.endswith("*") else ""),
                  name, config, [figure], 1, pick.family or "other", False, pick.section,
                  extra={"throughput_ops_s": figure})


@given(data=st.data())
def test_every_row_is_met_within_its_bound_floor_only_at_a_floor_that_misses_it(
        data: st.DataObject) -> None:
    picks = {p for t in AUDITED_TARGETS for part in t.parts
             for p in (part.num, part.den, part.floor, part.floor_den) if p is not None}
    figures = {(p, c): data.draw(_figure) for p in sorted(picks, key=repr) for c in ("A", "B")}
    rows = audited_rows([_result(p, c, f) for (p, c), f in figures.items()])
    for target, row in zip(AUDITED_TARGETS, rows, strict=True):
        for config in ("A", "B"):
            bound = target.bounds[config]
            got = row[config]
            verdict = "met"
            for part, measured in zip(target.parts, got["parts"], strict=True):
                num, den = figures[(part.num, config)], figures[(part.den, config)]
                value = num / den  # a time ratio, or a rate ratio for throughput rows
                assert measured["value"] == pytest.approx(value)
                within = value <= bound if target.op == "<=" else value >= bound
                if target.never_slower and value > 1.0:
                    verdict = "MISSED"
                if part.floor is None:
                    assert measured["floor"] is None and measured["gap"] is None
                    if not within:
                        verdict = "MISSED"
                    continue
                low = figures[(part.floor, config)]
                low_den = figures[(part.floor_den or part.den, config)]
                gap = (1.0 / num) / (1.0 / low) if part.throughput else num / low  # per operation
                assert measured["floor"] == pytest.approx(low / low_den)
                assert measured["gap"] == pytest.approx(gap)
                floor_within = (low / low_den <= bound if target.op == "<="
                                else low / low_den >= bound)
                if not within and verdict != "MISSED":
                    verdict = "floor" if not floor_within and gap <= FLOOR_GAP else "MISSED"
            assert got["verdict"] == verdict, (target.label, config)


@pytest.mark.parametrize("config", ["A", "B"])
def test_configurations_pin_client_and_server_and_restore_them(
        server_url: str, config: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A: the servers on ``--core``, this process on another core (a round trip crosses cores);
    B: everything on ``--core``. Every affinity comes back on exit, backends forked meanwhile too.
    With ``--no-pin`` nothing moves."""
    import os

    from benchmarks.common import Options, client_core, configuration, postmaster_pid

    monkeypatch.delenv("REDIS_URL", raising=False)  # a Redis other test runs may share: left alone
    options = Options(database_url=server_url)
    own_before = os.sched_getaffinity(0)
    postmaster = postmaster_pid(server_url)
    server_before = os.sched_getaffinity(postmaster) if postmaster else None
    expected_client = options.core if config == "B" else client_core(options.core)
    notes: list[str] = []
    with configuration(config, server_url, options, log=notes.append) as (conninfo, _):
        if expected_client is None:  # a single core: nothing to separate
            assert any("nothing pinned" in n for n in notes)
        else:
            assert os.sched_getaffinity(0) == {expected_client}
            with psycopg.connect(conninfo, autocommit=True) as conn:
                row = conn.execute("SELECT pg_backend_pid()").fetchone()
                assert row is not None
                if postmaster is not None:  # a local server: its new backend inherits the core
                    assert os.sched_getaffinity(row[0]) == {options.core}
                    if config == "A":
                        assert options.core != expected_client
    assert os.sched_getaffinity(0) == own_before
    if postmaster is not None:
        assert os.sched_getaffinity(postmaster) == server_before
    options.pin = False
    with configuration(config, server_url, options, log=notes.append):
        assert os.sched_getaffinity(0) == own_before
        if postmaster is not None:
            assert os.sched_getaffinity(postmaster) == server_before
    assert any("--no-pin" in n for n in notes)


def test_quiesce_vacuums_the_audit_log_checkpoints_and_leaves_no_autovacuum_running(
        server_url: str) -> None:
    with bench_database(server_url, Options(database_url=server_url), 50, 1,
                        log=lambda _: None) as (url, _), psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO audit_log (action, entity_type, user_id) "
                     "SELECT 'READ', 'Student', 'u-quiesce' FROM generate_series(1, 50)")
        started = conn.execute("SELECT now()").fetchone()[0]
        requested = ("SELECT num_requested FROM pg_stat_checkpointer"
                     if conn.info.server_version >= 170000  # moved out of pg_stat_bgwriter
                     else "SELECT checkpoints_req FROM pg_stat_bgwriter")
        checkpoints = conn.execute(requested).fetchone()[0]
        lines: list[str] = []
        looked_at = quiesce(url, log=lines.append)
        conn.execute("SELECT pg_stat_clear_snapshot()")
        vacuumed = conn.execute(
            "SELECT count(*) FROM pg_stat_user_tables t JOIN pg_inherits i "
            "ON i.inhrelid = t.relid WHERE i.inhparent = 'audit_log'::regclass "
            "AND t.last_vacuum >= %s", (started,)).fetchone()[0]
        partitions = conn.execute("SELECT count(*) FROM pg_inherits "
                                  "WHERE inhparent = 'audit_log'::regclass").fetchone()[0]
        assert partitions > 0 and vacuumed == partitions
        assert conn.execute(requested).fetchone()[0] > checkpoints
        # A worker the launcher starts after quiesce's last look is not one it left running.
        left = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' "
            "AND datname = current_database() AND backend_start < %s", (looked_at,)).fetchone()[0]
        assert left == 0 or any("still running" in line for line in lines)
