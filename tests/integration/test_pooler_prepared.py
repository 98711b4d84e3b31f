"""Behind a transaction pooler that keeps prepared statements (``DB_POOLER=transaction-prepared``).

PgBouncer 1.21 and newer, with ``max_prepared_statements`` above 0, renames each statement a client
prepares (``PGBOUNCER_<n>`` on the server) and prepares it again on whichever server connection
runs it: wxdata may then name its statements as it does direct to PostgreSQL and skip their
parsing and planning. A pooler that passes names through (PgBouncer before 1.21, or
``max_prepared_statements = 0``) would let one client's ``_pg3_0`` meet another client's statement
of that name on a shared server connection: wxdata proves the renaming on each connection's first
use and refuses (``Unavailable``) before naming anything when it is missing.

Every test runs against real PgBouncer processes (1.21 or newer; ``bash .ci/pgbouncer`` builds
one) in front of the real test server, whatever ``WXDATA_TEST_POOLER`` says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import attrs
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from returns.result import Failure, Success

from tests.conftest import student_values
from tests.integration.test_pooler import _exercise, _nurse, _school, assert_workload_right
from tests.pgbouncer import PgBouncer
from tests.pgbouncer import available as pgbouncer_available
from wxdata import system_context
from wxdata._cli import Exit
from wxdata.aio.domains import students as astudents
from wxdata.audit import lanes
from wxdata.cli import main
from wxdata.config import Settings, configure, settings
from wxdata.db import connect, connect_kwargs
from wxdata.domains import students
from wxdata.errors import ContextRefused, Unavailable
from wxdata.tx import unit_of_work
from wxdata.tx.scope import POOLER_KEEPS_NOTHING

Conn = psycopg.Connection[Any]


def _bouncer(server_url: str, keeps: bool, pool_size: int) -> Iterator[PgBouncer]:
    if not pgbouncer_available():
        pytest.fail("pgbouncer is not installed (bash .ci/pgbouncer)")
    bouncer = PgBouncer(server_url, keeps_statements=keeps, pool_size=pool_size).start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture(scope="module")
def keeping(server_url: str) -> Iterator[PgBouncer]:
    """A PgBouncer keeping prepared statements (``max_prepared_statements = 200``)."""
    yield from _bouncer(server_url, True, 4)


@pytest.fixture(scope="module")
def keeping_one(server_url: str) -> Iterator[PgBouncer]:
    """The same with one server connection: every client's statements meet on it."""
    yield from _bouncer(server_url, True, 1)


@pytest.fixture(scope="module")
def passing(server_url: str) -> Iterator[PgBouncer]:
    """A PgBouncer passing statement names through (``max_prepared_statements = 0``), as every
    PgBouncer before 1.21 does."""
    yield from _bouncer(server_url, False, 4)


@pytest.fixture
def prepared_mode() -> Iterator[Settings]:
    """wxdata configured for a pooler that keeps prepared statements, for one test."""
    lanes.close_lanes()  # lanes opened under another test's settings
    previous = configure(attrs.evolve(settings(), pooler="transaction-prepared"))
    try:
        yield settings()
    finally:
        lanes.close_lanes()
        configure(previous)


@pytest.fixture
def admin(server_url: str, direct_db_url: str) -> Iterator[Conn]:
    """A direct superuser connection to the test database (set-up and checks only)."""
    url = make_conninfo(server_url, dbname=conninfo_to_dict(direct_db_url)["dbname"])
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as c:
        yield c


def _server_statements(url: str) -> list[tuple[str, str]]:
    """(name, text) of the statements prepared on the server connection a fresh client reaches."""
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as probe:
        return [(str(n), str(t)) for n, t in probe.execute(
            "SELECT name, statement FROM pg_prepared_statements").fetchall()]


# --- kept: prepared, and every row right ---------------------------------------------------------


def test_every_statement_shape_runs_prepared_through_a_pooler_keeping_them(
    keeping_one: PgBouncer, direct_db_url: str, admin: Conn, prepared_mode: Settings
) -> None:
    """Reads, writes, units of work, both audit lanes and the audited decorator, as two clients
    sharing one server connection: every answer right, and the server holds wxdata's statements
    under the pooler's names only (none under psycopg's, which two clients would share)."""
    url = keeping_one.url(direct_db_url)
    with connect(url) as first, connect(url) as second:
        assert first.prepare_threshold is not None  # psycopg's default: it names statements
        for conn in (first, second, first):
            _exercise(conn, admin, rounds=3)
    held = _server_statements(url)
    names = {name for name, _ in held}
    assert names and all(name.startswith("PGBOUNCER_") for name in names)
    assert any('FROM "students"' in text for _, text in held)  # the by-id read, planned once


def test_sixteen_threads_two_clients_through_a_pooler_keeping_statements_every_row_right(
    keeping: PgBouncer, direct_db_url: str, admin: Conn, prepared_mode: Settings
) -> None:
    """The pooler workload of ``test_pooler.py`` (reads, audited reads, creates, updates, stale
    updates, units of work; every result checked against the expected row), with statements
    named: no error, no wrong row, every record written exactly once."""
    assert_workload_right(keeping.url(direct_db_url), admin)


# --- not kept: refused before anything is named ---------------------------------------------------


def _refused(result: Any) -> bool:
    return (isinstance(result, Failure) and isinstance(result.failure(), Unavailable)
            and result.failure().reason == POOLER_KEEPS_NOTHING)


@pytest.mark.parametrize("route", ["passing pooler", "direct"])
def test_names_that_reach_the_server_unchanged_are_refused_with_nothing_read_or_written(
    route: str, passing: PgBouncer, direct_db_url: str, admin: Conn, prepared_mode: Settings
) -> None:
    """Through a pooler passing names through (or with none at all) a connection opened as
    wxdata opens them gets ``Unavailable`` from every call, again on every call: no row
    returned, none written, no disclosure recorded, and ``connect`` refuses at once."""
    url = passing.url(direct_db_url) if route == "passing pooler" else direct_db_url
    school = _school(admin)
    ctx = _nurse(school, "p")
    made = students.create(admin, system_context("tests"), student_values(school)).unwrap()
    values = student_values(school)
    with psycopg.connect(url, autocommit=True, **connect_kwargs()) as conn:
        assert conn.prepare_threshold is not None
        for _ in range(3):
            assert _refused(students.find_by_id(conn, ctx, made.id))
            assert _refused(students.find_many(conn, ctx, {"id": made.id}))
            assert _refused(students.create(conn, ctx, values))
            with pytest.raises(ContextRefused), unit_of_work(conn, ctx):
                pytest.fail("a unit of work opened on a refused connection")
    with pytest.raises(ContextRefused):
        connect(url).close()
    written = admin.execute("SELECT count(*) FROM students WHERE student_number = %s",
                            (values["student_number"],)).fetchone()
    recorded = admin.execute(
        "SELECT action, success, count(*) FROM audit_log WHERE request_id = %s"
        " GROUP BY action, success", (ctx.request_id,)).fetchall()
    assert written == (0,)
    assert recorded == [("CREATE", False, 3)]  # the refused attempts, on lane 2; no disclosure


def test_a_connection_that_names_nothing_passes_the_check_anywhere(
    passing: PgBouncer, direct_db_url: str, admin: Conn, prepared_mode: Settings
) -> None:
    """The check refuses names, not poolers: a connection opened with ``prepare_threshold=None``
    prepares no probe, names nothing, and works through the same pooler."""
    school = _school(admin)
    ctx = _nurse(school, "n")
    made = students.create(admin, system_context("tests"), student_values(school)).unwrap()
    with connect(passing.url(direct_db_url), prepare_threshold=None) as conn:
        for _ in range(6):
            assert students.find_by_id(conn, ctx, made.id) == Success(made)


def test_the_async_shell_is_checked_alike(
    keeping: PgBouncer, passing: PgBouncer, direct_db_url: str, admin: Conn,
    prepared_mode: Settings,
) -> None:
    school = _school(admin)
    ctx = _nurse(school, "a")
    made = students.create(admin, system_context("tests"), student_values(school)).unwrap()

    async def read(url: str, times: int) -> list[Any]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True,
                                                         **connect_kwargs()) as conn:
            return [await astudents.find_by_id(conn, ctx, made.id) for _ in range(times)]

    assert asyncio.run(read(keeping.url(direct_db_url), 8)) == [Success(made)] * 8
    refused = asyncio.run(read(passing.url(direct_db_url), 3))
    assert len(refused) == 3 and all(_refused(r) for r in refused)


def test_health_calls_a_primary_whose_pooler_passes_names_through_misconfigured(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    keeping: PgBouncer, passing: PgBouncer, direct_db_url: str,
) -> None:
    """``wxdata health`` behind a pooler passing names through: the server answers, but every
    call would be refused; the check says so (configuration error, exit 2) instead of "up"."""
    monkeypatch.setenv("DB_POOLER", "transaction-prepared")
    monkeypatch.delenv("DATABASE_REPLICA_URLS", raising=False)
    outcome = {}
    for name, bouncer in (("passing", passing), ("keeping", keeping)):
        monkeypatch.setenv("DATABASE_URL", bouncer.url(direct_db_url))
        code = main(["health"])
        out, err = capsys.readouterr()
        outcome[name] = (code, "connections:" in out, "DB_POOLER=transaction-prepared" in err)
    assert outcome == {"passing": (Exit.USAGE, False, True), "keeping": (Exit.OK, True, False)}
