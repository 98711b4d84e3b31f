"""Smoke tests of the scope and client-cost benchmarks: tiny runs, every variant reported.

``bench_scope_check`` measures the signed scope's verifier and rewrites of it inside the
server; a rewrite is timed only after it answers exactly as the installed verifier for a valid,
a wrongly signed, a stale and a missing token, and the guard that checks this is attacked here
with a rewrite that grants every school. ``bench_core`` reports every variant, including the
owner's and raw psycopg's creates. Nothing asserts anything about speed.
"""

from __future__ import annotations

import math
import os
import re

import psycopg
import pytest

from benchmarks import bench_core, bench_scope_check
from benchmarks.bench_scope import _drop, _setup
from tests.bench_support import bench_databases

pytestmark = pytest.mark.integration

_FIGURE = r"([0-9.]+) \(([0-9.]+)-([0-9.]+)\)"


def test_scope_check_reports_every_variant_in_both_forms_and_drops_its_database(
        server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = bench_databases(server_url)
    assert bench_scope_check.main(
        ["--reps", "1", "--loops", "20", "--database-url", server_url]) == 0
    out = capsys.readouterr().out
    for label, _, _ in bench_scope_check.VARIANTS:
        line = next((x for x in out.splitlines() if x.startswith(f"  {label} ")), None)
        assert line is not None, f"{label} not reported"
        figures = re.findall(_FIGURE, line)
        assert len(figures) == 2, line
        assert all(math.isfinite(float(v)) and float(v) > 0 for f in figures for v in f), line
    assert bench_databases(server_url) == before


def test_a_rewrite_that_answers_differently_is_not_measured(server_url: str) -> None:
    from wxdata import ExecutionContext, Purpose, Role
    from wxdata.tx.scope import context_statement
    from wxdata.tx.token import scope_key

    name, owner_url, app_url, school, _ = _setup(server_url, 5)
    try:
        ctx = ExecutionContext(user_id="u-smoke", role=Role.NURSE, purpose=Purpose.TREATMENT,
                               school_ids={school}, request_id="req-smoke")
        with psycopg.connect(owner_url, autocommit=True) as owner, \
                psycopg.connect(app_url, autocommit=True) as app:
            owner.execute(bench_scope_check._HELPERS)
            context = context_statement(ctx, scope_key())
            bench_scope_check._same_answers(app, context)  # the rewrites as written pass
            # a rewrite granting every school (NULL) for a wrongly signed token must be caught
            owner.execute("""
                CREATE OR REPLACE FUNCTION bench_scope_schools_lean() RETURNS uuid[]
                    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
                    AS $$ BEGIN
                        RETURN CASE WHEN public.wxdata_scope_schools() = '{}' THEN NULL
                                    ELSE public.wxdata_scope_schools() END;
                    END $$""")
            with pytest.raises(RuntimeError, match="answers differently"):
                bench_scope_check._same_answers(app, context)
    finally:
        _drop(server_url, name, app_url)


def test_client_cost_bench_reports_every_variant(
        server_url: str, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = bench_databases(server_url)
    assert bench_core.main(["--reps", "1", "--ops", "3", "--students", "30",
                            "--database-url", server_url, "--redis-url", redis_url]) == 0
    out = capsys.readouterr().out
    for label in ("raw psycopg find by id (superuser, prepared)",
                  "sync find_by_id, audit off, owner", "raw psycopg create (superuser, prepared)",
                  "sync create, audit off, owner", "sync update, audit off, owner",
                  "sync find_by_id, audited", "sync find_by_id, audited, owner",
                  "sync find_by_id cached on Redis, audited, owner",
                  "sync find_by_id, memory-cache hit + its record, owner",
                  "raw psycopg INSERT of a hit's record (superuser, prepared)",
                  "sync update, audited, owner",
                  "raw psycopg find by id, typed row (superuser, prepared)",
                  "find_by_id's statement as a plan with no checks, owner",
                  "raw psycopg audit record INSERT (superuser, prepared)",
                  "sync log_read, the owner",
                  "raw psycopg hand-written count (superuser, prepared)",
                  "sync crud.fetch of the same count, audited, owner",
                  "raw psycopg async find by id (superuser, prepared)",
                  "async find_by_id, audit off, owner", "async find_by_id, audited, owner",
                  "raw psycopg sending that read's statement (superuser, prepared)",
                  "sync find_many 20 + total, audited, owner",
                  "raw psycopg sending that page's statement (superuser, prepared)",
                  "raw psycopg sending that update's statement (superuser, prepared)",
                  "sync create, audit off, owner", "sync create, audited, owner",
                  "raw psycopg sending that create's statement (superuser, prepared)",
                  "sync update, audited, owner, a memory cache invalidated",
                  "sync update, audited, owner, a Redis cache invalidated"):
        # client CPU, its excess, wall time and the server's CPU (the test server is local)
        assert re.search(rf"^  {re.escape(label)} +{_FIGURE} \| \+ *-?[0-9.]+ \| +{_FIGURE}"
                         rf" \| +{_FIGURE}$", out, re.M), f"{label} not reported"
    assert bench_databases(server_url) == before


def test_client_cost_bench_times_only_the_variants_asked_for(
        server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from wxdata.config import settings

    before, found = bench_databases(server_url), settings()
    asked = "sync update, audited, owner, a memory cache invalidated"
    assert bench_core.main(["--reps", "1", "--ops", "3", "--students", "30", "--redis-url", "",
                            "--database-url", server_url, "--only", asked]) == 0
    rows = [x for x in capsys.readouterr().out.splitlines() if re.match(rf"  .+ {_FIGURE}", x)]
    assert [r.split("  ")[1].strip() for r in rows] == [
        "raw psycopg find by id (superuser, prepared)", asked]  # the floor, then the one asked
    with pytest.raises(SystemExit):
        bench_core.main(["--reps", "1", "--ops", "3", "--students", "30", "--redis-url", "",
                         "--database-url", server_url, "--only", "no such variant"])
    assert bench_databases(server_url) == before
    assert settings() is found  # a refused run leaves no setting of its own behind


def test_the_server_cpu_is_read_only_off_postgres_own_processes(server_url: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert backend is not None
        postmaster = bench_core._postmaster(backend[0])
        assert postmaster is not None  # the test server runs here
        assert bench_core._server_cpu_ns(postmaster) > 0
    assert bench_core._postmaster(os.getpid()) is None  # this process is no backend
