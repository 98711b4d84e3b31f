"""Smoke test of ``python -m benchmarks.bench_page_record``: a tiny run reports the server's CPU for
both pages with no record, with the record's ids aggregated per column and once; it drops its
database and gives the server its affinity back. Nothing asserts anything about speed."""

from __future__ import annotations

import math
import os
import re

import psycopg
import pytest

from benchmarks import bench_core, bench_page_record
from tests.bench_support import bench_databases

pytestmark = pytest.mark.integration

_ROW = re.compile(r"^\| (?P<label>[^|]+) \| (?P<rows>\d+) \| (?P<median>[0-9.]+) "
                  r"\((?P<low>[0-9.]+)-(?P<high>[0-9.]+)\) \| (?P<extra>[^|]+) \|$")
_FORMS = ("no record", "record, ids per column (before)", "record, ids aggregated once (wxdata)")


def test_both_pages_in_every_form_and_the_server_as_it_was(
        server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from wxdata.config import settings

    before, found = bench_databases(server_url), settings()
    with psycopg.connect(server_url, autocommit=True) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert backend is not None
        postmaster = bench_core._postmaster(backend[0])
    assert postmaster is not None, "the test server runs on this machine"
    affinity = os.sched_getaffinity(postmaster)
    assert bench_page_record.main(["--reps", "1", "--ops", "5", "--students", "30",
                                   "--database-url", server_url]) == 0
    rows = [m for line in capsys.readouterr().out.splitlines() if (m := _ROW.match(line))]
    labels = [m["label"] for m in rows]
    assert labels == [f"{page}: {form}" for page in (
        "students of a school, page 1 of 20 + total", "a student's health records + total")
        for form in _FORMS]
    for m in rows:
        assert all(math.isfinite(float(m[k])) and float(m[k]) > 0
                   for k in ("median", "low", "high")), m.string
    # every form of a page returns the same rows: twenty students, a student's three records
    assert [int(m["rows"]) for m in rows] == [20] * 3 + [3] * 3
    assert [m["extra"].strip() == "—" for m in rows] == [True, False, False] * 2
    assert os.sched_getaffinity(postmaster) == affinity
    assert bench_databases(server_url) == before
    assert settings() is found


def test_the_ids_per_column_are_rebuilt_from_the_statement_wxdata_sends() -> None:
    from wxdata.audit.record import AuditAction
    from wxdata.audit.sql import RecordShape, ride_read
    from wxdata.domains import health_records

    entity = health_records.ENTITY
    source = 'SELECT true "_hit", * FROM "health_records" WHERE "student_id"=%(p0)s'
    shape = RecordShape((("action", AuditAction.READ.value),), ())
    now = ride_read(entity, source, ("_hit", *entity.column_names), "_hit", shape)
    old = bench_page_record.before(now, entity.pk, entity.subject)
    ids = bench_page_record.per_column(entity.pk, entity.subject)
    # the statement up to the record's ids and the read's own final SELECT are kept as they are
    assert old.startswith(now[:now.index(",CASE WHEN cardinality(x.i)=1")])
    assert old.endswith(f',{ids} FROM s WHERE "s"."_hit" HAVING count("s"."{entity.pk}")>0)'
                        f' SELECT {now.rsplit(") SELECT ", 1)[1]}')
    assert bench_page_record.without_record(now).startswith(f"WITH s AS ({source}) SELECT ")
    with pytest.raises(RuntimeError):
        bench_page_record.before(bench_page_record.without_record(now), entity.pk, entity.subject)
