"""Smoke test of benchmarks/bench_cache.py: a tiny run must report every workload (no timing asserted)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date

import psycopg
import pytest

from benchmarks import bench_cache
from benchmarks.seed import seed


def test_quick_run_reports_every_cache_workload(fresh_database: Callable[[], str], redis_url: str,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    options = bench_cache.options_from(["--quick", "--reps", "1", "--batch-seconds", "0.001",
                                         "--no-pin"])
    url = fresh_database()
    with psycopg.connect(url, autocommit=True) as conn:
        data = seed(conn, options, 200, 1, log=lambda _: None)
    results = bench_cache.measure_all(url, data, options)
    print(bench_cache.report(results))
    out = capsys.readouterr().out
    for title in ("schools by id (reference data)", "schools page of 20 + total (5,000 matching)",
                  "schools search ILIKE, page + total", "PHI student by id, with its audit record",
                  "PHI students page of 20 + total, with audit",
                  "async: schools by id (reference data)"):
        assert title in out
    for variant in ("cached: memory hit", "cached: redis hit", "bare cachetools lookup (floor)",
                    "cached: tiered (memory tier) hit", "cached: redis hit + audit INSERT",
                    bench_cache.REDIS_ROW, bench_cache.OWN_REDIS_HIT,
                    "cachetools.cached over find_by_id", "hand-written redis GET + AES-GCM + decode",
                    "async cached: memory hit", "async cached: redis hit",
                    "async hand-written redis GET + AES-GCM + decode"):
        assert variant in out
    assert "hit-path overhead" in out and "target cached: memory hit" in out
    for workload, variant, versus, _ in bench_cache.COMPARISONS:
        assert f"{variant} / {versus}:" in out, workload
    assert all(r.median > 0 for r in results) and "nan" not in out
    figures = bench_cache.micro(repeat=1, number=200)
    assert len(figures) == 8 and all(v > 0 for v in figures.values())
    assert "PHI hit's disclosure record and its INSERT (template)" in figures


def test_seed_draws_inputs_only_from_the_live_rows_it_wrote(
        fresh_database: Callable[[], str]) -> None:
    """A database cloned from a used one holds other rows, soft-deleted ones among them.

    The benchmark's inputs (student and record ids) used to be sampled from the whole table, so a
    run on such a clone sometimes drew a soft-deleted student and failed warming the cache with
    ``NotFound(Student)``. Here 300 of 400 students are soft-deleted leftovers: a sample of the
    whole table would draw dozens of them.
    """
    url = fresh_database()
    options = bench_cache.options_from(["--quick", "--no-pin"])
    with psycopg.connect(url, autocommit=True) as conn:
        tag = uuid.uuid4().hex[:8]
        district = conn.execute("INSERT INTO districts (name, code) VALUES (%s, %s) RETURNING id",
                                (f"Left {tag}", f"L-{tag}")).fetchone()
        assert district is not None
        school = conn.execute(
            "INSERT INTO schools (name, code, district_id) VALUES (%s, %s, %s) RETURNING id",
            (f"Left {tag}", f"LS-{tag}", district[0])).fetchone()
        assert school is not None
        for i in range(300):
            sid = conn.execute(
                "INSERT INTO students (student_number, first_name, last_name, date_of_birth, "
                "grade, gender, enrollment_date, school_id, district_id, deleted_at) "
                "VALUES (%s, 'Left', 'Over', %s, '5', 'OTHER', %s, %s, %s, now()) RETURNING id",
                (f"LEFT-{tag}-{i}", date(2014, 1, 1), date(2020, 9, 1), school[0],
                 district[0])).fetchone()
            assert sid is not None
            conn.execute(
                "INSERT INTO health_records (student_id, record_type, title, description, "
                "record_date, deleted_at) VALUES (%s, 'CHECKUP', 'Left', 'over', %s, now())",
                (sid[0], date(2021, 1, 1)))
        data = seed(conn, options, 100, 1, log=lambda _: None)
        ours = [s for s, _ in data.schools]
        live = {r[0] for r in conn.execute(
            "SELECT id FROM students WHERE school_id = ANY(%s) AND deleted_at IS NULL", (ours,))}
        live_records = {r[0] for r in conn.execute(
            "SELECT h.id FROM health_records h JOIN students s ON s.id = h.student_id "
            "WHERE s.school_id = ANY(%s) AND h.deleted_at IS NULL", (ours,))}
    assert len(data.student_ids) == 100 and set(data.student_ids) <= live
    assert len(data.record_ids) == 100 and set(data.record_ids) <= live_records
